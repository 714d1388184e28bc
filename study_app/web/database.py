"""The one Database the web process shares between the Streamlit pages and its HTTP routes."""

from __future__ import annotations

import os
import threading

from study_app.services.database import Database, open_database

DB_URL_ENV = "READERSTUDY_DB"

_lock = threading.Lock()
_databases: dict[str, Database] = {}


def database_url() -> str | None:
    """The database URL ``readerstudy serve`` handed to this process (None: the store's default)."""
    return os.environ.get(DB_URL_ENV) or None


def shared_database() -> Database:
    """Open (once per process and URL) the study database; migrations run on first open."""
    url = database_url() or ""
    with _lock:
        db = _databases.get(url)
        if db is None:
            db = _databases[url] = open_database(url or None)
        return db


def close_shared_databases() -> None:
    """Dispose every opened database (tests, shutdown)."""
    with _lock:
        for db in _databases.values():
            db.dispose()
        _databases.clear()
