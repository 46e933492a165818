"""Statistics: computed from the statuses in the store, so only as true as they are."""

import datetime as dt

import pandas as pd
import streamlit as st

from ttservice import actions
from ttservice.interfaces.web import services
from ttservice.interfaces.web.components.charts import chart, jobs_over_time
from ttservice.interfaces.web.components.cleanup import cleanup_button
from ttservice.interfaces.web.i18n import t
from ttservice.jobs import JobStatus
from ttservice.transcription import export

METRIC_WIDTH = 140  # px: six across 1400 px with the sidebar open

st.title(t("statistics.title"))
cleanup_button("cleanup-statistics")
stats = services.store().stats()
counts = {s.value: stats["by_status"].get(s.value, 0) for s in JobStatus}
total = sum(stats["by_status"].values())

finished = counts["completed"] + counts["failed"] + counts["cancelled"] + counts["interrupted"]
rate = (lambda n: f"{n / finished:.0%}") if finished else (lambda n: "-")
# Rows that wrap: six across a desktop, two across a phone (columns would stack one by one).
rows = [
    [(t(f"status.{name}").capitalize(), f"{n:,}", None, 1) for name, n in counts.items()],
    [
        (t("statistics.audio"), export.clock(stats["audio_hours"] * 3600), t("statistics.audio_help"), 2),
        (t("statistics.success_rate"), rate(counts["completed"]), None, 1),
        (t("statistics.failure_rate"), rate(counts["failed"]), None, 1),
        (t("statistics.cancel_rate"), rate(counts["cancelled"] + counts["interrupted"]), None, 1),
    ],
    [
        (t("statistics.mean_queued"), export.clock(stats["mean_queued_s"]), None, 2),
        (t("statistics.mean_running"), export.clock(stats["mean_running_s"]), None, 2),
    ],
]
for metrics in rows:
    row = st.container(horizontal=True, wrap=True)
    for label, value, about, span in metrics:
        row.metric(label, value, help=about, width=span * METRIC_WIDTH)

st.subheader(t("statistics.speed_by_model"))
if stats["speed_by_model"]:
    st.dataframe(
        pd.DataFrame(
            {
                t("statistics.model"): [row["model"] or "-" for row in stats["speed_by_model"]],
                t("statistics.speed"): [
                    t("job.speed", speed=f"{row['speed']:.1f}") for row in stats["speed_by_model"]
                ],
                t("statistics.jobs"): [f"{row['n']:,}" for row in stats["speed_by_model"]],
                t("statistics.peak_memory"): [
                    f"{row['peak_memory_mb']:,.0f} MB" if row["peak_memory_mb"] else "-"
                    for row in stats["speed_by_model"]
                ],
            }
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.caption(t("statistics.no_completed"))

st.subheader(t("statistics.machines"))
if machines := actions.jobs.machines(services.store()):
    columns = {
        t("statistics.machine"): [m.host.name for m in machines],
        t("statistics.slots"): [m.host.slots for m in machines],
        t("statistics.running"): [m.running for m in machines],
        t("statistics.last_contact"): [services.when(m.host.last_seen) for m in machines],
        t("statistics.contact"): [
            t("statistics.in_contact") if m.in_contact else t("statistics.away") for m in machines
        ],
    }
    if any(m.sweeper for m in machines):  # on PostgreSQL: the one service that recovers lost jobs
        columns[t("statistics.sweeper")] = ["✓" if m.sweeper else "" for m in machines]
    st.dataframe(pd.DataFrame(columns), hide_index=True, width="stretch")
else:
    st.caption(t("statistics.no_machines"))

st.subheader(t("statistics.talk_time"))
if labelled := services.store().jobs_with_speakers():
    store = services.store()
    jobs = {job_id: store.get_job(job_id) for job_id in labelled}
    chosen = st.selectbox(
        t("statistics.talk_job"), labelled, format_func=lambda i: f"{i}: {jobs[i].filename or '-'}"
    )
    talk = actions.corrections.speakers(store, chosen)
    st.bar_chart(
        pd.DataFrame(
            {
                t("statistics.speaker"): [s["name"] or s["label"] for s in talk],
                t("statistics.talk_minutes"): [s["talk_seconds"] / 60 for s in talk],
            }
        ),
        x=t("statistics.speaker"),
        y=t("statistics.talk_minutes"),
        horizontal=True,
    )
else:
    st.caption(t("statistics.no_speakers"))

st.subheader(t("statistics.over_time"))
if stats["daily"]:
    table, unit = jobs_over_time(stats["daily"], dt.date.today())
    st.altair_chart(chart(table, unit), width="stretch")
st.caption(t("statistics.total", n=f"{total:,}"))
