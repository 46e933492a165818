"""The source document's Live Logs panel for a running job, refreshed on its own."""

import re

import streamlit as st

from ttservice import actions
from ttservice.interfaces.web import services
from ttservice.interfaces.web.components.downloads import describe
from ttservice.jobs import JobStatus
from ttservice.transcription import export

CHUNK = re.compile(r"Processing chunk (\d+)/(\d+)")
REFRESH_SECONDS = 5
LOG_LINES = 200


def live_panel(job_id: int) -> None:
    auto = st.toggle(
        f"Auto-refresh every {REFRESH_SECONDS} s",
        value=True,
        key=f"auto-{job_id}",
        help="Turn off to stop auto-refresh; Refresh still works.",
    )

    @st.fragment(run_every=REFRESH_SECONDS if auto else None)
    def panel() -> None:
        store, pm = services.store(), services.manager()
        job = store.get_job(job_id)
        if job.finished:
            st.rerun()  # the whole page switches to the finished view
        status = pm.get_process_status(job_id)
        lines = pm.get_logs(job_id, LOG_LINES)
        chunk = next((m.group(0) for line in reversed(lines) if (m := CHUNK.search(line))), None)
        st.subheader("Live Logs")
        cpu, mem, elapsed, speed = st.columns(4)
        cpu.metric("CPU", f"{status.cpu_percent:.1f}%")
        memory = f"{status.memory_mb:.0f} MB"
        if status.gpu_bytes is not None:
            memory += f" · GPU {status.gpu_bytes / 2**20:.0f} MB"
        mem.metric("Memory", memory)
        elapsed.metric("Elapsed", export.clock(status.elapsed))
        speed_value = job.speed()
        speed.metric("Speed", f"{speed_value:.1f}x realtime" if speed_value else "-")
        eta = job.eta()
        st.progress(
            min(max(job.progress, 0.0), 1.0),
            text=f"{job.progress:.0%} · {chunk or 'starting'} · ETA {export.clock(eta)}",
        )
        waiting = actions.models.waiting_for(store, job)
        if waiting is not None:
            st.info(waiting[0])
            if waiting[1] is not None:
                st.progress(waiting[1].progress, text=f"{waiting[1].model} · {describe(waiting[1])}")
        elif job.status is JobStatus.QUEUED:
            st.info("Waiting for a free slot; the service starts it as soon as one frees up.")
        elif not status.alive:
            st.warning(f"The worker is not running ({status.note}); the next sweep will record its end.")
        if status.stalled:
            st.warning(
                "The worker is alive but its progress has not moved for a long time: it may be stalled."
            )
        st.code("\n".join(lines) or "(no log yet)", language=None, height=300)
        stop, refresh = st.columns(2)
        confirm_key = f"confirm-stop-{job_id}"
        if stop.button("Stop Transcription", key=f"stop-{job_id}", type="primary"):
            st.session_state[confirm_key] = True
        refresh.button("Refresh", key=f"refresh-{job_id}")  # any click reruns this fragment
        if st.session_state.get(confirm_key):
            st.warning(f"Stop job {job_id}? What is transcribed so far is kept.")
            yes, no = st.columns(2)
            if yes.button("Yes, stop it", key=f"yes-stop-{job_id}"):
                st.session_state.pop(confirm_key)
                pm.kill_process(job_id)
                st.rerun()
            if no.button("No, keep it running", key=f"no-stop-{job_id}"):
                st.session_state.pop(confirm_key)
                st.rerun(scope="fragment")

    panel()
