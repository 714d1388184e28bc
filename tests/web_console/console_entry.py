"""Test entry script: runs the one console page named in session state, for whatever actor the test put there."""

import streamlit as st

from study_app.web.console import console_pages

wanted = st.session_state.get("console_test_page", "console-studies")
st.navigation([p for p in console_pages() if p.url_path == wanted], position="hidden").run()
