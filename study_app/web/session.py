"""Who is at the keyboard: the session cookie, checked against the database on every rerun."""

from __future__ import annotations

import streamlit as st

from study_app.services import auth
from study_app.services.actors import Actor
from study_app.web.database import shared_database

# Server-side only: a browser cannot write a session_state key that no widget owns. Test harnesses
# (AppTest cannot send cookies) put a session token here; the real app always uses the HttpOnly cookie.
SESSION_TOKEN_KEY = "readerstudy_session_token"


def session_token() -> str | None:
    """The session token of this browser: the HttpOnly cookie set by /signin, else the harness's."""
    try:
        token = st.context.cookies.get(auth.SESSION_COOKIE)
    except Exception:  # no browser context (bare script run)
        token = None
    if not isinstance(token, str):  # AppTest's stand-in client has no real cookies
        token = None
    return token or st.session_state.get(SESSION_TOKEN_KEY)


def current_actor() -> Actor | None:
    """The signed-in reader or coordinator, re-checked each rerun so a revoked session stops at once."""
    return auth.actor_for_session(shared_database(), session_token())
