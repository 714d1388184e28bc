"""Console page: the studies, and creating one from a design, a cohort (zip upload or server folder) and readers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from study_app.designs import shipped_design_path
from study_app.services.console import shipped_designs
from study_app.services.errors import ServiceError
from study_app.services.studies import list_studies
from study_app.services.uploads import MAX_SMALL_UPLOAD_MB, create_study_from_upload, find_manifest, staged_uploads
from study_app.web.console.access import STUDY_KEY, coordinator_or_stop, plain, show_problems
from study_app.web.database import shared_database



def study_table(actor) -> None:
    studies = list_studies(shared_database(), actor)
    if not studies:
        st.info("No study yet: create the first one below.")
        return
    rows = [
        {"study": s.study_id, "name": s.name, "status": s.status, "cases": s.n_cases, "readers": s.n_readers,
         "assignments": s.n_assignments, "seed": s.seed, "design sha256": s.design_sha256[:12],
         **{k: v for k, v in sorted(s.by_status.items())}}
        for s in studies
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


UPLOADED = "the zip uploaded for this study id"


def uploads_section(actor) -> None:
    """Cohort zips go to the server on a page of their own, streamed to disk (a browser upload here would sit
    in the server's memory); the form below picks one up by its study id."""
    left, right = st.columns([3, 1])
    left.caption("A cohort zip (manifest and images) is uploaded first, on the upload page, for the study id "
                 "you will create; then fill the form.")
    right.link_button("Upload a cohort zip", "/console/upload")
    waiting = staged_uploads(shared_database(), actor)
    if waiting:
        st.text("Uploaded zips waiting for their study: " + ", ".join(
            f"{u.study_id} ({u.size_bytes / 1024**2:.1f} MB, {pd.Timestamp(u.uploaded_at, unit='s'):%Y-%m-%d %H:%M} UTC)"
            for u in waiting))


def create_form(actor) -> None:
    st.subheader("Create a study")
    uploads_section(actor)
    with st.form("console_create_study", clear_on_submit=False):
        left, right = st.columns(2)
        study_id = left.text_input("Study id", placeholder="pilot", help="lower-case letters, digits, - or _")
        name = right.text_input("Name (optional)")
        seed = left.number_input("Allocation seed (empty: a random one, stored with the study)", min_value=0,
                                 max_value=2**31 - 1, value=None, step=1, placeholder="random")
        design_choice = right.selectbox("Design", [*shipped_designs(), "upload a design file"])
        design_file = right.file_uploader("Design file (TOML)", type=["toml"], key="console_design_file",
                                         max_upload_size=MAX_SMALL_UPLOAD_MB)
        cohort_choice = st.radio("Cohort", [UPLOADED, "a folder on the server"], horizontal=True)
        server_path = st.text_input("Manifest or cohort folder on the server", placeholder="/data/cohorts/pilot")
        readers_file = st.file_uploader("Readers CSV (reader_id, role, label)", type=["csv"], key="console_readers",
                                        max_upload_size=MAX_SMALL_UPLOAD_MB)
        submitted = st.form_submit_button("Check and create", type="primary")
    if not submitted:
        return
    problems = []
    if readers_file is None:
        problems.append("readers: upload the readers CSV")
    design_path = design_text = None
    if design_choice == "upload a design file":
        if design_file is None:
            problems.append("design: upload the design file or choose a shipped design")
        else:
            design_text = design_file.getvalue().decode("utf-8", errors="replace")
    else:
        design_path = shipped_design_path(design_choice)
    manifest_path = None
    uploaded = cohort_choice == UPLOADED
    if not uploaded:
        path = Path(server_path.strip()).expanduser() if server_path.strip() else None
        if path is None:
            problems.append("cohort: name the manifest or the cohort folder on the server")
        else:
            try:
                manifest_path = find_manifest(path) if path.is_dir() else path
            except ServiceError as error:
                problems.append(f"cohort: {error}")
    if problems:
        show_problems("Nothing was created:", problems)
        return
    readers_text = readers_file.getvalue().decode("utf-8-sig", errors="replace")
    with st.spinner("Checking the manifest, every image, the design and the readers..."):
        try:
            outcome = create_study_from_upload(
                shared_database(), actor, study_id=study_id.strip(), name=name.strip() or None,
                seed=None if seed is None else int(seed),
                design_path=design_path, design_text=design_text, readers_text=readers_text,
                uploaded=uploaded, manifest_path=manifest_path,
            )
        except ServiceError as error:
            show_problems("Nothing was created:", str(error))
            return
    if outcome.problems:
        show_problems(f"Nothing was created: {len(outcome.problems)} problem(s), by file, row and column:",
                      outcome.problems)
        return
    summary = outcome.summary
    st.session_state[STUDY_KEY] = summary.study_id
    st.success(plain(f"Created study {summary.study_id}: {summary.n_cases} cases, {summary.n_readers} readers, "
                     f"{summary.n_assignments} assignments. Next: drafts, reader links, then launch."))


def render() -> None:
    actor = coordinator_or_stop()
    st.title("Studies")
    # The table is filled after the form so that a study created by this run is already listed.
    table = st.container()
    create_form(actor)
    with table:
        study_table(actor)
