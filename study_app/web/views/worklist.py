"""The reader's worklist: every case with its state; finished ones cannot be opened again."""

import pandas as pd
import streamlit as st

from study_app.services import reading as reading_service
from study_app.web.database import shared_database
from study_app.web.views.reading import STATUS_LABELS, TASK_LABELS


def render() -> None:
    actor = st.session_state["actor"]
    worklist = reading_service.worklist(shared_database(), actor)
    st.title("Your worklist")
    st.progress(worklist.done / worklist.total if worklist.total else 1.0,
                text=f"{worklist.done} of {worklist.total} done · {worklist.remaining} remaining")
    table = pd.DataFrame(
        [{"#": i.position, "task": TASK_LABELS.get(i.task, i.task), "state": STATUS_LABELS.get(i.status, i.status)}
         for i in worklist.items]
    )
    st.dataframe(table, hide_index=True)
    st.link_button("Continue reading", "/", type="primary")
