"""Console page: pause, resume or close a study, and reset one reader's case, each with a reason for the audit log."""

from __future__ import annotations

import streamlit as st

from study_app.services.console import change_study_status, reader_links
from study_app.services.errors import ServiceError
from study_app.services.interventions import reset_assignment
from study_app.services.lifecycle import TRANSITIONS
from study_app.services.studies import study_summary
from study_app.services.throttle import locked_sign_ins, unlock_sign_in
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


def sign_in_locks_section(actor) -> None:
    """Coordinator accounts or client addresses locked after too many wrong passwords, and the unlock."""
    locked = locked_sign_ins(shared_database(), actor)
    if not locked:
        return
    st.subheader("Locked sign-ins")
    st.caption("Locked after too many wrong passwords. Unlock only what you recognise (a colleague who forgot "
               "their password, your own proxy's address); the unlock is recorded in the audit log.")
    labels = {f"{'username' if x.kind == 'user' else 'address'} {x.key} ({x.failures} failures, locked "
              f"{x.locked_at:%Y-%m-%d %H:%M} UTC)": x for x in locked}
    with st.form("console_unlock"):
        choice = st.selectbox("Locked", list(labels))
        reason = st.text_input("Reason (recorded in the audit log)", key="console_unlock_reason")
        if st.form_submit_button("Unlock"):
            row = labels[choice]
            try:
                unlock_sign_in(shared_database(), actor, reason=reason,
                               **({"username": row.key} if row.kind == "user" else {"address": row.key}))
                st.success(plain(f"Unlocked {choice.split(' (')[0]}."))
            except ServiceError as error:
                show_problems("Not unlocked:", str(error))


def render() -> None:
    actor = coordinator_or_stop()
    st.title("Interventions")
    sign_in_locks_section(actor)
    study_id = choose_study(actor)
    if study_id is None:
        return
    status_section(actor, study_id)
    reset_section(actor, study_id)
