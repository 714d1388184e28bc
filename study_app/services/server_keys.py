"""Secrets the web server keeps across restarts and shares with its replicas, in the study database."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError

from study_app.services.database import Database
from study_app.store.models import ServerKey

COOKIE_SECRET = "streamlit_cookie_secret"


def server_key(db: Database, name: str) -> str:
    """The named secret, created (256 random bits) on first use; every process on this database gets the same.

    Streamlit signs its XSRF cookie with ``server.cookieSecret``. A secret drawn anew by each process meant
    that after a restart every open tab's websocket was refused, and the page stayed on "Submitting..." until
    the reader reloaded it; replicas behind one proxy need one secret for the same reason.
    """
    with db.read() as session:
        row = session.get(ServerKey, name)
        if row is not None:
            return row.value
    try:
        with db.transaction() as session:
            session.add(ServerKey(name=name, value=secrets.token_urlsafe(32)))
    except IntegrityError:
        pass  # another process created it first: theirs stands
    with db.read() as session:
        return session.get(ServerKey, name).value
