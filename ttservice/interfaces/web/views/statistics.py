"""Statistics: computed from the statuses in the store, so only as true as they are."""

import pandas as pd
import streamlit as st

from ttservice.interfaces.web import services
from ttservice.interfaces.web.components.cleanup import cleanup_button
from ttservice.jobs import JobStatus
from ttservice.transcription import export

st.title("Statistics")
cleanup_button("cleanup-statistics")
stats = services.store().stats()
counts = {s.value: stats["by_status"].get(s.value, 0) for s in JobStatus}
total = sum(stats["by_status"].values())

for column, name in zip(st.columns(len(counts)), counts, strict=True):
    column.metric(name.capitalize(), counts[name])

finished = counts["completed"] + counts["failed"] + counts["cancelled"] + counts["interrupted"]
rate = (lambda n: f"{n / finished:.0%}") if finished else (lambda n: "-")
a, b, c, d = st.columns(4)
a.metric("Audio transcribed", f"{stats['audio_hours']:.2f} h")
b.metric("Success rate", rate(counts["completed"]))
c.metric("Failure rate", rate(counts["failed"]))
d.metric("Cancel rate", rate(counts["cancelled"] + counts["interrupted"]))
q, r = st.columns(2)
q.metric("Mean time queued", export.clock(stats["mean_queued_s"]))
r.metric("Mean time running", export.clock(stats["mean_running_s"]))

st.subheader("Speed by model")
if stats["speed_by_model"]:
    st.table(
        pd.DataFrame(stats["speed_by_model"]).rename(
            columns={"model": "Model", "speed": "Mean speed (x realtime)", "n": "Jobs"}
        )
    )
else:
    st.caption("No completed job yet.")

st.subheader("Jobs over time")
if stats["daily"]:
    daily = pd.DataFrame(stats["daily"]).pivot_table(index="day", columns="status", values="n", fill_value=0)
    st.bar_chart(daily)
st.caption(f"{total} job(s) in all.")
