"""The running model downloads, with live progress and Stop; refreshed every second."""

import streamlit as st

from ttservice import actions
from ttservice.interfaces.web import services
from ttservice.interfaces.web.i18n import t
from ttservice.jobs.record import PHASE_CONVERTING
from ttservice.transcription.export import clock

REFRESH_SECONDS = 1


def describe(row) -> str:
    """'45% · 60 of 140 MB · 12.0 MB/s · ETA 0:00:07' for a download's row; for a conversion,
    'converting to CTranslate2: step 5 of 14 · needs about 1.6 GB of memory'."""
    if row.phase == PHASE_CONVERTING:
        text = t("downloads.converting", done=row.steps_done, total=row.steps_total or "?")
        if row.memory_mb:
            text += " · " + t("downloads.converting_memory", gb=f"{row.memory_mb / 1024:.1f}")
        return text
    text = f"{row.progress:.0%}"
    if row.bytes_total:
        text += " · " + t(
            "downloads.of", done=f"{row.bytes_done / 2**20:,.0f}", total=f"{row.bytes_total / 2**20:,.0f}"
        )
    speed = row.speed()
    if speed:
        text += " · " + t("downloads.speed", speed=f"{speed / 2**20:.1f}", eta=clock(row.eta()))
    return text


@st.fragment(run_every=REFRESH_SECONDS)
def download_progress() -> None:
    store, settings = services.store(), services.settings()
    rows = store.list_downloads(active_only=True)
    before = st.session_state.get("downloading", set())
    now = {row.id for row in rows}
    st.session_state["downloading"] = now
    if before - now:
        st.rerun()  # one finished: the whole page shows it installed (or why not)
    if not rows:
        return
    st.subheader(t("downloads.title"))
    for row in rows:
        text, stop = st.columns([5, 1])
        text.progress(row.progress, text=f"{row.model} · {describe(row)}")
        if stop.button(t("downloads.stop"), key=f"stop-download-{row.id}"):
            actions.models.stop_download(store, settings, row.id)
            st.rerun()
