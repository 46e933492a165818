"""The "Clean up now" control: runs the orphan sweep and says what it fixed."""

import streamlit as st

from ttservice.exceptions import TTServiceError
from ttservice.interfaces.web import services
from ttservice.interfaces.web.i18n import error_text, t


def cleanup_button(key: str) -> None:
    if not st.button(t("cleanup.button"), key=key, help=t("cleanup.help")):
        return
    try:
        result = services.manager().cleanup_orphaned_processes()
    except TTServiceError as error:
        st.error(error_text(error))
        return
    if not result.finalized:
        st.success(t("cleanup.nothing"))
        return
    fixed = "; ".join(
        t("cleanup.fixed_job", id=job_id, why=error_text(why)) for job_id, why in result.finalized
    )
    st.success(t("cleanup.fixed", n=len(result.finalized), jobs=fixed))
