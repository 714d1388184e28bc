"""The coordinator's progress page: each study's status and how far its assignments have got."""

import pandas as pd
import streamlit as st

from study_app.services.studies import list_studies
from study_app.web.database import shared_database


def render() -> None:
    actor = st.session_state["actor"]
    st.title("Studies")
    st.caption(f"Signed in as coordinator {actor.name}")
    studies = list_studies(shared_database(), actor)
    if not studies:
        st.info("No study yet. Create one with `readerstudy study create`.")
    rows = [
        {"study": s.study_id, "name": s.name, "status": s.status, "cases": s.n_cases, "readers": s.n_readers,
         "assignments": s.n_assignments, **{k: v for k, v in sorted(s.by_status.items())}}
        for s in studies
    ]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.link_button("Sign out", "/signout")
