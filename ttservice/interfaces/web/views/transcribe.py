"""Transcribe: upload files, choose options, start, and follow the new jobs."""

import streamlit as st

from ttservice import actions
from ttservice.exceptions import TTServiceError
from ttservice.interfaces.web import services
from ttservice.interfaces.web.components.job_list import job_progress_list
from ttservice.interfaces.web.i18n import error_text, language_name, t
from ttservice.jobs import TranscribeOptions
from ttservice.models.languages import LANGUAGES
from ttservice.transcription import ENGINES

MEDIA_TYPES = ["wav", "mp3", "m4a", "flac", "ogg", "opus", "aac", "wma", "mp4", "mkv", "mov", "webm", "avi"]
AUTO = "auto"
TASKS = ["transcribe", "translate"]
THAI_OFFER = "thai_offer"  # the Thai fine-tune offered after Thai was asked of another model
SPEAKERS = ["off", "auto", "2", "3", "4", "5", "6"]  # label no one, any number, or so many speakers

settings = services.settings()
store = services.store()
st.title(t("transcribe.title"))
known = actions.models.list_models(store, settings)
models = [m.name for m in known if m.installed]  # the bundled one first
if settings.model not in models:
    models.append(settings.model)  # the configured default, downloaded when a job first needs it

with st.form("transcribe", clear_on_submit=True):
    files = st.file_uploader(
        t("transcribe.files", mb=f"{settings.max_upload_mb:,.0f}"),
        type=MEDIA_TYPES,
        accept_multiple_files=True,
    )
    left, right = st.columns(2)  # rows of two, so that a phone shows them in order
    model = left.selectbox(
        t("transcribe.model"), models, index=models.index(settings.model), help=t("transcribe.model_help")
    )
    language = right.selectbox(
        t("transcribe.language"),
        [AUTO, *LANGUAGES],
        format_func=lambda code: (
            t("transcribe.auto_detect") if code == AUTO else f"{language_name(code)} ({code})"
        ),
    )
    left, right = st.columns(2, vertical_alignment="bottom")
    task = left.radio(
        t("transcribe.task"), TASKS, format_func=lambda task: t(f"transcribe.{task}"), horizontal=True
    )
    words = right.checkbox(t("transcribe.word_timestamps"))
    who = st.selectbox(
        t("transcribe.speakers"),
        SPEAKERS,
        format_func=lambda v: t(f"transcribe.speakers_{v}") if v in ("off", "auto") else v,
        help=t("transcribe.speakers_help"),
    )
    with st.expander(t("transcribe.advanced")):
        engine = st.selectbox(
            t("transcribe.engine"),
            ENGINES,
            index=ENGINES.index(settings.engine) if settings.engine in ENGINES else 0,
            format_func=lambda name: t("transcribe.engine_auto") if name == "auto" else name,
            help=t("transcribe.engine_help"),
        )
    lease = st.checkbox(t("transcribe.lease"))
    started = st.form_submit_button(t("transcribe.start"), type="primary")
services.page_link("views/models.py", t("transcribe.get_model"), "models", icon=":material/download:")


def offer_multilingual() -> None:
    """Where every installed model knows only English, say so, and offer the multilingual model
    recommended for this machine: one click downloads it, then it is in the list above."""
    installed = [m for m in known if m.installed]
    if not installed or any(m.multilingual is not False for m in installed):
        return
    general = [m for m in known if m.recommended and m.languages != ["th"]]
    offer = general[0] if general else next(m for m in known if m.name == "base")
    offer_download(offer, t("transcribe.english_only", model=offer.name))


def offer_thai() -> None:
    """Thai asked of a model not tuned for it: offer the Thai fine-tune recommended here (kept
    for the session, so that its button still answers after the page runs again)."""
    offer = next((m for m in known if m.name == st.session_state.get(THAI_OFFER)), None)
    if offer is None:
        return
    if offer.installed:
        st.info(t("transcribe.thai_installed", model=offer.name))
        return
    offer_download(offer, t("transcribe.thai_model", model=offer.name, published=offer.published or ""))


def offer_download(offer, why: str) -> None:
    """A notice, and one click that asks for `offer` to be downloaded (then it is in the list above)."""
    box = st.container(border=True)
    box.info(why)
    if offer.download is not None:
        box.caption(t("models.downloading_badge", progress=f"{offer.download.progress:.0%}"))
    elif box.button(t("transcribe.get_multilingual", model=offer.name, mb=f"{offer.memory_mb or 0:,.0f}")):
        try:
            actions.models.request_download(store, offer.name)
        except TTServiceError as error:
            st.error(error_text(error))
        else:
            st.toast(t("models.downloading", name=offer.name))


offer_multilingual()

if started:
    options = TranscribeOptions.from_settings(
        settings,
        model=model,
        language=None if language == AUTO else language,
        task=task,
        word_timestamps=words,
        speakers=None if who == "off" else who,
        engine=engine,
    )
    suggestion = actions.models.thai_suggestion(store, settings, options)
    st.session_state[THAI_OFFER] = suggestion.name if suggestion else None
    if not files:
        st.error(t("transcribe.no_file"))
    else:
        mine = st.session_state.setdefault("my_jobs", [])
        try:
            for upload in files:
                data = upload.getvalue()
                job_id = actions.submit_upload(store, settings, upload.name, data, options, lease)
                mine.append({"id": job_id, "lease": lease})
        except TTServiceError as error:
            st.error(error_text(error))

offer_thai()

if st.session_state.get("my_jobs"):
    st.subheader(t("transcribe.your_jobs"))
    st.caption(t("transcribe.your_jobs_note"))
    job_progress_list(st.session_state["my_jobs"])
