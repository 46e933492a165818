"""History: every job with its true status; View opens live monitoring or the result."""

import streamlit as st

from ttservice import actions
from ttservice.exceptions import TTServiceError
from ttservice.interfaces.web import services
from ttservice.interfaces.web.components.cleanup import cleanup_button
from ttservice.interfaces.web.components.job_view import finished_view
from ttservice.interfaces.web.components.live_panel import live_panel
from ttservice.interfaces.web.i18n import error_text, t
from ttservice.jobs import Job, JobStatus, Runner
from ttservice.transcription import export

PAGE_SIZE = 20
PAGE_KEY = "history-page"
# While a job on the page is queued or processing, the list redraws itself this often.
REFRESH_SECONDS = 2
store = services.store()


def machine(job: Job) -> list[str]:
    """Where the job ran, and which attempt, when the store is shared by several machines."""
    if not services.settings().database_url or job.host is None:
        return []
    return [t("job.host", host=job.host)] + ([t("job.attempt", n=job.attempt)] if job.attempt > 1 else [])


def summary(job: Job) -> str:
    parts = [
        t("job.model", model=job.options.model or "-"),
        *([t("job.engine", engine=job.engine)] if job.engine else []),
        t("job.language", language=services.language_of(job)),
        t("job.audio", duration=export.clock(job.duration)),
        *machine(job),
    ]
    if job.peak_memory_mb:
        parts.append(t("job.peak_memory", mb=f"{job.peak_memory_mb:,.0f}"))
    if job.runner is Runner.API:
        parts.append(t("job.via_api"))
    return " · ".join(parts)


def show_job(job_id: int) -> None:
    if st.button(t("history.all_jobs"), icon=":material/arrow_back:"):
        del st.query_params["job"]
        st.rerun()
    try:
        job = store.get_job(job_id)
    except TTServiceError as error:
        st.error(error_text(error))
        return
    st.title(t("history.job_title", id=job.id, name=job.filename or t("history.unnamed")))
    st.markdown(f"{services.badge(job.status)} · {summary(job)}")
    for warning in job.warnings:
        st.warning(error_text(warning))
    if job.finished:
        finished_view(job)
    else:
        live_panel(job.id)


def job_card(job: Job) -> None:
    with st.container(border=True):
        text, view = st.columns([6, 1], vertical_alignment="center")
        stalled = job.stalled(services.settings().stall_timeout)
        badges = services.badge(job.status) + (f" :orange-badge[{t('status.stalled')}]" if stalled else "")
        text.markdown(f"**{job.id}** · {job.filename or '-'} · {badges}")
        facts = [
            t("history.created", when=services.created(job)),
            t("job.audio", duration=export.clock(job.duration)),
        ]
        if not job.finished or job.progress:
            facts.append(t("history.progress", progress=f"{job.progress:.0%}"))
        if speed := job.speed():
            facts.append(t("job.speed", speed=f"{speed:.1f}"))
        facts += machine(job)
        if job.runner is Runner.API:
            facts.append(t("job.via_api"))
        text.caption(" · ".join(facts))
        if (waiting := actions.models.waiting_for(store, job, services.settings())) is not None:
            text.caption(error_text(waiting[0]))
        if job.reason and job.status is not JobStatus.COMPLETED:
            reason = error_text(job.reason)
            text.markdown(f":red[{reason}]" if job.status is JobStatus.FAILED else reason)
        if view.button(t("history.view"), key=f"view-{job.id}", width="stretch"):
            st.query_params["job"] = str(job.id)
            st.rerun()


def show_list() -> None:
    st.title(t("history.title"))
    cleanup_button("cleanup-history")
    left, right = st.columns([1, 2])
    status_name = left.selectbox(
        t("history.status"),
        ["all"] + [s.value for s in JobStatus],
        format_func=lambda name: t("history.all") if name == "all" else t(f"status.{name}"),
    )
    search = right.text_input(t("history.search"), placeholder=t("history.search_hint"))
    status = None if status_name == "all" else JobStatus(status_name)
    page = st.session_state.get(PAGE_KEY, 1)
    total, jobs = store.page_of_jobs(status, search, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))
    if page > pages:  # fewer jobs match than when that page was chosen
        st.session_state[PAGE_KEY] = page = pages
        total, jobs = store.page_of_jobs(status, search, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    if pages > 1:
        st.number_input(t("history.page", pages=pages), 1, pages, key=PAGE_KEY)
    active = any(not job.finished for job in jobs)
    first = [(total, jobs)]  # the fragment's first run shows what was just read

    @st.fragment(run_every=REFRESH_SECONDS if active else None)
    def listing() -> None:
        matching, shown = (
            first.pop() if first else store.page_of_jobs(status, search, PAGE_SIZE, (page - 1) * PAGE_SIZE)
        )
        st.caption(t("history.count", n=matching))
        if not shown:
            st.info(t("history.none_found") if search or status else t("history.none_yet"))
        for job in shown:
            job_card(job)
        if active and all(job.finished for job in shown):
            st.rerun()  # the last running job ended: redraw once, and stop refreshing

    listing()


selected = st.query_params.get("job")
if selected and selected.isdigit():
    show_job(int(selected))
else:
    show_list()
