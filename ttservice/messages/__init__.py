"""Every sentence TTService says to a user, as a code with parameters, in English and in Thai.

The raise site names what went wrong and its values (`Message("request.english_only_language",
model=..., language=..., suggestion=...)`); the catalogs (`en.toml`, `th.toml`, one key per code, the
registry being the English catalog) say it in each language. The English sentence is rendered
from the `en` catalog, never written where the error is raised. A parameter may itself be a
Message (a reason inside a sentence), rendered in the same language.

English templates may turn a reason into a sentence and back: `{why!c}` capitalises its first
letter, `{why!l}` lower-cases it (Thai has no capitals, and its templates need neither).

A stored message (a failed job's reason) keeps its code and parameters beside its English
sentence, so that every reader shows it in their own language, and a reader of an older
version still has the sentence.
"""

from __future__ import annotations

import json
import os
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "th")
DEFAULT = "en"
CATALOGS = Path(__file__).parent


@cache
def catalog(lang: str) -> dict[str, str]:
    """The catalog of `lang`: code -> template (the TOML's tables joined with dots)."""
    with open(CATALOGS / f"{lang}.toml", "rb") as file:
        return flatten(tomllib.load(file))


def flatten(table: dict, prefix: str = "") -> dict[str, str]:
    """A catalog's TOML tables joined with dots: {"media": {"empty": ...}} -> {"media.empty": ...}."""
    flat: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


class _Formatter(string.Formatter):
    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion == "c":
            text = str(value)
            return text[:1].upper() + text[1:]
        if conversion == "l":
            text = str(value)
            return text[:1].lower() + text[1:]
        return super().convert_field(value, conversion)


_FORMATTER = _Formatter()


def placeholders(template: str) -> set[str]:
    """The parameters a template names."""
    return {name for _, name, _, _ in _FORMATTER.parse(template) if name}


@dataclass(frozen=True)
class Message:
    """One sentence (or a reason inside one) for a user: its code and its values."""

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, code: str, /, **params: Any) -> None:
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "params", params)

    def text(self, lang: str = DEFAULT) -> str:
        template = catalog(lang).get(self.code) if lang in LANGUAGES else None
        if template is None:
            template = catalog(DEFAULT)[self.code]
        values = {k: v.text(lang) if isinstance(v, Message) else v for k, v in self.params.items()}
        return _FORMATTER.format(template, **values)

    def __str__(self) -> str:
        return self.text()

    def to_dict(self) -> dict[str, Any]:
        params = {k: v.to_dict() if isinstance(v, Message) else v for k, v in self.params.items()}
        return {"code": self.code, "params": params}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        params = {
            k: cls.from_dict(v) if isinstance(v, dict) and set(v) == {"code", "params"} else v
            for k, v in data.get("params", {}).items()
        }
        return cls(data["code"], **params)

    @classmethod
    def from_json(cls, raw: str | None) -> Message | None:
        """The stored message, or None for none (or for a code this version does not know)."""
        if not raw:
            return None
        message = cls.from_dict(json.loads(raw))
        return message if _known(message) else None


def _known(message: Message) -> bool:
    return message.code in catalog(DEFAULT) and all(
        _known(v) for v in message.params.values() if isinstance(v, Message)
    )


Said = Message | Exception | str


def text(said: Said | None, lang: str = DEFAULT) -> str:
    """What to show: a message (or one of our errors) in `lang`; a plain sentence as it is (one
    stored by an earlier version, or a library's)."""
    if said is None:
        return ""
    message = getattr(said, "message", said)
    return message.text(lang) if isinstance(message, Message) else str(said)


def of(said: Said) -> Message | None:
    """The message behind what was said, if it has one."""
    message = getattr(said, "message", said)
    return message if isinstance(message, Message) else None


def locale_language(environ: Mapping[str, str] | None = None) -> str:
    """The language of the terminal's locale, as POSIX chooses it (LC_ALL, then LC_MESSAGES,
    then LANG): Thai for th_*, English otherwise."""
    environ = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            code = value.split("_")[0].split(".")[0].split("-")[0].lower()
            return code if code in LANGUAGES else DEFAULT
    return DEFAULT
