"""Console page: the launch checklist (drafts, links, allocation balance), the Launch button, and what launch froze."""

from __future__ import annotations

import streamlit as st

from study_app.services.console import dress_rehearsal, launch_readiness
from study_app.services.errors import ServiceError
from study_app.services.launch import launch_study
from study_app.web.console.access import choose_study, coordinator_or_stop, plain, show_problems
from study_app.web.database import shared_database
from study_app.web.report_view import keep_report

REHEARSAL_KEY = "console_rehearsal"


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


def rehearsal_section(actor, study_id: str) -> None:
    """The dress rehearsal: the study copied, launched and read by simulated readers, then analysed; shown here with
    the report it produced. The study itself is not touched."""
    st.subheader("Dress rehearsal")
    st.caption("A copy of the database is launched and every case read by seeded simulated readers through the real "
               "reading services (plausible times, edits and answers), then exported and analysed with the planned "
               "analysis: the whole pipeline on fake data, before any reader. The study itself is not touched.")
    if st.button("Rehearse the study"):
        with st.spinner("Rehearsing: launching a copy, reading every case, analysing..."):
            try:
                st.session_state[REHEARSAL_KEY] = [study_id, dress_rehearsal(shared_database(), actor, study_id), None]
            except ServiceError as error:
                show_problems("No rehearsal:", str(error))
    done = st.session_state.get(REHEARSAL_KEY)
    if not done or done[0] != study_id:
        return
    result = done[1]
    (st.warning if result.get("launch_problems") else st.success)(plain(
        "Rehearsed: " + (f"the real launch would refuse {len(result['launch_problems'])} problem(s), listed below; "
                         if result.get("launch_problems") else "") + f"{result['n_reads']} reads analysed."))
    st.code("\n".join(result["lines"]), language=None, wrap_lines=True)
    if result.get("report_html"):
        st.download_button("Download the rehearsal's report (HTML)", result["report_html"],
                           file_name=f"{study_id}-rehearsal-report.html", mime="text/html")
        if done[2] is None:
            done[2] = keep_report(actor.coordinator_id, result["report_html"])
        st.iframe(done[2], height=700)


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
    if readiness.status == "draft":
        rehearsal_section(actor, study_id)
