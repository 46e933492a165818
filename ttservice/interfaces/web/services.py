"""The services a page may use, created once per web-app process.

The pages never open the database or spawn a process themselves. The
ProcessManager here is a client: it reads process status, tails logs, stops
and sweeps on request; it never dispatches or watches (the service does).
"""

from __future__ import annotations

import streamlit as st

from ttservice.config import Settings
from ttservice.jobs import JobStatus, Store, open_store
from ttservice.supervision import ProcessManager

BADGES = {
    JobStatus.QUEUED: ":gray-badge[queued]",
    JobStatus.PROCESSING: ":blue-badge[processing]",
    JobStatus.COMPLETED: ":green-badge[completed]",
    JobStatus.FAILED: ":red-badge[failed]",
    JobStatus.CANCELLED: ":orange-badge[cancelled]",
    JobStatus.INTERRUPTED: ":violet-badge[interrupted]",
}


@st.cache_resource
def settings() -> Settings:
    return Settings.from_env()


@st.cache_resource
def store() -> Store:
    return open_store(settings())


@st.cache_resource
def manager() -> ProcessManager:
    return ProcessManager(store(), settings())
