"""Opens the study database: any SQLAlchemy URL, SQLite tuned for many concurrent readers by default."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DB_ENV = "READERSTUDY_DB"
DEFAULT_SQLITE_PATH = Path("var") / "readerstudy.sqlite"
# How long a write waits for a lock held by someone else before it gives up with a clear "busy" message:
# long enough to ride out a checkpoint or a burst of submits, short enough that a reader is told in time.
BUSY_TIMEOUT_ENV = "READERSTUDY_DB_BUSY_TIMEOUT_S"
DEFAULT_BUSY_TIMEOUT_S = 15.0


def busy_timeout_s() -> float:
    """The lock wait of this process: $READERSTUDY_DB_BUSY_TIMEOUT_S, else 15 s (SQLite and PostgreSQL alike)."""
    try:
        value = float(os.environ.get(BUSY_TIMEOUT_ENV) or DEFAULT_BUSY_TIMEOUT_S)
    except ValueError:
        return DEFAULT_BUSY_TIMEOUT_S
    return min(max(value, 0.1), 600.0)


def default_db_url() -> str:
    """The database the CLI and the app use when none is named: $READERSTUDY_DB, else ./var/readerstudy.sqlite."""
    url = os.environ.get(DEFAULT_DB_ENV)
    if url:
        return url
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def normalise_url(url: str) -> str:
    """Accept a bare file path as shorthand for a SQLite URL."""
    if "://" not in url:
        return f"sqlite:///{url}"
    return url


def _on_sqlite_connect(dbapi_connection, _record) -> None:
    # WAL lets readers read while one writer writes; foreign keys are off by default in SQLite.
    # isolation_level=None hands transaction control to SQLAlchemy's events below, so
    # BEGIN IMMEDIATE takes the write lock up front and two writers never deadlock mid-transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s() * 1000)}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


READ_ONLY = "readerstudy_read_only"


def _on_sqlite_begin(connection) -> None:
    # Reads take no write lock, so they never queue behind a writer (WAL lets them proceed).
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """Create an engine for `url` (default: :func:`default_db_url`), making the SQLite folder if needed."""
    url = normalise_url(url or default_db_url())
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": busy_timeout_s()})
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    connect_args = {}
    if parsed.get_backend_name() == "postgresql":
        # A row lock (SELECT ... FOR UPDATE) waits as long as SQLite's busy timeout, not forever; an unreachable
        # server fails the connection within the same bound instead of TCP's minutes.
        connect_args = {"options": f"-c lock_timeout={int(busy_timeout_s() * 1000)}",
                        "connect_timeout": max(1, int(busy_timeout_s()))}
    return create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
