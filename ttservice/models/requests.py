"""What a request may ask of a model: refused in one sentence before any job exists.

An English-only model given another language, or the translate task, would
quietly transcribe English and call it done; TTService refuses instead, naming
a multilingual model to use. The same rule runs again in the worker on the
model it loaded, for the models whose name could not tell.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..exceptions import ModelError, RequestError
from ..jobs import TranscribeOptions
from ..messages import Message
from . import catalog, hub
from .languages import language_code, language_name

TASKS = ("transcribe", "translate")


def refusal(model: str, english_only: bool | None, language: str | None, task: str) -> Message | None:
    """Why `model` cannot do this; None when it can (or when nobody can tell yet)."""
    if not english_only:
        return None
    suggestion = catalog.MULTILINGUAL_EXAMPLES
    if task == "translate":
        return Message("request.english_only_translate", model=model, suggestion=suggestion)
    if language not in (None, "en"):
        return Message(
            "request.english_only_language",
            model=model,
            language=language_name(language),
            suggestion=suggestion,
        )
    return None


def check_loaded(options: TranscribeOptions, multilingual: bool) -> None:
    """In the worker, on the model it loaded: refuse what it cannot do instead of doing English."""
    reason = refusal(options.model, not multilingual, options.language, options.task)
    if reason:
        raise RequestError(reason)


def model_folder(model: str) -> Path:
    """The folder a model loads from; one sentence if it is not on disk (a job never downloads)."""
    folder = hub.installed_folder(catalog.resolve(model))
    if folder is None:
        raise ModelError("model.download_first", model=model)
    return folder


def checked(options: TranscribeOptions) -> tuple[TranscribeOptions, catalog.ModelRef, Path | None]:
    """The options with the language as a code, the model they name and its folder if installed.

    Raises RequestError (an unknown language or task, a model that cannot do the task)
    or ModelError (a name or folder that is no model) before any job exists.
    """
    if options.task not in TASKS:
        raise RequestError("request.unknown_task", task=options.task)
    language = language_code(options.language)
    ref = catalog.resolve(options.model)
    tuned = catalog.fine_tune(ref.name) or (catalog.fine_tune(ref.repo_id) if ref.repo_id else None)
    if language is None and tuned is not None and len(tuned.languages) == 1:
        language = tuned.languages[0]  # tuned for one language: its authors always name it
    folder = hub.installed_folder(ref)
    reason = refusal(ref.name, catalog.english_only(ref, folder), language, options.task)
    if reason:
        raise RequestError(reason)
    return replace(options, language=language, model=ref.name), ref, folder
