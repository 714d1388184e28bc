"""Console page: the launch checklist (drafts, links, allocation balance), the Launch button, and what launch froze."""

from __future__ import annotations

import streamlit as st

from study_app.services.console import launch_readiness
from study_app.services.errors import ServiceError
from study_app.services.launch import launch_study
from study_app.web.console.access import choose_study, coordinator_or_stop, plain, show_problems
from study_app.web.database import shared_database


def checklist(readiness) -> None:
    st.subheader("Checklist")
    drafts_ok = not readiness.draft_problems
    links_ok = not readiness.readers_without_link
    st.text(f"[{'x' if drafts_ok else ' '}] every case has the drafts its arms need, none cut, unparsed, empty or "
            "duplicated (or accepted with a reason on the Drafts page)")
    for problem in readiness.draft_problems:
        st.text(f"      {problem}")
    for note in readiness.draft_notes:
        st.text(f"      note: {note}")
    st.text(f"[{'x' if links_ok else ' '}] every reader has a personal link (links can also be issued after launch)")
    if not links_ok:
        st.text(f"      without a usable link: {', '.join(readiness.readers_without_link)}")


def balance(readiness) -> None:
    b = readiness.balance
    st.subheader("Allocation balance")
    s = b.summary
    st.text(f"{s.n_cases} cases, {s.n_readers} readers, {s.n_assignments} assignments, seed {s.seed}")
    if not b.reads_per_case.empty:
        st.dataframe(b.readers_per_case_spread)
    st.caption("Cases per reader and arm")
    st.dataframe(b.reads_per_reader)
    st.caption("Reading rounds: a reader's cases of one round open together, never case by case, so when a case "
               "opens says nothing about where its draft came from")
    st.dataframe(b.rounds, hide_index=True)
    waiting = b.reader_rounds[b.reader_rounds["open"] < b.reader_rounds["cases"]]
    if not waiting.empty:
        st.caption("Rounds not open yet, per reader, and the drafts they wait for")
        st.dataframe(waiting, hide_index=True)
    if not b.ab_balance.empty:
        ab = b.ab_balance
        n = int(ab["model_as_a"].sum() + ab["reader_as_a"].sum())
        st.caption(f"Compare arms: which draft is shown as A, per reader and worklist half; study-wide the model is A "
                   f"in {int(ab['model_as_a'].sum())} of {n}")
        st.dataframe(ab, hide_index=True)
    with st.expander("Cases read by both readers of each pair"):
        st.dataframe(b.overlap)


def frozen(readiness) -> None:
    s = readiness.balance.summary
    st.success(plain(f"Study {s.study_id} is {s.status}."))
    st.text("Frozen at launch (the services refuse any change):\n"
            f"  design     sha256 {s.design_sha256}\n"
            f"  cohort     {s.n_cases} cases\n"
            "  drafts     bound to every assignment\n"
            f"  allocation {s.n_assignments} assignments from seed {s.seed}")


def render() -> None:
    actor = coordinator_or_stop()
    st.title("Launch")
    study_id = choose_study(actor)
    if study_id is None:
        return
    db = shared_database()
    readiness = launch_readiness(db, actor, study_id)
    if readiness.status == "draft":
        checklist(readiness)
    else:
        frozen(readiness)
    balance(readiness)
    if st.button("Launch the study", type="primary", disabled=readiness.status == "draft" and not readiness.ok):
        try:
            summary = launch_study(db, actor, study_id)
            st.success(plain(f"Launched {summary.study_id}: readers can start with their links."))
            st.rerun()
        except ServiceError as error:
            show_problems("Not launched:", str(error))
