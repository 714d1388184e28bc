"""What every console page does first: refuse anyone but a coordinator, pick the study, and show service errors."""

from __future__ import annotations

import re

import streamlit as st

from study_app.services.actors import Actor
from study_app.services.studies import list_studies
from study_app.web.database import shared_database

STUDY_KEY = "console_study"
REFUSAL = "The coordinator console is for signed-in coordinators only."
# Markdown punctuation Streamlit would interpret in st.error/st.success text.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: object) -> str:
    """Text from a file or a user, escaped so Streamlit's markdown shows it as typed."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def coordinator_or_stop() -> Actor:
    """The signed-in coordinator; anyone else sees a refusal and the page stops here."""
    actor = st.session_state.get("actor")
    if not isinstance(actor, Actor) or not actor.is_coordinator:
        st.error(REFUSAL)
        st.stop()
    return actor


def choose_study(actor: Actor, *, label: str = "Study") -> str | None:
    """A study picker shared by the pages (the choice follows the coordinator from page to page)."""
    studies = list_studies(shared_database(), actor)
    if not studies:
        st.info("No study yet: create one on the Studies page.")
        return None
    ids = [s.study_id for s in studies]
    status = {s.study_id: s.status for s in studies}
    current = st.session_state.get(STUDY_KEY)
    index = ids.index(current) if current in ids else len(ids) - 1
    chosen = st.selectbox(label, ids, index=index, format_func=lambda sid: f"{sid} ({status[sid]})",
                          key=f"{STUDY_KEY}_picker")
    st.session_state[STUDY_KEY] = chosen
    return chosen


def show_problems(title: str, problems: list[str] | str) -> None:
    """A refusal or a list of problems: the title as an error, the details verbatim (never as markdown)."""
    lines = problems.splitlines() if isinstance(problems, str) else list(problems)
    st.error(plain(title))
    if lines:
        st.code("\n".join(lines), language=None, wrap_lines=True)
