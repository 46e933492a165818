"""A finished job: its transcript, downloads, error, resume, re-run and delete."""

import streamlit as st

from ttservice import actions
from ttservice.exceptions import TTServiceError
from ttservice.interfaces.web import services
from ttservice.jobs import Job, JobStatus, Runner
from ttservice.transcription import export

MIME = {"txt": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt", "json": "application/json"}


def finished_view(job: Job) -> None:
    store, settings = services.store(), services.settings()
    segments = store.segments(job.id)
    if job.error:
        st.error(job.error)
    if segments and job.status is not JobStatus.COMPLETED:
        st.info(f"Partial transcript: {len(segments)} segment(s) were saved before the job ended.")
    if job.status is JobStatus.COMPLETED and not segments:
        st.info("No speech was found in this file.")
    if segments:
        lines = [
            f"[{export.timestamp(s.start, '.')} → {export.timestamp(s.end, '.')}] {s.text}" for s in segments
        ]
        st.code("\n".join(lines), language=None, wrap_lines=True)
        stem = (job.filename or f"job_{job.id}").rsplit(".", 1)[0]
        for column, fmt in zip(st.columns(len(export.FORMATS)), export.FORMATS, strict=True):
            column.download_button(
                f"Download {fmt.upper()}",
                export.render(fmt, segments, job),
                file_name=f"{stem}.{fmt}",
                mime=MIME[fmt],
                key=f"dl-{fmt}-{job.id}",
                on_click="ignore",
            )
    resume, rerun, delete = st.columns(3)
    if job.resumable and resume.button(
        f"Resume from {export.timestamp(store.resume_point(job.id), '.')}", key=f"resume-{job.id}"
    ):
        try:
            actions.resume(store, job.id, Runner.SERVICE)
        except TTServiceError as error:
            st.error(str(error))
        else:
            st.rerun()
    if rerun.button("Re-run with the same settings", key=f"rerun-{job.id}"):
        try:
            new_id = actions.rerun(store, job.id)
        except TTServiceError as error:
            st.error(str(error))
        else:
            st.query_params["job"] = str(new_id)
            st.rerun()
    confirm_key = f"confirm-delete-{job.id}"
    if delete.button("Delete", key=f"delete-{job.id}"):
        st.session_state[confirm_key] = True
    if st.session_state.get(confirm_key):
        st.warning(f"Delete job {job.id} with its upload and log? This cannot be undone.")
        if st.button("Yes, delete it", key=f"yes-delete-{job.id}"):
            st.session_state.pop(confirm_key)
            actions.delete(store, settings, job.id)
            del st.query_params["job"]
            st.rerun()
