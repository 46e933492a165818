"""Transcribe: upload files, choose options, start, and follow the new jobs."""

import streamlit as st

from ttservice import actions
from ttservice.interfaces.web import services
from ttservice.interfaces.web.components.job_list import job_progress_list
from ttservice.jobs import TranscribeOptions

MEDIA_TYPES = ["wav", "mp3", "m4a", "flac", "ogg", "opus", "aac", "wma", "mp4", "mkv", "mov", "webm", "avi"]
LANGUAGES = {"Auto-detect": None, "English": "en", "Thai": "th", "Chinese": "zh", "Japanese": "ja"}

settings = services.settings()
st.title("Transcribe")

with st.form("transcribe", clear_on_submit=True):
    files = st.file_uploader(
        f"Audio or video files (up to {settings.max_upload_mb:.0f} MB each)",
        type=MEDIA_TYPES,
        accept_multiple_files=True,
    )
    left, right = st.columns(2)
    model = left.text_input("Model (name or local folder)", value=settings.model)
    language = right.selectbox("Language", list(LANGUAGES))
    task = left.radio("Task", ["transcribe", "translate"], horizontal=True)
    words = right.checkbox("Word timestamps")
    lease = st.checkbox("Stop this job if I leave the page")
    started = st.form_submit_button("Start transcription", type="primary")

if started:
    if not files:
        st.error("Choose at least one file to transcribe.")
    else:
        options = TranscribeOptions.from_settings(
            settings,
            model=model.strip() or None,
            language=LANGUAGES[language],
            task=task,
            word_timestamps=words,
        )
        mine = st.session_state.setdefault("my_jobs", [])
        for upload in files:
            job_id = actions.submit_upload(
                services.store(), settings, upload.name, upload.getvalue(), options, lease
            )
            mine.append({"id": job_id, "lease": lease})

if st.session_state.get("my_jobs"):
    st.subheader("Your jobs")
    st.caption("Leaving this page does not stop them, unless you asked for that when starting them.")
    job_progress_list(st.session_state["my_jobs"])
