"""Entry script of the reader app: builds the page list for whoever is signed in, nothing else.

Everything runs inside one error boundary: a failure anywhere below (the database unreachable while the
cookie is checked, a fault inside a page) shows a plain sentence, never Streamlit's exception box.
"""

import streamlit as st

from study_app.web.console import console_pages
from study_app.web.errors import show_fault
from study_app.web.views import reading, signed_out, worklist
from study_app.web.session import current_actor
from study_app.web.timing import rerun_timer

with rerun_timer():
    st.set_page_config(page_title="Reader study", layout="wide")
    try:
        actor = current_actor()
        if actor is None:
            # The reader's own addresses stay valid, so a signed-out bookmark or refresh lands on the sign-in help.
            pages = [
                st.Page(signed_out.render, title="Sign in", url_path="reading", default=True),
                st.Page(signed_out.render, title="Sign in ", url_path="worklist"),
            ]
        elif actor.kind == "reader":
            pages = [
                st.Page(reading.render, title="Reading", url_path="reading", default=True),
                st.Page(worklist.render, title="Worklist", url_path="worklist"),
            ]
            # For in-app moves between them (st.page_link, st.switch_page): history entries, no page reload.
            st.session_state["reader_pages"] = {"reading": pages[0], "worklist": pages[1]}
        else:
            pages = console_pages()
        st.session_state["actor"] = actor
        position = "hidden" if actor is None else "top" if actor.kind == "reader" else "sidebar"
        st.navigation(pages, position=position).run()
    except Exception as error:  # st.stop() and st.rerun() are BaseExceptions and pass through untouched
        show_fault(error)
