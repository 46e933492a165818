"""The Statistics page's jobs-over-time chart: readable with one job and with ten thousand."""

import datetime as dt

import altair as alt
import pandas as pd

from ttservice.interfaces.web import services
from ttservice.interfaces.web.i18n import t
from ttservice.jobs import JobStatus

# The chart shows at least a week, so that one job is one bar among seven, not the page's width;
# a longer history is counted by week, then by month, so that bars stay readable.
MIN_DAYS = 7
DAYS_BY_DAY, WEEKS_BY_WEEK = 62, 104


def jobs_over_time(daily: list[dict], today: dt.date) -> tuple[pd.DataFrame, str]:
    """Jobs per period and status, every period in the range present (zeros where none)."""
    frame = pd.DataFrame(daily)
    frame["day"] = pd.to_datetime(frame["day"])
    first = min(frame["day"].min(), pd.Timestamp(today) - pd.Timedelta(days=MIN_DAYS - 1))
    last = max(frame["day"].max(), pd.Timestamp(today))
    days = (last - first).days + 1
    table = frame.pivot_table(index="day", columns="status", values="n", aggfunc="sum", fill_value=0)
    table = table.reindex(pd.date_range(first, last, freq="D"), fill_value=0)
    if days <= DAYS_BY_DAY:
        return table, "day"
    if days <= WEEKS_BY_WEEK * 7:  # weeks from Monday, each labelled by its Monday
        return table.resample("W-MON", label="left", closed="left").sum(), "week"
    return table.resample("MS").sum(), "month"


# Streamlit's badge colours, so that the chart's statuses look like the History's.
CSS_COLORS = {
    "gray": "#9aa0a6",
    "blue": "#1c83e1",
    "green": "#21c354",
    "red": "#ff4b4b",
    "orange": "#ffa421",
    "violet": "#803df5",
}
LABELS = {"day": "%Y-%m-%d", "week": "%Y-%m-%d", "month": "%Y-%m"}


def chart(table: pd.DataFrame, unit: str) -> alt.Chart:
    """Stacked bars, one per period in order, each as wide as the period's share of the page."""
    table = table.set_axis(table.index.strftime(LABELS[unit]))
    long = table.reset_index(names="period").melt("period", var_name="status", value_name="n")
    long["status"] = long["status"].map(lambda name: t(f"status.{name}"))
    colors = {t(f"status.{s.value}"): CSS_COLORS[services.COLORS[s]] for s in JobStatus}
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X(
                "period:O",
                sort=None,
                title=t(f"statistics.by_{unit}"),
                axis=alt.Axis(labelAngle=-45, labelOverlap="greedy"),
            ),
            y=alt.Y("sum(n):Q", title=t("statistics.jobs"), axis=alt.Axis(tickMinStep=1, format=",d")),
            color=alt.Color(
                "status:N", title=None, scale=alt.Scale(domain=list(colors), range=list(colors.values()))
            ),
            tooltip=["period:O", "status:N", alt.Tooltip("n:Q", format=",")],
        )
        .properties(height=280)
    )
