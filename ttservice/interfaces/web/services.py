"""The services a page may use, created once per web-app process.

The pages never open the database or spawn a process themselves. The
ProcessManager here is a client: it reads process status, tails logs, stops
and sweeps on request; it never dispatches or watches (the service does).
"""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from ttservice.config import Settings
from ttservice.jobs import Job, JobStatus, Store, open_store
from ttservice.models.languages import language_name
from ttservice.supervision import ProcessManager

BADGES = {
    JobStatus.QUEUED: ":gray-badge[queued]",
    JobStatus.PROCESSING: ":blue-badge[processing]",
    JobStatus.COMPLETED: ":green-badge[completed]",
    JobStatus.FAILED: ":red-badge[failed]",
    JobStatus.CANCELLED: ":orange-badge[cancelled]",
    JobStatus.INTERRUPTED: ":violet-badge[interrupted]",
}


def language_of(job: Job) -> str:
    """'Thai (th), detected at 97%', 'English (en)', or 'auto-detect' before it is known."""
    code = job.detected_language or job.options.language
    if code is None:
        return "auto-detect"
    text = f"{language_name(code)} ({code})"
    if job.language_probability is not None and not job.options.language:
        text += f", detected at {job.language_probability:.0%}"
    return text


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
