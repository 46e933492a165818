"""The web app's words in Thai and English: one catalog per language, read through `t(key, **values)`.

The language belongs to a browser session, never to the process (several sessions share one
Streamlit process, so `gettext.install` would give them all one language). It is, in order:
`?lang=th|en` in the URL, the choice made earlier in this session, the browser's language
(`st.context.locale`), else English.

Errors come from the services in English, written once for the CLI, the API and the job rows.
`error_text` renders one in the session's language by matching it against the English
templates of the `errors` table in the catalog (so a reason stored in a job row years ago is
translated too); a sentence it does not know is shown as it is.
"""

from __future__ import annotations

import re
import string
import tomllib
from functools import cache
from pathlib import Path

import streamlit as st
from babel import Locale

LOCALES = Path(__file__).with_name("locales")
LANGUAGES = {"th": "ไทย", "en": "English"}
DEFAULT = "en"
SESSION_KEY = "lang"
# Keys asked for that a catalog lacks, so that a test can see them (a page still shows English).
missing: set[tuple[str, str]] = set()


def _flatten(table: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict) and prefix + key != "errors":
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, dict):
            flat.update({f"errors.{english}": text for english, text in value.items()})
        else:
            flat[prefix + key] = value
    return flat


@cache
def catalog(lang: str) -> dict[str, str]:
    with open(LOCALES / f"{lang}.toml", "rb") as file:
        return _flatten(tomllib.load(file))


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def from_locale(locale: str | None) -> str | None:
    """'th' for a Thai browser ('th', 'th-TH'), 'en' for an English one, None otherwise."""
    code = (locale or "").replace("_", "-").split("-")[0].lower()
    return code if code in LANGUAGES else None


def language() -> str:
    chosen = st.query_params.get(SESSION_KEY)
    if chosen in LANGUAGES:
        return chosen
    chosen = st.session_state.get(SESSION_KEY)
    if chosen in LANGUAGES:
        return chosen
    return from_locale(getattr(st.context, "locale", None)) or DEFAULT


def t(key: str, **values) -> str:
    lang = language()
    text = catalog(lang).get(key)
    if text is None:
        missing.add((lang, key))
        text = catalog(DEFAULT).get(key, key)
    return text.format(**values) if values else text


def keep_choice() -> None:
    """Keep the language chosen by URL or by the switch in the URL of every page (the navigation
    drops query parameters when it changes pages)."""
    chosen = st.query_params.get(SESSION_KEY)
    if chosen in LANGUAGES:
        st.session_state[SESSION_KEY] = chosen
    elif st.session_state.get(SESSION_KEY) in LANGUAGES:
        st.query_params[SESSION_KEY] = st.session_state[SESSION_KEY]


def switch() -> None:
    """The ไทย / English switch of the sidebar."""

    def chosen() -> None:
        value = st.session_state.get("lang-switch")
        if value in LANGUAGES:
            st.session_state[SESSION_KEY] = value
            st.query_params[SESSION_KEY] = value
        else:  # a click on the chosen language unselects it: keep it chosen
            st.session_state["lang-switch"] = language()

    st.segmented_control(
        t("app.language"),
        list(LANGUAGES),
        format_func=LANGUAGES.get,
        default=language(),
        key="lang-switch",
        on_change=chosen,
        label_visibility="collapsed",
    )


def language_name(code: str) -> str:
    """A Whisper language's name in the session's language: 'ญี่ปุ่น' or 'Japanese'."""
    babel_code = {"jw": "jv"}.get(code, code)
    return _language_names(language()).get(babel_code) or code


@cache
def _language_names(lang: str) -> dict[str, str]:
    return dict(Locale(lang).languages)


@cache
def _error_patterns(lang: str) -> list[tuple[re.Pattern[str], str]]:
    """The `errors` table's keys are the services' English sentences, `{0}`, `{1}` where they vary,
    so the English catalog needs no such table."""
    patterns = []
    for key in catalog(lang):
        if key.startswith("errors."):
            english = key.removeprefix("errors.")
            parts = re.split(r"\{(\d+)\}", english)
            regex = "".join(
                re.escape(part) if i % 2 == 0 else f"(?P<p{part}>.+?)" for i, part in enumerate(parts)
            )
            patterns.append((re.compile(regex + r"\Z", re.DOTALL), key))
    # The most specific first: "Stopped because its page was left." before "Stopped because {0}."
    return sorted(patterns, key=lambda p: (p[0].groups, -len(p[1])))


def error_text(error: Exception | str) -> str:
    """An error sentence from the services in the session's language."""
    text, lang = str(error), language()
    if lang == DEFAULT:
        return text
    for pattern, key in _error_patterns(lang):
        if match := pattern.match(text):
            values = {int(name[1:]): value for name, value in match.groupdict().items()}
            return catalog(lang)[key].format(*(values[i] for i in range(len(values))))
    return text
