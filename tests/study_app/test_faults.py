"""Database faults through the services: each becomes one DatabaseUnavailable in plain words (nothing saved),
what was acknowledged before stays, readiness says no, and the CLI prints one line.

Disk full and read-only use a real size-limited or read-only file system where the machine allows mounting one
(``tests/fault_support.py``), and SQLite's own limits (``max_page_count``, ``query_only``) everywhere, which
raise the same SQLite errors.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import event, text

from study_app.services import auth, reading
from study_app.services.database import fault_message, open_database, readiness
from study_app.services.errors import DatabaseUnavailable, NotFound
from study_app.store.engine import BUSY_TIMEOUT_ENV
from tests.fault_support import fill, remount_read_only, small_disk
from tests.web.conftest import demo_template  # noqa: F401  (the launched demo study, built once per session)


@pytest.fixture
def study_copy(demo_template, tmp_path):  # noqa: F811
    """A private copy of the demo study file, its invites, and a reader's open case."""
    template, invites = demo_template
    path = tmp_path / "study.sqlite"
    shutil.copyfile(template, path)
    return path, invites


def reader_case(db, invites, key="res1"):
    _, actor = auth.exchange_invite(db, invites[key])
    item = reading.worklist(db, actor).items[0]
    reading.open_case(db, actor, item.case_ref)
    return actor, item.case_ref


def assert_fault(error: DatabaseUnavailable, reason: str) -> None:
    assert error.reason == reason
    assert str(error) == fault_message(reason) and "nothing was saved" in str(error)
    assert "\n" not in str(error) and "sqlite" not in str(error).lower()


def cli(*args, db_url):
    from study_app.cli import main

    result = CliRunner().invoke(main, [*args, "--db", db_url], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def test_a_lock_held_beyond_the_busy_timeout_is_busy_and_reads_go_on(study_copy, monkeypatch):
    path, invites = study_copy
    monkeypatch.setenv(BUSY_TIMEOUT_ENV, "0.3")
    db = open_database(f"sqlite:///{path}")
    actor, case = reader_case(db, invites)
    reading.autosave(db, actor, case, "acknowledged before the lock")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process (a backup, a stuck script) holds the write lock
    try:
        outcomes = []

        def save(n):
            try:
                reading.autosave(db, actor, case, f"typed during the lock {n}")
            except DatabaseUnavailable as error:
                outcomes.append(error)

        threads = [threading.Thread(target=save, args=(n,)) for n in range(3)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(outcomes) == 3 and all(not t.is_alive() for t in threads), "queued writers end in 'busy', not a hang"
        assert time.monotonic() - started < 5
        for error in outcomes:
            assert_fault(error, "busy")
        assert "Try again in a minute" in str(outcomes[0])
        # WAL: the reader's page can still be read while writes wait.
        assert reading.case_view(db, actor, case).editor_text == "acknowledged before the lock"
        assert readiness(db).ready, "a busy database is not an unready one"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    reading.autosave(db, actor, case, "after the lock")
    assert reading.case_view(db, actor, case).editor_text == "after the lock"
    db.dispose()


def _page_limit(db, pages: int | None) -> None:
    """SQLite's max_page_count on every connection: the database file cannot grow past it (SQLITE_FULL)."""
    db.engine.dispose()

    def limit(connection, _record):
        if pages is not None:
            connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(db.engine, "connect", limit)


def test_a_database_that_cannot_grow_is_full_and_keeps_what_was_acknowledged(study_copy):
    path, invites = study_copy
    db = open_database(f"sqlite:///{path}")
    actor, case = reader_case(db, invites)
    reading.autosave(db, actor, case, "acknowledged")
    with db.engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
    _page_limit(db, pages)
    acknowledged = "acknowledged"
    with pytest.raises(DatabaseUnavailable) as full:
        for n in range(50):  # free pages inside the file absorb the first saves
            typed = f"{n} " + "long report text " * 1100
            reading.autosave(db, actor, case, typed)
            acknowledged = typed
    assert_fault(full.value, "full")
    assert "freed disk space" in str(full.value)
    assert reading.case_view(db, actor, case).editor_text == acknowledged, "the last acknowledged save stands"
    db.dispose()


def test_a_full_file_system_is_full(demo_template, tmp_path):  # noqa: F811
    template, invites = demo_template
    with small_disk(tmp_path / "disk", "24m") as disk:
        path = disk / "study.sqlite"
        shutil.copyfile(template, path)
        db = open_database(f"sqlite:///{path}")
        try:
            actor, case = reader_case(db, invites)
            reading.autosave(db, actor, case, "acknowledged")
            filler = fill(disk)
            acknowledged = "acknowledged"
            with pytest.raises(DatabaseUnavailable) as full:
                for n in range(200):
                    typed = f"{n} " + "long report text " * 1100
                    reading.autosave(db, actor, case, typed)
                    acknowledged = typed
            assert_fault(full.value, "full")
            assert reading.case_view(db, actor, case).editor_text == acknowledged
            filler.unlink()
            reading.autosave(db, actor, case, "after space was freed")
            assert reading.case_view(db, actor, case).editor_text == "after space was freed"
        finally:
            db.dispose()


def test_a_read_only_database_refuses_writes_in_plain_words(study_copy):
    path, invites = study_copy
    db = open_database(f"sqlite:///{path}")
    actor, case = reader_case(db, invites)
    db.engine.dispose()
    event.listen(db.engine, "connect", lambda connection, _r: connection.execute("PRAGMA query_only = ON"))
    with pytest.raises(DatabaseUnavailable) as refused:
        reading.autosave(db, actor, case, "cannot be kept")
    assert_fault(refused.value, "read_only")
    assert reading.worklist(db, actor).total > 0, "reading still works"
    db.dispose()


def test_a_database_on_a_read_only_disk_is_one_line_for_every_command(demo_template, tmp_path):  # noqa: F811
    template, _ = demo_template
    with small_disk(tmp_path / "disk", "24m") as disk:
        shutil.copyfile(template, disk / "study.sqlite")
        remount_read_only(disk)
        url = f"sqlite:///{disk / 'study.sqlite'}"
        with pytest.raises(DatabaseUnavailable) as refused:
            open_database(url)
        assert refused.value.reason == "read_only"
        for command in (["progress", "demo"], ["serve", "--port", "8599"], ["study", "list"]):
            result = cli(*command, db_url=url)
            assert result.exit_code == 7, (command, result.output)
            assert result.output == (f"error: The study database is read-only ({disk / 'study.sqlite'}). "
                                     "Tell your study coordinator; try again once it is writable.\n"), command


def corrupt_header(path) -> None:
    with open(path, "r+b") as f:
        f.write(b"this is no longer a database file" * 3)


def test_a_damaged_database_is_one_line_for_every_command(study_copy):
    path, _ = study_copy
    corrupt_header(path)
    for command in (["progress", "demo"], ["serve", "--port", "8599"], ["study", "pause", "demo"]):
        result = cli(*command, db_url=f"sqlite:///{path}")
        assert result.exit_code == 7, (command, result.output)
        assert result.output == (f"error: The study database is damaged ({path}). "
                                 "Tell your study coordinator (restore from a backup).\n"), command


def test_damage_found_while_running_stops_every_write(study_copy):
    path, invites = study_copy
    db = open_database(f"sqlite:///{path}")
    actor, case = reader_case(db, invites)
    assert readiness(db).ready
    corrupt_header(path)
    state = readiness(db)
    assert (state.ready, state.reason) == (False, "corrupt") and "damaged" in state.message
    with pytest.raises(DatabaseUnavailable) as refused:
        reading.autosave(db, actor, case, "not into a damaged file")
    assert_fault(refused.value, "corrupt")
    db.dispose()


def test_damage_inside_the_file_is_found_by_the_page_check(study_copy):
    path, _ = study_copy
    db = open_database(f"sqlite:///{path}")
    db.dispose()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA journal_mode = DELETE")
        root = raw.execute("SELECT rootpage FROM sqlite_master WHERE name = 'event'").fetchone()[0]
        page_size = raw.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as f:  # scribble over the event table's root page, leave the header intact
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * page_size)
    db = open_database(f"sqlite:///{path}")
    state = readiness(db)
    assert (state.ready, state.reason) == (False, "corrupt")
    db.dispose()


def test_a_missing_database_is_named_and_never_created(tmp_path):
    missing = tmp_path / "typo.sqlite"
    result = cli("progress", "demo", db_url=f"sqlite:///{missing}")
    assert result.exit_code == 7
    assert result.output == f"error: There is no study database at {missing}; check the path (--db or READERSTUDY_DB).\n"
    assert not missing.exists()
    db = open_database(f"sqlite:///{tmp_path / 'new.sqlite'}")
    assert readiness(db).ready
    (tmp_path / "new.sqlite").unlink()
    state = readiness(db)
    assert (state.ready, state.reason) == (False, "missing")
    db.dispose()


def test_an_unreachable_server_is_one_line(monkeypatch):
    from tests.browser_support import free_port

    monkeypatch.setenv(BUSY_TIMEOUT_ENV, "1")
    url = f"postgresql+psycopg://study@127.0.0.1:{free_port()}/study"  # nothing listens there
    with pytest.raises(DatabaseUnavailable) as refused:
        open_database(url)
    assert refused.value.reason == "unreachable"
    result = cli("progress", "demo", db_url=url)
    assert result.exit_code == 7 and result.output == (
        f"error: The study database is unavailable (it cannot be reached) ({url}). "
        "Try again in a minute.\n")


@pytest.mark.postgres
def test_postgres_read_only_and_lock_timeout_are_translated(postgres_server, demo_cohort_dir, tmp_path, monkeypatch):
    from study_app.demo import build_demo_study

    monkeypatch.setenv(BUSY_TIMEOUT_ENV, "0.5")
    url = postgres_server.create_database()
    db = open_database(url)
    shutil.copytree(demo_cohort_dir, tmp_path / "cohort")
    invites = {i.reader_key: i.token for i in build_demo_study(db, cohort_dir=tmp_path / "cohort").invites}
    actor, case = reader_case(db, invites)
    reading.autosave(db, actor, case, "acknowledged")
    other = open_database(url, migrate=False)
    with other.engine.connect() as holder:  # a long transaction holds the assignment's row
        holder.execute(text("BEGIN"))
        holder.execute(text("SELECT id FROM assignment WHERE case_ref = :ref FOR UPDATE"), {"ref": case})
        with pytest.raises(DatabaseUnavailable) as busy:
            reading.submit(db, actor, case, "waits for the row")
        holder.execute(text("ROLLBACK"))
    assert_fault(busy.value, "busy")
    name = url.rsplit("/", 1)[1]
    with other.engine.connect() as admin:
        admin.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
        admin.commit()
    db.engine.dispose()  # new connections take the setting, as after a failover to a read-only standby
    with pytest.raises(DatabaseUnavailable) as read_only:
        reading.autosave(db, actor, case, "cannot be kept")
    assert_fault(read_only.value, "read_only")
    state = readiness(db)
    assert (state.ready, state.reason) == (False, "read_only")
    assert reading.case_view(db, actor, case).editor_text == "acknowledged"
    other.dispose()
    db.dispose()


@pytest.mark.parametrize("huge", [2**31, 2**63, 2**80, -(2**70)])
def test_ids_beyond_the_databases_integers_are_not_found(demo_study, huge):
    from study_app.services import images

    db, result = demo_study
    _, actor = auth.exchange_invite(db, result.invites[0].token)
    for call in (lambda: reading.autosave(db, actor, huge, "x"), lambda: reading.case_view(db, actor, huge),
                 lambda: images.case_image_bytes(db, actor, huge, 1), lambda: reading.mark_image_shown(db, actor, huge)):
        with pytest.raises(NotFound):
            call()
