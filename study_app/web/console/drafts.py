"""Console page: which cases have the model drafts their arms need, with provenance and failures; drafts with
problems first (accept them with a reason, or regenerate them); import or generate drafts."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from model_runtime import unpinned_revision_warning
from study_app.services.draft_review import accept_draft_problems, draft_issues
from study_app.services.drafting import drafts_status, import_recorded_drafts, unfinished_drafting_run
from study_app.services.drafting_jobs import cancel_job, enqueue_drafting, study_jobs
from study_app.services.errors import ServiceError
from study_app.services.studies import study_summary
from study_app.web.console.access import choose_study, coordinator_or_stop, plain, show_problems
from study_app.web.database import shared_database

POLL_SECONDS = 2
# Drafting jobs this page saw queued or running: when one ends, the whole page is drawn again (its tables too).
WATCHED_KEY = "console_drafting_watched_jobs"


def problems_section(actor, study_id: str, launched: bool) -> None:
    """Drafts readers would see that are cut, not parsed, empty or duplicated: first on the page, because launch
    refuses them until they are regenerated or accepted, case by case, with a reason."""
    issues = draft_issues(shared_database(), actor, study_id)
    if not issues:
        return
    open_issues = [i for i in issues if not i.accepted]
    st.subheader("Drafts with problems")
    if open_issues:
        st.warning(plain(f"{len(open_issues)} draft(s) readers would see are cut, not parsed, empty or duplicated: "
                         "launch refuses them until they are regenerated (below, with a larger token budget) or "
                         "accepted with a reason."))
    st.dataframe(pd.DataFrame([{"case": i.case_key, "task": i.task, "item": i.item_key, "problems": ", ".join(i.problems),
                                "what": "; ".join(i.details),
                                "accepted": f"{i.accepted_by}: {i.accepted_reason}" if i.accepted else ""}
                               for i in issues]), hide_index=True)
    if launched or not open_issues:
        return
    with st.form("console_accept_drafts"):
        cases = st.multiselect("Accept these cases' drafts as they are", sorted({i.case_key for i in open_issues}))
        reason = st.text_input("Why they may be shown as they are (recorded in the audit log)")
        if st.form_submit_button("Accept"):
            try:
                accepted = accept_draft_problems(shared_database(), actor, study_id, cases, reason=reason)
                st.success(plain(f"Accepted {len(accepted)} draft(s)."))
            except ServiceError as error:
                show_problems("Not accepted:", str(error))


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
    """The study's drafting job, from the database (whichever worker runs it); polled while it is active."""
    db = shared_database()
    jobs = study_jobs(db, actor, study_id, limit=5)
    latest = jobs[0] if jobs else None
    if latest is None:
        unfinished = unfinished_drafting_run(db, actor, study_id)
        if unfinished is not None:
            st.warning(plain(unfinished.describe()))
        return
    watched = st.session_state.setdefault(WATCHED_KEY, set())
    if latest.status in ("queued", "running"):
        watched.add(latest.job_id)
    elif latest.job_id in watched:
        # Only this fragment reruns every few seconds; the tables above it were drawn when the page was. The job
        # the page watched has ended: draw the whole page again, so they show what it stored.
        watched.discard(latest.job_id)
        st.rerun(scope="app")
    if latest.status == "running":
        st.progress(latest.fraction, text=plain(latest.describe()))
    elif latest.status == "queued":
        st.info(plain(latest.describe() + " (`readerstudy serve` runs one unless started with --no-worker, or run "
                      "`readerstudy worker`)"))
    elif latest.status == "succeeded":
        st.success(plain(latest.describe()))
    else:
        show_problems(f"Drafting job {latest.job_id} {latest.status}:", latest.error or "no message")
    if latest.status in ("queued", "running") and st.button("Cancel the drafting job", key=f"cancel-{latest.job_id}"):
        try:
            cancel_job(db, actor, latest.job_id)
        except ServiceError as error:
            show_problems("Not cancelled:", str(error))
    with st.expander("Drafting jobs"):
        st.dataframe(pd.DataFrame([{"job": j.job_id, "status": j.status, "worker": j.worker, "attempts": j.attempts,
                                    "done": j.done, "total": j.total, "requested by": j.requested_by,
                                    "created": j.created_at} for j in jobs]), hide_index=True)


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
        url = left.text_input("Server URL(s), comma-separated for replicas", value="http://127.0.0.1:8000")
        served = right.text_input("Served model name (optional)")
        revision = left.text_input("Model revision (commit, optional)")
        mode = right.selectbox("Mode", ["reasoning", "instruction"])
        concurrency = left.number_input("Concurrent requests", min_value=1, max_value=1024, value=16)
        wait = right.number_input("Wait for the server to be reachable and healthy (s)", min_value=1,
                                  max_value=3600, value=30)
        max_tokens = left.number_input("Token budget per draft (max tokens)", min_value=16, max_value=32768,
                                       value=1024, step=256)
        first_response = right.number_input("Wait for each answer (s)", min_value=1, max_value=7200, value=600)
        problems_only = st.checkbox("Only regenerate the drafts with problems (each new draft replaces the old "
                                    "one; give a larger token budget for cut drafts)")
        start = st.form_submit_button("Start generating", type="primary")
    if start:
        try:
            # The worker reads the API key from the same variable as the CLI; the job records only its name.
            job = enqueue_drafting(db, actor, study_id, {
                "backend": "vllm-server", "urls": [u.strip() for u in url.split(",") if u.strip()],
                "served_model_name": served.strip() or None, "model_revision": revision.strip() or None,
                "mode": mode, "concurrency": int(concurrency), "ready_timeout_s": float(wait),
                "max_tokens": int(max_tokens), "first_response_timeout_s": float(first_response),
                "regenerate": {"case_keys": [], "problems_only": True} if problems_only else None})
            st.success(plain(f"Drafting job {job.job_id} queued; a worker runs it (progress below)."))
            if warning := unpinned_revision_warning(job.parameters["model_revision"]):
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
    launched = study_summary(shared_database(), actor, study_id).status != "draft"
    if launched:
        st.info("This study is launched: its drafts are frozen, and new imports or runs are refused.")
    table = st.container()
    generate_section(actor, study_id)
    with table:
        # Drafts with problems first: they are what stands between the study and its launch.
        problems_section(actor, study_id, launched)
        status_section(actor, study_id)
