"""The services a page may use, created once per web-app process.

The pages never open the database or spawn a process themselves. The
ProcessManager here is a client: it reads process status, tails logs, stops
and sweeps on request; it never dispatches or watches (the service does).
"""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from ttservice.config import Settings
from ttservice.interfaces.web.i18n import language_name, t
from ttservice.jobs import Job, JobStatus, Store, iso, open_store
from ttservice.supervision import ProcessManager

COLORS = {
    JobStatus.QUEUED: "gray",
    JobStatus.PROCESSING: "blue",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "orange",
    JobStatus.INTERRUPTED: "violet",
}


def badge(status: JobStatus) -> str:
    return f":{COLORS[status]}-badge[{t('status.' + status.value)}]"


def language_of(job: Job) -> str:
    """'Thai (th), detected at 97%', 'English (en)', or 'auto-detect' before it is known."""
    code = job.detected_language or job.options.language
    if code is None:
        return t("job.auto_detect")
    if code == "en" and job.language_probability is None and not job.options.language:
        return t("job.english_only")  # transcribed as English, by a model that knows no other
    text = f"{language_name(code)} ({code})"
    if job.language_probability is not None and not job.options.language:
        text = t("job.detected", language=text, probability=f"{job.language_probability:.0%}")
    return text


def when(value: float | str | None) -> str:
    """A stored time as '2026-12-02 10:00:05 UTC' (the earlier app's text as it is)."""
    return (iso(value) or "-").replace("T", " ").replace("+00:00", " UTC")


def created(job: Job) -> str:
    """When a job was made, as '2026-12-02 10:00:05 UTC'."""
    return when(job.created_at)


def page_link(page: str, label: str, url_path: str, **options) -> None:
    """A link to another page; a plain link where the page runs outside the app's navigation."""
    try:
        st.page_link(page, label=label, **options)
    except StreamlitPageNotFoundError:
        st.markdown(f"[{label}](/{url_path})")


@st.cache_resource
def settings() -> Settings:
    return Settings.from_env()


@st.cache_resource
def store() -> Store:
    return open_store(settings())


@st.cache_resource
def manager() -> ProcessManager:
    return ProcessManager(store(), settings())
