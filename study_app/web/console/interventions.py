"""Console page: pause, resume or close a study, and reset one reader's case, each with a reason for the audit log."""

from __future__ import annotations

import streamlit as st

from study_app.services.console import change_study_status, reader_links
from study_app.services.errors import ServiceError
from study_app.services.interventions import reset_assignment
from study_app.services.lifecycle import TRANSITIONS
from study_app.services.studies import study_summary
from study_app.web.console.access import choose_study, coordinator_or_stop, plain, show_problems
from study_app.web.database import shared_database

ACTIONS = ("pause", "resume", "close")


def status_section(actor, study_id: str) -> None:
    db = shared_database()
    status = study_summary(db, actor, study_id).status
    st.subheader("Study status")
    st.text(f"{study_id} is {status}; possible now: {', '.join(TRANSITIONS.get(status, {})) or 'nothing'}")
    with st.form("console_status"):
        action = st.selectbox("Action", ACTIONS)
        reason = st.text_input("Reason (recorded in the audit log)")
        confirm = st.checkbox("Closing is for good: readers cannot come back to a closed study")
        if st.form_submit_button("Apply"):
            if action == "close" and not confirm:
                show_problems("Not closed:", "tick the box to confirm closing for good")
                return
            try:
                summary = change_study_status(db, actor, study_id, action, reason=reason)
                st.success(plain(f"{study_id} is now {summary.status}."))
            except ServiceError as error:
                show_problems(f"Cannot {action}:", str(error))


def reset_section(actor, study_id: str) -> None:
    db = shared_database()
    st.subheader("Reset one case of a reader")
    st.caption("The case goes back to the start (clock, text, answers); what was there is kept in the audit log.")
    readers = reader_links(db, actor, study_id)["reader"].tolist()
    with st.form("console_reset"):
        left, right = st.columns(2)
        reader = left.selectbox("Reader", readers)
        position = right.number_input("Case number in the reader's worklist", min_value=1, value=1, step=1)
        reason = st.text_area("Reason (required)")
        if st.form_submit_button("Reset the case"):
            try:
                assignment_id = reset_assignment(db, actor, study_id, reader, int(position), reason=reason)
                st.success(plain(f"Case {position} of {reader} reset (assignment {assignment_id})."))
            except ServiceError as error:
                show_problems("Not reset:", str(error))


def render() -> None:
    actor = coordinator_or_stop()
    st.title("Interventions")
    study_id = choose_study(actor)
    if study_id is None:
        return
    status_section(actor, study_id)
    reset_section(actor, study_id)
