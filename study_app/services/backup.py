"""A consistent copy of a live SQLite study database, taken with SQLite's online backup API."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import Conflict, InvalidInput


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size_bytes: int
    integrity: str


def backup_database(db: Database, actor: Actor, out: str | Path, *, overwrite: bool = False) -> BackupResult:
    """Copy the whole database to `out` while readers keep working, then check the copy's integrity.

    The backup runs in one step under a read transaction of the source, so the copy is one consistent
    moment of the database; writers wait at most for the copy's duration (WAL lets readers continue).
    PostgreSQL databases are backed up with the server's own tools (``pg_dump``); see docs/deployment.md.
    """
    require_coordinator(actor, "back up the database")
    if db.engine.dialect.name != "sqlite":
        raise InvalidInput(f"backup copies SQLite databases; for {db.engine.dialect.name} use pg_dump (docs/deployment.md)")
    out = Path(out)
    if out.exists() and not overwrite:
        raise Conflict(f"{out} exists; choose a new file (a backup never overwrites one)")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    raw = db.engine.raw_connection()
    try:
        target = sqlite3.connect(partial)
        try:
            raw.driver_connection.backup(target, pages=-1)
            integrity = target.execute("PRAGMA integrity_check").fetchone()[0]
            # The copy is a standalone file: no WAL beside it to carry around.
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
    finally:
        raw.close()
    if integrity != "ok":
        partial.unlink(missing_ok=True)
        raise Conflict(f"the copy failed its integrity check ({integrity}); nothing was written")
    partial.replace(out)
    return BackupResult(path=out, size_bytes=out.stat().st_size, integrity=integrity)
