"""Console page: download the export and the audit log, and run the analysis report on the study as it stands."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from study_app.services.console import analysis_available, analysis_report, audit_log, blinding_audit, export_zip
from study_app.services.errors import ServiceError
from study_app.web.console.access import choose_study, coordinator_or_stop, show_problems
from study_app.web.database import shared_database
from study_app.web.report_view import keep_report

EXPORT_KEY = "console_export"
REPORT_KEY = "console_report"
BLINDING_KEY = "console_blinding"


def export_section(actor, study_id: str) -> None:
    st.subheader("Export")
    st.caption("Every table of the data dictionary (CSV) and export_meta.json, in one zip.")
    if st.button("Prepare the export"):
        try:
            st.session_state[EXPORT_KEY] = (study_id, export_zip(shared_database(), actor, study_id))
        except ServiceError as error:
            show_problems("No export:", str(error))
    prepared = st.session_state.get(EXPORT_KEY)
    if prepared and prepared[0] == study_id:
        st.download_button("Download the export (zip)", prepared[1], file_name=f"{study_id}-export.zip",
                           mime="application/zip")


def audit_section(actor, study_id: str) -> None:
    st.subheader("Audit log")
    events = audit_log(shared_database(), actor, study_id)
    st.dataframe(events.assign(payload=events["payload"].map(lambda p: json.dumps(p, sort_keys=True))),
                 hide_index=True)
    st.download_button("Download the audit log (JSON lines)",
                       "".join(json.dumps(row, sort_keys=True, default=str) + "\n"
                               for row in events.to_dict(orient="records")),
                       file_name=f"{study_id}-events.jsonl", mime="application/x-ndjson")


def analysis_section(actor, study_id: str) -> None:
    st.subheader("Analysis")
    if not analysis_available():
        st.info("The analysis package is not available in this installation.")
        return
    n_boot = st.number_input("Bootstrap resamples", min_value=100, max_value=10000, value=1000, step=100)
    if st.button("Run the analysis"):
        with st.spinner("Running the analysis..."):
            try:
                st.session_state[REPORT_KEY] = [study_id, analysis_report(shared_database(), actor, study_id,
                                                                           n_boot=int(n_boot)), None]
            except ServiceError as error:
                show_problems("No report:", str(error))
    report = st.session_state.get(REPORT_KEY)
    if report and report[0] == study_id:
        st.download_button("Download the report (HTML)", report[1], file_name=f"{study_id}-report.html",
                           mime="text/html")
        # Not srcdoc: the report's charts run inline scripts, which the app's policy refuses to every page and
        # to srcdoc frames; the report gets its own sandboxed address instead (study_app/web/report_view.py).
        if report[2] is None:
            report[2] = keep_report(actor.coordinator_id, report[1])
        st.iframe(report[2], height=900)


def blinding_section(actor, study_id: str) -> None:
    st.subheader("Blinding audit")
    st.caption("Everything each reader is sent about each blinded case (worklist, pages, identifiers, addresses, "
               "sizes, messages, release times), collected on a copy of the database through the reader pages and "
               "routes, and tested for association with the draft's source. The study is not touched.")
    pages = st.checkbox("Render every open case page (slower)", value=True)
    if st.button("Run the blinding audit"):
        with st.spinner("Auditing..."):
            try:
                st.session_state[BLINDING_KEY] = (study_id, blinding_audit(shared_database(), actor, study_id,
                                                                           pages=pages))
            except ServiceError as error:
                show_problems("No audit:", str(error))
    done = st.session_state.get(BLINDING_KEY)
    if not done or done[0] != study_id:
        return
    report = done[1]
    summary = (f"{report['n_cases']} blinded case(s) of {report['n_readers']} reader(s), {report['n_held']} held "
               f"for a later round; {len(report['verdicts'])} features tested (Holm, alpha {report['alpha']}).")
    if report["leaks"]:
        st.error("A feature predicts the draft source: " + ", ".join(report["leaks"]) + ". " + summary)
    else:
        st.success("No presentation feature predicts the draft source. " + summary)
    st.dataframe(pd.DataFrame(report["verdicts"]).drop(columns=["values_by_label"]), hide_index=True)
    if report["content"]:
        st.caption("The drafts' own content by source (the study's subject: described, not a leak)")
        st.dataframe(pd.DataFrame(report["content"]), hide_index=True)
    with st.expander("What the audit cannot see"):
        for line in report["cannot_see"]:
            st.text(line)


def render() -> None:
    actor = coordinator_or_stop()
    st.title("Data")
    study_id = choose_study(actor)
    if study_id is None:
        return
    export_section(actor, study_id)
    audit_section(actor, study_id)
    blinding_section(actor, study_id)
    analysis_section(actor, study_id)
