"""History: every job with its true status; View opens live monitoring or the result."""

import streamlit as st

from ttservice import actions
from ttservice.exceptions import TTServiceError
from ttservice.interfaces.web import services
from ttservice.interfaces.web.components.cleanup import cleanup_button
from ttservice.interfaces.web.components.job_view import finished_view
from ttservice.interfaces.web.components.live_panel import live_panel
from ttservice.jobs import JobStatus, Runner, iso
from ttservice.transcription import export

PAGE_SIZE = 20
store = services.store()
VIA_API = "via the API"


def show_job(job_id: int) -> None:
    if st.button("← All jobs"):
        del st.query_params["job"]
        st.rerun()
    try:
        job = store.get_job(job_id)
    except TTServiceError as error:
        st.error(str(error))
        return
    st.title(f"Job {job.id}: {job.filename or '(unnamed)'}")
    st.markdown(
        f"{services.BADGES[job.status]} · model {job.options.model or '-'} · "
        f"language {services.language_of(job)} · audio {export.clock(job.duration)}"
        + (f" · {VIA_API}" if job.runner is Runner.API else "")
    )
    if job.finished:
        finished_view(job)
    else:
        live_panel(job.id)


def show_list() -> None:
    st.title("History")
    cleanup_button("cleanup-history")
    left, right = st.columns([1, 2])
    status_name = left.selectbox("Status", ["all"] + [s.value for s in JobStatus])
    search = right.text_input("Search transcripts", placeholder="words from the transcript")
    status = None if status_name == "all" else JobStatus(status_name)
    total = store.count_jobs(status, search)
    pages = max(1, -(-total // PAGE_SIZE))
    page = st.number_input(f"Page (of {pages})", 1, pages, 1) if pages > 1 else 1
    jobs = store.list_jobs(status, PAGE_SIZE, (page - 1) * PAGE_SIZE, search)
    st.caption(f"{total} job(s)")
    widths = [1, 2, 4, 3, 2, 2, 2, 1]
    for column, title in zip(
        st.columns(widths),
        ["Job", "Status", "File", "Created", "Audio", "Progress", "Speed", ""],
        strict=True,
    ):
        column.markdown(f"**{title}**")
    for job in jobs:
        cols = st.columns(widths)
        cols[0].write(str(job.id))
        stalled = job.stalled(services.settings().stall_timeout)
        cols[1].markdown(services.BADGES[job.status] + (" :orange-badge[stalled]" if stalled else ""))
        if (waiting := actions.models.waiting_for(store, job)) is not None:
            cols[1].caption(waiting[0])
        cols[2].write(job.filename or "-")
        if job.runner is Runner.API:
            cols[2].caption(VIA_API)
        cols[3].write((iso(job.created_at) or "-").replace("T", " ").replace("+00:00", " UTC"))
        cols[4].write(export.clock(job.duration))
        cols[5].write(f"{job.progress:.0%}")
        speed = job.speed()
        cols[6].write(f"{speed:.1f}x" if speed else "-")
        if cols[7].button("View", key=f"view-{job.id}"):
            st.query_params["job"] = str(job.id)
            st.rerun()


selected = st.query_params.get("job")
if selected and selected.isdigit():
    show_job(int(selected))
else:
    show_list()
