"""The Transcribe page's live list of the jobs started from it (renews their leases)."""

import streamlit as st

from ttservice import actions
from ttservice.exceptions import TTServiceError
from ttservice.interfaces.web import services


@st.fragment(run_every=2)
def job_progress_list(mine: list[dict]) -> None:
    store = services.store()
    for entry in mine:
        try:
            job = store.get_job(entry["id"])
        except TTServiceError as error:
            st.error(str(error))
            continue
        if entry["lease"] and not job.finished:
            store.renew_lease(job.id)  # this page is still open
        speed = job.speed()
        label = f"Job {job.id} · {job.filename} · {services.BADGES[job.status]}"
        if speed:
            label += f" · {speed:.1f}x realtime"
        st.markdown(label)
        st.progress(min(max(job.progress, 0.0), 1.0))
        if (waiting := actions.models.waiting_for(store, job)) is not None:
            st.caption(waiting[0])
        if job.error:
            st.error(job.error)
        st.page_link("views/history.py", label=f"Open job {job.id} in History", query_params={"job": job.id})
