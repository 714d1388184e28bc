"""Console page: a study's readers, adding them before launch, and their personal links (issue, revoke, reissue)."""

from __future__ import annotations

import streamlit as st

from study_app.services.console import design_roles, reader_links
from study_app.services.errors import ServiceError
from study_app.services.invites import issue_invites
from study_app.services.readers import add_reader, add_readers, revoke_reader
from study_app.services.roster import parse_roster
from study_app.services.uploads import MAX_SMALL_UPLOAD_MB
from study_app.web.console.access import choose_study, coordinator_or_stop, plain, show_problems
from study_app.web.database import shared_database

ISSUED_KEY = "console_issued_links"


def base_url() -> str:
    """The address readers reach this app at, as the coordinator's browser sees it."""
    try:
        url = st.context.url or ""
    except Exception:  # no browser (AppTest)
        url = ""
    if "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{rest.split('/', 1)[0]}"
    return "http://localhost:8501"


def add_section(actor, study_id: str) -> None:
    db = shared_database()
    st.subheader("Add readers (before launch)")
    roles = design_roles(db, actor, study_id)
    with st.form("console_add_reader", clear_on_submit=True):
        left, middle, right = st.columns(3)
        key = left.text_input("Reader id", placeholder="res3")
        role = middle.selectbox("Role", list(roles))
        label = right.text_input("Label (optional)")
        if st.form_submit_button("Add reader"):
            try:
                summary = add_reader(db, actor, study_id, key.strip(), role, label.strip())
                st.success(plain(f"Added {key}: the study now has {summary.n_readers} readers and "
                                 f"{summary.n_assignments} assignments (allocated again from the seed)."))
            except ServiceError as error:
                show_problems("Not added:", str(error))
    upload = st.file_uploader("Or import a readers CSV (reader_id, role, label)", type=["csv"],
                              key="console_readers_import", max_upload_size=MAX_SMALL_UPLOAD_MB)
    if upload is not None and st.button("Import readers"):
        try:
            entries = parse_roster(upload.getvalue().decode("utf-8-sig", errors="replace"), roles=roles,
                                   source=upload.name)
            summary = add_readers(db, actor, study_id, entries)
            st.success(plain(f"Imported {len(entries)} reader(s): {summary.n_readers} readers, "
                             f"{summary.n_assignments} assignments."))
        except ServiceError as error:
            show_problems("Nothing was imported:", str(error))


def links_section(actor, study_id: str, reader_keys: list[str]) -> None:
    db = shared_database()
    st.subheader("Invite links")
    st.caption("A link is shown once, here: the database keeps only its hash. Issuing a new link revokes the old one.")
    chosen = st.multiselect("Readers", reader_keys, default=[], placeholder="all readers",
                            key="console_link_readers")
    address = st.text_input("Address readers use", value=base_url(), key="console_base_url")
    left, right = st.columns(2)
    if left.button("Issue links", type="primary"):
        try:
            issued = issue_invites(db, actor, study_id, chosen or None)
            st.session_state[ISSUED_KEY] = [(i.reader_key, i.role, i.link(address)) for i in issued]
        except ServiceError as error:
            show_problems("No link issued:", str(error))
    revoke = right.selectbox("Revoke a reader's access", ["-", *reader_keys], key="console_revoke_reader")
    if right.button("Revoke links and sessions", disabled=revoke == "-"):
        try:
            cut = revoke_reader(db, actor, study_id, revoke)
            st.session_state.pop(ISSUED_KEY, None)
            st.success(plain(f"Revoked {revoke}: {cut} link(s) or session(s) cut. Issue a new link to let them back."))
        except ServiceError as error:
            show_problems("Not revoked:", str(error))
    issued = st.session_state.get(ISSUED_KEY)
    if issued:
        st.warning("Copy these links now and send each to its reader: they are not shown again.")
        for reader_key, role, link in issued:
            st.text(f"{reader_key} ({role})")
            st.code(link, language=None)
        if st.button("Hide the links"):
            st.session_state.pop(ISSUED_KEY, None)
            st.rerun()


def render() -> None:
    actor = coordinator_or_stop()
    st.title("Readers")
    study_id = choose_study(actor)
    if study_id is None:
        return
    table = st.container()
    links_section(actor, study_id, reader_links(shared_database(), actor, study_id)["reader"].tolist())
    add_section(actor, study_id)
    with table:
        st.dataframe(reader_links(shared_database(), actor, study_id), hide_index=True)
