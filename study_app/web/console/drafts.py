"""Console page: which cases have the model drafts their arms need, with provenance and failures; import or generate them."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from model_runtime import unpinned_revision_warning
from study_app.services.console import drafting_run, start_drafting, vllm_server_backend
from study_app.services.drafting import drafts_status, import_recorded_drafts, unfinished_drafting_run
from study_app.services.errors import ServiceError
from study_app.services.studies import study_summary
from study_app.web.console.access import choose_study, coordinator_or_stop, plain, show_problems
from study_app.web.database import shared_database

POLL_SECONDS = 2


def status_section(actor, study_id: str) -> None:
    rows = pd.DataFrame([asdict(r) for r in drafts_status(shared_database(), actor, study_id)])
    if rows.empty:
        st.info("The study's arms need no model draft.")
        return
    stored = int(rows["stored"].sum())
    left, middle, right = st.columns(3)
    left.metric("Drafts needed", len(rows))
    middle.metric("Stored", stored)
    right.metric("Missing", len(rows) - stored)
    st.dataframe(rows, hide_index=True)
    failed = rows[(~rows["stored"]) & (rows["failures"] > 0)]
    if not failed.empty:
        st.subheader("Failures")
        st.dataframe(failed[["case_key", "task", "item_key", "failures", "last_error"]], hide_index=True)


@st.fragment(run_every=POLL_SECONDS)
def run_progress(actor, study_id: str) -> None:
    """The background drafting run of this study, polled while it runs; or a run whose end was never recorded."""
    run = drafting_run(shared_database(), study_id)
    if run is None or not run.running:
        unfinished = unfinished_drafting_run(shared_database(), actor, study_id)
        if unfinished is not None:
            st.warning(plain(unfinished.describe()))
    if run is None:
        return
    if run.running:
        st.progress(run.fraction, text=f"drafting: {run.done} of {run.total if run.total is not None else '?'}")
        return
    if run.error:
        show_problems("The drafting run stopped:", run.error)
    elif run.summary is not None:
        s = run.summary
        st.success(plain(f"Drafting finished: {s.succeeded} generated, {s.skipped} already stored, "
                         f"{s.failed} failed in {s.elapsed_s:.1f} s."))
        if s.failures:
            st.code("\n".join(s.failures), language=None, wrap_lines=True)


def generate_section(actor, study_id: str) -> None:
    db = shared_database()
    st.subheader("Import recorded outputs")
    st.caption("Model outputs recorded in the manifest are stored through the replay backend, with provenance.")
    if st.button("Import recorded outputs"):
        try:
            s = import_recorded_drafts(db, actor, study_id)
            st.success(plain(f"{s.succeeded} draft(s) stored, {s.skipped} already present, {s.failed} failed."))
        except ServiceError as error:
            show_problems("Nothing imported:", str(error))
    st.subheader("Generate with a vLLM server")
    with st.form("console_generate"):
        left, right = st.columns(2)
        url = left.text_input("Server URL", value="http://127.0.0.1:8000")
        served = right.text_input("Served model name (optional)")
        revision = left.text_input("Model revision (commit, optional)")
        mode = right.selectbox("Mode", ["reasoning", "instruction"])
        concurrency = left.number_input("Concurrent requests", min_value=1, max_value=1024, value=16)
        wait = right.number_input("Wait for the server to be healthy (s)", min_value=1, max_value=3600, value=120)
        start = st.form_submit_button("Start generating", type="primary")
    if start:
        try:
            backend = vllm_server_backend(url, served_model_name=served.strip(), model_revision=revision.strip(),
                                          concurrency=int(concurrency), ready_timeout_s=float(wait))
            start_drafting(db, actor, study_id, backend, mode=mode, concurrency=int(concurrency))
            if warning := unpinned_revision_warning(backend.model_revision):
                st.warning(plain(warning[0].upper() + warning[1:] + "."))
        except ServiceError as error:
            show_problems("Not started:", str(error))
    run_progress(actor, study_id)


def render() -> None:
    actor = coordinator_or_stop()
    st.title("Drafts")
    study_id = choose_study(actor)
    if study_id is None:
        return
    if study_summary(shared_database(), actor, study_id).status != "draft":
        st.info("This study is launched: its drafts are frozen, and new imports or runs are refused.")
    table = st.container()
    generate_section(actor, study_id)
    with table:
        status_section(actor, study_id)
