"""The source document's Live Logs panel for a running job, refreshed on its own."""

import streamlit as st

from ttservice import actions
from ttservice.interfaces.web import services
from ttservice.interfaces.web.components.downloads import describe
from ttservice.interfaces.web.i18n import error_text, t
from ttservice.jobs import JobStatus
from ttservice.transcription import export

REFRESH_SECONDS = 5
LOG_LINES = 200
# The newest log lines and transcript segments are shown whole, never behind a scroll bar;
# the rest of the log is one click away.
TAIL_LINES = 12
LATEST_SEGMENTS = 6


def live_panel(job_id: int) -> None:
    auto = st.toggle(
        t("live.auto_refresh", seconds=REFRESH_SECONDS),
        value=True,
        key=f"auto-{job_id}",
        help=t("live.auto_refresh_help"),
    )

    @st.fragment(run_every=REFRESH_SECONDS if auto else None)
    def panel() -> None:
        store, pm = services.store(), services.manager()
        job = store.get_job(job_id)
        if job.finished:
            st.rerun()  # the whole page switches to the finished view
        status = pm.get_process_status(job_id)
        lines = pm.get_logs(job_id, LOG_LINES)
        window = job.chunk()
        chunk = t("live.chunk", n=window[0], total=window[1]) if window else t("live.starting")
        st.subheader(t("live.title"))
        cpu, mem, elapsed, speed = st.columns(4)
        cpu.metric(t("live.cpu"), "-" if status.elsewhere else f"{status.cpu_percent:.1f}%")
        memory = "-" if status.elsewhere else f"{status.memory_mb:,.0f} MB"  # not measured from here
        if status.gpu_bytes is not None:
            memory += f" · GPU {status.gpu_bytes / 2**20:,.0f} MB"
        mem.metric(t("live.memory"), memory)
        elapsed.metric(t("live.elapsed"), export.clock(status.elapsed))
        speed_value = job.speed()
        speed.metric(
            t("live.speed"),
            f"{speed_value:.1f}×" if speed_value else "-",  # times realtime: the help says so in words
            help=t("live.speed_help"),
        )
        st.progress(
            min(max(job.progress, 0.0), 1.0),
            text=t(
                "live.progress",
                progress=f"{job.progress:.0%}",
                chunk=chunk,
                eta=export.clock(job.eta()),
            ),
        )
        waiting = actions.models.waiting_for(store, job, services.settings())
        if waiting is not None:
            st.info(error_text(waiting[0]))
            if waiting[1] is not None:
                st.progress(waiting[1].progress, text=f"{waiting[1].model} · {describe(waiting[1])}")
        elif job.status is JobStatus.QUEUED:
            st.info(t("live.waiting_slot"))
        elif job.labelling:
            st.info(t("live.labelling"))
        elif status.elsewhere:
            st.info(t("live.elsewhere", host=status.elsewhere))
        elif not status.alive:
            st.warning(t("live.not_running", note=error_text(status.note or "")))
        if status.stalled:
            st.warning(t("live.stalled"))
        stop = refresh = st.container(horizontal=True)  # above the text, in reach without scrolling
        confirm_key = f"confirm-stop-{job_id}"
        if stop.button(t("live.stop"), key=f"stop-{job_id}", type="primary"):
            st.session_state[confirm_key] = True
        refresh.button(t("live.refresh"), key=f"refresh-{job_id}")  # any click reruns this fragment
        if st.session_state.get(confirm_key):
            st.warning(t("live.stop_confirm", id=job_id))
            yes = no = st.container(horizontal=True)
            if yes.button(t("live.stop_yes"), key=f"yes-stop-{job_id}"):
                st.session_state.pop(confirm_key)
                pm.kill_process(job_id)
                st.rerun()
            if no.button(t("live.stop_no"), key=f"no-stop-{job_id}"):
                st.session_state.pop(confirm_key)
                st.rerun(scope="fragment")
        latest = store.latest_segments(job_id, LATEST_SEGMENTS)
        st.markdown(f"**{t('live.transcript')}**")
        if latest:
            st.code(
                "\n".join(f"[{export.clock(s.start)}] {s.text.strip()}" for s in latest),
                language=None,
                wrap_lines=True,
            )
        else:
            st.caption(t("live.no_transcript"))
        st.markdown(f"**{t('live.log')}**")
        st.code("\n".join(lines[-TAIL_LINES:]) or t("live.no_log"), language=None, wrap_lines=True)
        if len(lines) > TAIL_LINES:
            with st.expander(t("live.full_log", n=len(lines))):
                st.code("\n".join(lines), language=None, height=400)

    panel()
