"""The Transcribe page's live list of the jobs started from it (renews their leases)."""

import streamlit as st

from ttservice import actions
from ttservice.exceptions import TTServiceError
from ttservice.interfaces.web import services
from ttservice.interfaces.web.i18n import error_text, t


@st.fragment(run_every=2)
def job_progress_list(mine: list[dict]) -> None:
    store = services.store()
    for entry in mine:
        try:
            job = store.get_job(entry["id"])
        except TTServiceError as error:
            st.error(error_text(error))
            continue
        if entry["lease"] and not job.finished:
            store.renew_lease(job.id)  # this page is still open
        speed = job.speed()
        label = f"{t('job.number', id=job.id)} · {job.filename} · {services.badge(job.status)}"
        if speed:
            label += " · " + t("job.speed", speed=f"{speed:.1f}")
        st.markdown(label)
        st.progress(min(max(job.progress, 0.0), 1.0))
        if (waiting := actions.models.waiting_for(store, job, services.settings())) is not None:
            st.caption(error_text(waiting[0]))
        if job.reason:
            st.error(error_text(job.reason))
        services.page_link(
            "views/history.py",
            t("transcribe.open_job", id=job.id),
            f"history?job={job.id}",
            query_params={"job": job.id},
        )
