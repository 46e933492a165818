"""Transcribe: upload files, choose options, start, and follow the new jobs."""

import streamlit as st

from ttservice import actions
from ttservice.exceptions import RequestError
from ttservice.interfaces.web import services
from ttservice.interfaces.web.components.job_list import job_progress_list
from ttservice.jobs import TranscribeOptions
from ttservice.models.languages import LANGUAGES

MEDIA_TYPES = ["wav", "mp3", "m4a", "flac", "ogg", "opus", "aac", "wma", "mp4", "mkv", "mov", "webm", "avi"]
AUTO = "auto"

settings = services.settings()
store = services.store()
st.title("Transcribe")
models = actions.models.installed_names(store, settings)
if settings.model not in models:
    models.append(settings.model)  # the configured default, downloaded when a job first needs it

with st.form("transcribe", clear_on_submit=True):
    files = st.file_uploader(
        f"Audio or video files (up to {settings.max_upload_mb:.0f} MB each)",
        type=MEDIA_TYPES,
        accept_multiple_files=True,
    )
    left, right = st.columns(2)
    model = left.selectbox(
        "Model",
        models,
        index=models.index(settings.model),
        help="The models on this machine; the Models page downloads others.",
    )
    language = right.selectbox(
        "Language",
        [AUTO, *LANGUAGES],
        format_func=lambda code: "Auto-detect" if code == AUTO else f"{LANGUAGES[code]} ({code})",
    )
    task = left.radio("Task", ["transcribe", "translate"], horizontal=True)
    words = right.checkbox("Word timestamps")
    lease = st.checkbox("Stop this job if I leave the page")
    started = st.form_submit_button("Start transcription", type="primary")
services.page_link("views/models.py", "Get another model", "models", icon=":material/download:")

if started:
    if not files:
        st.error("Choose at least one file to transcribe.")
    else:
        options = TranscribeOptions.from_settings(
            settings,
            model=model,
            language=None if language == AUTO else language,
            task=task,
            word_timestamps=words,
        )
        mine = st.session_state.setdefault("my_jobs", [])
        try:
            for upload in files:
                data = upload.getvalue()
                job_id = actions.submit_upload(store, settings, upload.name, data, options, lease)
                mine.append({"id": job_id, "lease": lease})
        except RequestError as error:
            st.error(str(error))

if st.session_state.get("my_jobs"):
    st.subheader("Your jobs")
    st.caption("Leaving this page does not stop them, unless you asked for that when starting them.")
    job_progress_list(st.session_state["my_jobs"])
