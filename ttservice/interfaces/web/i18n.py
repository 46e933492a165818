"""The web app's words in Thai and English: one catalog per language, read through `t(key, **values)`.

The language belongs to a browser session, never to the process (several sessions share one
Streamlit process, so `gettext.install` would give them all one language). It is, in order:
`?lang=th|en` in the URL, the choice made earlier in this session, the browser's language
(`st.context.locale`), else English.

What the services say (errors, a job's reason) are codes with parameters (`ttservice.messages`),
whose own catalogs hold their sentences in both languages; `error_text` renders one in the
session's language.
"""

from __future__ import annotations

import string
import tomllib
from functools import cache
from pathlib import Path

import streamlit as st
from babel import Locale

from ttservice import messages
from ttservice.messages import Said

LOCALES = Path(__file__).with_name("locales")
LANGUAGES = {"th": "ไทย", "en": "English"}
DEFAULT = "en"
SESSION_KEY = "lang"
# Keys asked for that a catalog lacks, so that a test can see them (a page still shows English).
missing: set[tuple[str, str]] = set()


@cache
def catalog(lang: str) -> dict[str, str]:
    with open(LOCALES / f"{lang}.toml", "rb") as file:
        return messages.flatten(tomllib.load(file))


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


def error_text(said: Said | None) -> str:
    """What the services said (an error, a stored reason) in the session's language; a sentence
    stored by an earlier version, which has no code, as it is."""
    return messages.text(said, language())
