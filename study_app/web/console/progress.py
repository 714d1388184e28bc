"""Console page: a running study's progress per reader and arm, time per case, and stalled readers, refreshed live."""

from __future__ import annotations

from datetime import timedelta

import plotly.graph_objects as go
import streamlit as st

from study_app.services.progress import STATES, study_progress
from study_app.web.console.access import choose_study, coordinator_or_stop
from study_app.web.database import shared_database

REFRESH_SECONDS = 5
# Done is green, waiting is grey, so a glance tells how far each arm has got.
STATUS_COLOURS = {"completed": "#2e7d32", "submitted": "#81c784", "in_progress": "#ffb300", "ready": "#90caf9",
                  "pending": "#cfd8dc"}


def _status_bars(frame, axis: str, title: str) -> go.Figure:
    """Horizontal bars stacked by status, one trace per status: a few numbers per row, drawn at once."""
    figure = go.Figure([go.Bar(name=status, x=frame[status], y=frame[axis], orientation="h",
                               marker_color=STATUS_COLOURS[status]) for status in STATES])
    figure.update_layout(barmode="stack", title=title, height=max(260, 22 * len(frame) + 120),
                         legend_title_text="status", yaxis={"type": "category"})
    return figure


def _duration_boxes(summary) -> go.Figure:
    """Each arm's time per case as a box drawn from its quartiles and whiskers, not from every read."""
    figure = go.Figure(go.Box(x=summary["arm"], q1=summary["q1"], median=summary["median"], q3=summary["q3"],
                              lowerfence=summary["lower"], upperfence=summary["upper"], mean=summary["mean"],
                              name="seconds", boxpoints=False))
    figure.update_layout(title="Seconds from image shown to submit (box: quartiles; whiskers: 1.5 IQR)",
                         showlegend=False)
    return figure


@st.fragment(run_every=REFRESH_SECONDS)
def live(actor, study_id: str, stalled_hours: float) -> None:
    progress = study_progress(shared_database(), actor, study_id, stalled_after=timedelta(hours=stalled_hours))
    left, middle, right = st.columns(3)
    left.metric("Assignments", progress.total)
    middle.metric("Completed", progress.completed)
    right.metric("Done", f"{(progress.completed / progress.total if progress.total else 0):.0%}")
    if progress.total:
        # graph_objects with a few numbers per bar, not plotly express over every row: this page redraws every
        # few seconds, and at 50 readers x 3,000 cases it took seconds to draw (P10, docs/benchmarks.md).
        st.plotly_chart(_status_bars(progress.by_arm, "arm", "Assignments per arm"), key="console_progress_arms")
        per_reader = progress.by_reader.groupby(["reader", "role"], as_index=False)[list(STATES)].sum()
        st.plotly_chart(_status_bars(per_reader, "reader", "Assignments per reader"),
                        key="console_progress_readers")
    if len(progress.by_site):
        st.subheader("Per site")
        st.caption("Assignments by the site of the case and the site of the reader.")
        st.dataframe(progress.by_site, hide_index=True)
    if len(progress.schedule):
        st.subheader("Reading sessions")
        st.caption("Per reader: each session's state, when it opens (a later session: the end of the washout after "
                   "the reader's last case of the earlier ones, by the server's clock, UTC), when it opened, and "
                   "cases done.")
        st.dataframe(progress.schedule_display, hide_index=True)
    st.subheader("Per reader and arm")
    st.dataframe(progress.by_reader, hide_index=True)
    st.subheader("Time per case")
    summary = progress.duration_summary
    if summary.empty:
        st.caption("No case submitted yet.")
    else:
        st.plotly_chart(_duration_boxes(summary), key="console_progress_durations")
        st.dataframe(summary.round(1), hide_index=True)
    st.subheader("Stalled readers")
    if progress.stalled.empty:
        st.caption(f"Nobody with cases left has been idle for more than {stalled_hours:g} h.")
    else:
        st.dataframe(progress.stalled, hide_index=True)


def render() -> None:
    actor = coordinator_or_stop()
    st.title("Progress")
    study_id = choose_study(actor)
    if study_id is None:
        return
    stalled_hours = st.number_input("A reader with cases left is stalled after (hours)", min_value=0.5,
                                    max_value=24.0 * 60, value=48.0, step=12.0)
    st.caption(f"Refreshed every {REFRESH_SECONDS} s.")
    live(actor, study_id, float(stalled_hours))
