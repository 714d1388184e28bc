"""Entry script of the reader app: builds the page list for whoever is signed in, nothing else."""

import streamlit as st

from study_app.web.pages import console, reading, signed_out, worklist
from study_app.web.session import current_actor

st.set_page_config(page_title="Reader study", page_icon=":material/radiology:", layout="wide")

actor = current_actor()
if actor is None:
    pages = [st.Page(signed_out.render, title="Sign in", url_path="signed-out")]
elif actor.kind == "reader":
    pages = [
        st.Page(reading.render, title="Reading", url_path="reading", default=True),
        st.Page(worklist.render, title="Worklist", url_path="worklist"),
    ]
else:
    pages = [st.Page(console.render, title="Progress", url_path="progress")]
st.session_state["actor"] = actor
st.navigation(pages, position="sidebar" if actor is not None and actor.kind != "reader" else "top").run()
