"""One path for every write: a Database owns the engine, each service call runs in one transaction, and
every database fault is turned here, once, into a DatabaseUnavailable that says in plain words what happened.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from study_app.services.errors import DatabaseUnavailable, InvalidInput, NotFound
from study_app.store import make_engine, make_sessionmaker, upgrade
from study_app.store.models import utcnow
from study_app.store.engine import READ_ONLY, busy_timeout_s, normalise_url, default_db_url

FAULT_REASONS = ("busy", "full", "read_only", "corrupt", "missing", "unreachable")

# What happened, in the words a reader or a coordinator needs; the write wording says nothing was kept.
_WHAT = {
    "busy": "The study database is busy (another task holds it)",
    "full": "The disk of the study database is full",
    "read_only": "The study database is read-only",
    "corrupt": "The study database is damaged",
    "missing": "The study database is missing",
    "unreachable": "The study database is unavailable (it cannot be reached)",
}
_NEXT = {
    "busy": "Try again in a minute.",
    "full": "Try again once your study coordinator has freed disk space.",
    "read_only": "Tell your study coordinator; try again once it is writable.",
    "corrupt": "Tell your study coordinator (restore from a backup).",
    "missing": "Tell your study coordinator.",
    "unreachable": "Try again in a minute.",
}

# SQLite's primary result codes by name (Python >= 3.11 puts them on the exception).
_SQLITE_REASONS = {
    "SQLITE_BUSY": "busy", "SQLITE_LOCKED": "busy", "SQLITE_FULL": "full", "SQLITE_READONLY": "read_only",
    "SQLITE_CORRUPT": "corrupt", "SQLITE_NOTADB": "corrupt", "SQLITE_CANTOPEN": "unreachable",
    "SQLITE_IOERR": "unreachable", "SQLITE_PERM": "read_only", "SQLITE_PROTOCOL": "busy",
}
# PostgreSQL SQLSTATEs (classes by their first two characters).
_PG_REASONS = {"53100": "full", "25006": "read_only", "55P03": "busy", "40P01": "busy", "57014": "busy",
               "XX001": "corrupt", "XX002": "corrupt"}
_PG_CLASSES = {"08": "unreachable", "57": "unreachable", "53": "full", "58": "unreachable"}
_PG_OUT_OF_RANGE = "22003"


def fault_message(reason: str, *, write: bool = True) -> str:
    """The plain sentence shown for a fault: what happened, that nothing was saved (writes), what to do next."""
    said = "nothing was saved" if write else "the page could not be loaded"
    return f"{_WHAT[reason]}; {said}. {_NEXT[reason]}"


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def _read_only_fs(path: Path) -> bool:
    """True when the folder holding ``path`` is on a read-only mount (root ignores permission bits, not this)."""
    folder = path.parent if path.parent.exists() else Path(".")
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK))


def classify(error: BaseException, url: str | None = None) -> str | None:
    """The fault reason of a database error (one of FAULT_REASONS), or None for errors that are not faults
    of the database itself (a constraint refused, a bug): those keep their own exception."""
    if isinstance(error, sa_exc.IntegrityError):
        return None
    if isinstance(error, sa_exc.TimeoutError):  # the connection pool stayed exhausted
        return "busy"
    original = getattr(error, "orig", None) or error
    if isinstance(original, sqlite3.IntegrityError):
        return None
    if isinstance(original, sqlite3.Error):
        name = getattr(original, "sqlite_errorname", "") or ""
        reason = _SQLITE_REASONS.get(name) or _SQLITE_REASONS.get("_".join(name.split("_")[:2]))
        if reason is None:
            message = str(original).lower()
            reason = ("busy" if "locked" in message else "full" if "full" in message
                      else "read_only" if "readonly" in message or "read-only" in message
                      else "corrupt" if "malformed" in message or "not a database" in message else None)
        if reason == "unreachable" and url is not None:
            path = _sqlite_path(url)
            # SQLite says only "unable to open": a WAL database on a read-only mount cannot even be read.
            if path is not None and path.exists() and _read_only_fs(path):
                return "read_only"
            if path is not None and not path.exists():
                return "missing"
        return reason
    if isinstance(original, OSError) and original.errno == errno.ENOSPC:
        return "full"
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return _PG_REASONS.get(sqlstate) or _PG_CLASSES.get(sqlstate[:2])
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError)):
        # psycopg's connection failures (refused, DNS, timeout) carry no SQLSTATE.
        return "unreachable"
    return None


def _out_of_range(error: BaseException) -> bool:
    """An id too large for the database's integer (a URL or a form typed by hand): there is no such record."""
    original = getattr(error, "orig", None) or error
    if isinstance(original, OverflowError):
        return True
    return getattr(original, "sqlstate", None) == _PG_OUT_OF_RANGE


def translate(error: BaseException, url: str | None = None, *, write: bool = True) -> Exception | None:
    """The ServiceError a database error stands for, or None when it is not a fault to translate."""
    if _out_of_range(error):
        return NotFound("no such record (the number is out of range)")
    reason = classify(error, url)
    if reason is None:
        return None
    return DatabaseUnavailable(fault_message(reason, write=write), reason=reason)


_TRANSLATED = (sa_exc.DBAPIError, sa_exc.TimeoutError, sa_exc.StatementError, sqlite3.Error, OverflowError, OSError)


@dataclass
class Database:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    # SQLite has one writer at a time. Threads of this process queue here, in order, instead of
    # sleeping in SQLite's busy handler (whose back-off makes the tail latency of a burst of
    # submits hundreds of milliseconds); other processes are still held off by BEGIN IMMEDIATE.
    _write_lock: threading.Lock | None = field(default=None, repr=False)
    # Once a database is found damaged nothing more is written to it (writes could spread the damage);
    # a restart after the restore clears this.
    _damaged: str | None = field(default=None, repr=False)
    # The server's clock, in aware UTC: what the study's dates (reading sessions, washouts) are read from.
    # Tests replace it to move through weeks of a study in a second.
    clock: Callable[[], datetime] = field(default=utcnow, repr=False)

    def now(self) -> datetime:
        """The current time by the server's clock (aware UTC)."""
        return self.clock()

    def __post_init__(self) -> None:
        if self.engine.dialect.name == "sqlite" and self._write_lock is None:
            self._write_lock = threading.Lock()

    @contextmanager
    def _write_slot(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        # Bounded like SQLite's own busy wait: a queue behind a lock held elsewhere ends in "busy", not a hang.
        if not self._write_lock.acquire(timeout=busy_timeout_s()):
            raise DatabaseUnavailable(fault_message("busy"), reason="busy")
        try:
            yield
        finally:
            self._write_lock.release()

    def _fault(self, error: BaseException, *, write: bool) -> Exception | None:
        translated = translate(error, self.url, write=write)
        if isinstance(translated, DatabaseUnavailable) and translated.reason == "corrupt":
            self._damaged = "corrupt"
        return translated

    def _refuse_if_damaged(self, *, write: bool) -> None:
        if self._damaged is not None:
            raise DatabaseUnavailable(fault_message(self._damaged, write=write), reason=self._damaged)

    @contextmanager
    def _guarded(self, *, write: bool) -> Iterator[None]:
        # What every way into the database shares: nothing is written to a damaged file, a SQLite write waits its
        # turn (bounded), and a fault comes out as the plain sentence of DatabaseUnavailable (or NotFound).
        self._refuse_if_damaged(write=write)
        try:
            if write:
                with self._write_slot():
                    yield
            else:
                yield
        except _TRANSLATED as error:
            translated = self._fault(error, write=write)
            if translated is None:
                raise
            raise translated from error

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error: the one path of every write.

        Raises DatabaseUnavailable (nothing was saved) when the database is busy beyond the wait, full,
        read-only, damaged or unreachable, and NotFound for an id beyond the database's integers.
        """
        with self._guarded(write=True), self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session: a consistent snapshot that takes no write lock (faults translated as above)."""
        with self._guarded(write=False), self.sessions() as session:
            if self.engine.dialect.name == "sqlite":
                session.connection(execution_options={READ_ONLY: True})
            yield session

    @contextmanager
    def core(self, *, write: bool) -> Iterator[Connection]:
        """A Core connection in one transaction, with the same guards and fault translation as :meth:`transaction`
        (``write``) and :meth:`read`: for the few statements every reader request runs (the session check, an
        autosave), where the ORM's per-statement work was most of the request's CPU (P8). Its statements are
        built once, at import."""
        with self._guarded(write=write), self.engine.connect() as connection:
            if not write and self.engine.dialect.name == "sqlite":
                connection = connection.execution_options(**{READ_ONLY: True})
            with connection.begin():
                yield connection

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str | None = None, *, migrate: bool = True, create: bool = True) -> Database:
    """Open (and by default migrate to the newest schema) the database at `url`.

    Parameters
    ----------
    url : str, optional
        Any SQLAlchemy URL or a SQLite file path; default ``$READERSTUDY_DB``, else ``./var/readerstudy.sqlite``.
    migrate : bool, default True
        Bring the schema to the newest migration (a no-op, and no write, when it is there already).
    create : bool, default True
        With False, a SQLite file that does not exist is refused instead of created (a mistyped path must
        not start an empty study database).

    Raises
    ------
    DatabaseUnavailable
        The database is missing (``create=False``), busy, read-only, damaged or unreachable.
    """
    url = normalise_url(url or default_db_url())
    path = _sqlite_path(url)
    if path is not None and not create and not path.is_file():
        raise DatabaseUnavailable(f"There is no study database at {path}; check the path (--db or READERSTUDY_DB).",
                                  reason="missing")
    try:
        engine = make_engine(url)
    except OSError as error:  # the SQLite folder cannot be made
        raise DatabaseUnavailable(fault_message(classify(error, url) or "unreachable", write=False),
                                  reason=classify(error, url) or "unreachable") from error
    try:
        if migrate:
            _migrate_if_behind(engine)
        else:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
    except _TRANSLATED as error:
        engine.dispose()
        translated = translate(error, url, write=False)
        if translated is None:
            raise
        if isinstance(translated, DatabaseUnavailable):
            # At start-up there is no page to load: say only what is wrong and what to do.
            translated = DatabaseUnavailable(f"{_WHAT[translated.reason]} ({_where(url)}). {_NEXT[translated.reason]}",
                                             reason=translated.reason)
        raise translated from error
    return Database(
        url=engine.url.render_as_string(hide_password=False), engine=engine, sessions=make_sessionmaker(engine)
    )


class DatabaseVersionError(InvalidInput):
    """The database's schema revision is unknown to this version (it was migrated by a newer one)."""


def _where(url: str) -> str:
    path = _sqlite_path(url)
    return str(path) if path is not None else make_url(url).render_as_string(hide_password=True)


def _migrate_if_behind(engine: Engine) -> None:
    """Upgrade only when the schema is behind: a database at head is opened without a write, so commands
    that only read work on a read-only copy."""
    from study_app.store import current_revision, head_revision

    if engine.dialect.name == "sqlite":
        # Reading the revision of a damaged file is what reveals the damage; do it before anything else.
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
    current = current_revision(engine)
    if current != head_revision():
        from alembic.util.exc import CommandError

        try:
            upgrade(engine)
        except CommandError:
            # A revision this version does not know: the database was migrated by a newer (or another) version.
            raise DatabaseVersionError(
                f"The study database is at schema revision '{current}', which this version of readerstudy does not "
                f"know (newest known: '{head_revision()}'); it was upgraded by a newer version. Use that version, "
                "or a backup made before the upgrade."
            ) from None


# --- readiness -------------------------------------------------------------------------------------------

# A full check of every page is linear in the file's size: done at most this often, cheap checks every time.
QUICK_CHECK_EVERY_S = 60.0


@dataclass(frozen=True)
class Readiness:
    """Whether the database can take readers' work now; ``reason`` is a FAULT_REASONS entry when not."""

    ready: bool
    reason: str | None = None
    message: str = "ready"


_quick_checks: dict[str, tuple[float, str | None]] = {}
_quick_lock = threading.Lock()


def _sqlite_probe(db: Database, path: Path) -> str | None:
    """A fresh connection (no pooled page cache hides damage) that reads the schema, can take the write lock,
    and, once a minute, checks every page."""
    if not path.is_file():
        return "missing"
    try:
        connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=1.0, isolation_level=None)
    except sqlite3.Error as error:
        return classify(error, db.url) or "unreachable"
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        connection.execute("SELECT version_num FROM alembic_version").fetchone()
        if _read_only_fs(path):
            return "read_only"
        now = time.monotonic()
        with _quick_lock:
            last = _quick_checks.get(str(path))
        if last is None or now - last[0] > QUICK_CHECK_EVERY_S:
            result = connection.execute("PRAGMA quick_check").fetchone()[0]
            verdict = None if result == "ok" else "corrupt"
            with _quick_lock:
                _quick_checks[str(path)] = (now, verdict)
            return verdict
        return last[1]
    except sqlite3.Error as error:
        return classify(error, db.url) or "corrupt"
    finally:
        connection.close()


def readiness(db: Database) -> Readiness:
    """Can the database take readers' work now? Unreachable, read-only, missing or damaged means no.

    A database that is only busy is ready (the next write waits its turn); its lock wait is not probed.
    """
    if db._damaged is not None:
        return Readiness(False, db._damaged, fault_message(db._damaged, write=False))
    path = _sqlite_path(db.url)
    try:
        if path is not None:
            reason = _sqlite_probe(db, path)
        else:
            with db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
                read_only = connection.execute(text("SHOW transaction_read_only")).scalar()
            reason = "read_only" if str(read_only).lower() == "on" else None
    except _TRANSLATED as error:
        reason = classify(error, db.url) or "unreachable"
    if reason is None:
        return Readiness(True)
    if reason == "corrupt":
        db._damaged = "corrupt"
    return Readiness(False, reason, fault_message(reason, write=False))
