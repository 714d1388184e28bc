"""The reader's worklist: every case with its place, task and state (never anything about its draft)."""

import pandas as pd
import streamlit as st

from study_app.services import reading as reading_service
from study_app.web.database import shared_database
from study_app.web.views.reading import SESSION_HELD_LABEL, STATUS_LABELS, TASK_LABELS


def render() -> None:
    actor = st.session_state["actor"]
    worklist = reading_service.worklist(shared_database(), actor)
    st.title("Your worklist")
    st.progress(worklist.done / worklist.total if worklist.total else 1.0,
                text=f"{worklist.done} of {worklist.total} done · {worklist.remaining} remaining")
    if worklist.next_session is not None:
        st.info(worklist.next_session.message(), icon=":material/event:")
    rows = []
    for item in worklist.items:
        state = SESSION_HELD_LABEL if worklist.held_for_session(item) else STATUS_LABELS.get(item.status, item.status)
        row = {"#": item.position, "task": TASK_LABELS.get(item.task, item.task), "state": state}
        if worklist.can_go_back:
            row["look again"] = f"/reading?case={item.case_ref}" if item.status == "completed" else None
        rows.append(row)
    config = {"look again": st.column_config.LinkColumn("look again", display_text="open")} if worklist.can_go_back else None
    st.dataframe(pd.DataFrame(rows), hide_index=True, column_config=config)
    if any(item.status == "pending" and not worklist.held_for_session(item) for item in worklist.items):
        st.caption("Cases marked “opens with your next reading round” open together when the current round is "
                   "complete.")
    pages = st.session_state.get("reader_pages")
    if pages:  # an in-app move (Back returns here), not a page load that would start a new session
        st.page_link(pages["reading"], label="Continue reading", icon=":material/play_arrow:")
    else:
        st.link_button("Continue reading", "/", type="primary")
