"""One path for every write: a Database owns the engine, and each service call runs in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from study_app.store import make_engine, make_sessionmaker, upgrade


@dataclass
class Database:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.sessions() as session:
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
