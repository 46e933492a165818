"""The "Clean up now" control: runs the orphan sweep and says what it fixed."""

import streamlit as st

from ttservice.exceptions import TTServiceError
from ttservice.interfaces.web import services


def cleanup_button(key: str) -> None:
    if not st.button("Clean up now", key=key, help="Find jobs whose worker is gone or silent and fix them."):
        return
    try:
        result = services.manager().cleanup_orphaned_processes()
    except TTServiceError as error:
        st.error(str(error))
        return
    if not result.finalized:
        st.success("Clean-up found nothing to fix: every processing job has its live worker.")
        return
    fixed = "; ".join(f"job {job_id}: {why}" for job_id, why in result.finalized)
    st.success(f"Clean-up fixed {len(result.finalized)} job(s) — {fixed}.")
