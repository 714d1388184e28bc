"""Console page: a running study's progress per reader and arm, time per case, and stalled readers, refreshed live."""

from __future__ import annotations

from datetime import timedelta

import plotly.express as px
import streamlit as st

from study_app.services.progress import STATES, study_progress
from study_app.web.console.access import choose_study, coordinator_or_stop
from study_app.web.database import shared_database

REFRESH_SECONDS = 5
# Done is green, waiting is grey, so a glance tells how far each arm has got.
STATUS_COLOURS = {"completed": "#2e7d32", "submitted": "#81c784", "in_progress": "#ffb300", "ready": "#90caf9",
                  "pending": "#cfd8dc"}


@st.fragment(run_every=REFRESH_SECONDS)
def live(actor, study_id: str, stalled_hours: float) -> None:
    progress = study_progress(shared_database(), actor, study_id, stalled_after=timedelta(hours=stalled_hours))
    left, middle, right = st.columns(3)
    left.metric("Assignments", progress.total)
    middle.metric("Completed", progress.completed)
    right.metric("Done", f"{(progress.completed / progress.total if progress.total else 0):.0%}")
    if progress.total:
        by_arm = progress.by_arm.melt(id_vars="arm", value_vars=list(STATES), var_name="status", value_name="n")
        st.plotly_chart(px.bar(by_arm, x="n", y="arm", color="status", orientation="h",
                               category_orders={"status": list(STATES)}, color_discrete_map=STATUS_COLOURS,
                               title="Assignments per arm"),
                        key="console_progress_arms")
        per_reader = progress.by_reader.groupby(["reader", "role"], as_index=False)[list(STATES)].sum()
        long = per_reader.melt(id_vars=["reader", "role"], value_vars=list(STATES), var_name="status", value_name="n")
        st.plotly_chart(px.bar(long, x="n", y="reader", color="status", orientation="h",
                               category_orders={"status": list(STATES)}, color_discrete_map=STATUS_COLOURS,
                               title="Assignments per reader"),
                        key="console_progress_readers")
    st.subheader("Per reader and arm")
    st.dataframe(progress.by_reader, hide_index=True)
    st.subheader("Time per case")
    if progress.durations.empty:
        st.caption("No case submitted yet.")
    else:
        st.plotly_chart(px.box(progress.durations, x="arm", y="duration_s", points="all",
                               hover_data=["reader"], title="Seconds from image shown to submit"),
                        key="console_progress_durations")
        st.dataframe(progress.durations.groupby("arm")["duration_s"].describe().round(1))
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
