"""One path for every write: a Database owns the engine, and each service call runs in one transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from study_app.store import make_engine, make_sessionmaker, upgrade
from study_app.store.engine import READ_ONLY


@dataclass
class Database:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    # SQLite has one writer at a time. Threads of this process queue here, in order, instead of
    # sleeping in SQLite's busy handler (whose back-off makes the tail latency of a burst of
    # submits hundreds of milliseconds); other processes are still held off by BEGIN IMMEDIATE.
    _write_lock: threading.Lock | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.engine.dialect.name == "sqlite" and self._write_lock is None:
            self._write_lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error: the one path of every write."""
        with self._write_lock or nullcontext(), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session: a consistent snapshot that takes no write lock."""
        with self.sessions() as session:
            if self.engine.dialect.name == "sqlite":
                session.connection(execution_options={READ_ONLY: True})
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str | None = None, *, migrate: bool = True) -> Database:
    """Open (and by default migrate to the newest schema) the database at `url`."""
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    return Database(
        url=engine.url.render_as_string(hide_password=False), engine=engine, sessions=make_sessionmaker(engine)
    )
