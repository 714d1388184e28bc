"""The app's one error boundary: whatever fails while a page runs, a person sees a sentence, never a stack trace.

A service error (the database busy, full or damaged included) already says what happened in plain words; any
other exception is a bug, logged with its traceback for the operator and shown as one calm sentence.
"""

from __future__ import annotations

import logging

import streamlit as st

from study_app.services.errors import DatabaseUnavailable, ServiceError
from study_app.web.console.access import plain

_LOG = logging.getLogger("readerstudy.web")
UNEXPECTED = ("Something went wrong on the server. Nothing you had submitted is lost; your text is autosaved. "
              "Reload the page in a minute; if this keeps happening, tell your study coordinator.")


def fault_text(error: BaseException) -> str:
    """What the page says for ``error``."""
    if isinstance(error, ServiceError):
        return str(error)
    return UNEXPECTED


def show_fault(error: BaseException) -> None:
    """Draw the message in place of the page (called from the entry script's boundary)."""
    if not isinstance(error, ServiceError):
        _LOG.error("page failed", exc_info=error)
    elif isinstance(error, DatabaseUnavailable):
        _LOG.warning("database fault (%s): %s", error.reason, error)
    # Escaped: a message may quote a path or a name with markup characters in it.
    st.error(plain(fault_text(error)))


def show_script_error(error: BaseException) -> bool:
    """``st.App(on_script_error=...)``: exceptions the entry script's boundary cannot catch (widget callbacks)
    get the same message; True suppresses Streamlit's own exception box."""
    try:
        show_fault(error)
    except Exception:  # no script context left to draw in: Streamlit's box is then suppressed all the same
        _LOG.error("could not show the fault message", exc_info=True)
    return True
