"""Database faults under the live server: a locked, full, damaged, read-only or unreachable database gives the reader
a plain sentence (HTTP 503 with it for the editor's saves), /ready says so for the proxy, and nothing acknowledged is
lost. Disk full uses a real small file system where the machine allows it (tests/fault_support.py)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from study_app.services import auth, reading
from study_app.services.database import fault_message, open_database
from tests.fault_support import fill, small_disk
from tests.browser_support import sign_in
from tests.reliability.conftest import ServerProcess, open_case

BEACON = {"X-Readerstudy-Client": "1"}


def reader_with_open_case(study, key="res1"):
    cookie = study.session_token(key)
    actor = study.actor(key)
    case = study.items(actor, status="ready")[0].case_ref
    reading.open_case(study.db, actor, case)
    return cookie, actor, case


def save(study, cookie, case, typed):
    with httpx.Client(base_url=study.base, cookies={auth.SESSION_COOKIE: cookie}, timeout=60) as client:
        return client.post(f"/api/reading/{case}/autosave", json={"text": typed},
                           headers={**BEACON, "Origin": study.base})


def ready(study):
    return httpx.get(f"{study.base}/ready", timeout=60)


def assert_plain_503(response, reason):
    assert response.status_code == 503, response.text
    assert response.json() == {"error": fault_message(reason), "kind": "DatabaseUnavailable"}


def test_a_lock_held_beyond_the_timeout_is_answered_busy_and_work_goes_on_after(study_server):
    study = study_server(env={"READERSTUDY_DB_BUSY_TIMEOUT_S": "1"})
    cookie, actor, case = reader_with_open_case(study)
    assert save(study, cookie, case, "acknowledged").status_code == 200
    holder = sqlite3.connect(study.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert_plain_503(save(study, cookie, case, "typed while locked"), "busy")
        assert ready(study).status_code == 200, "busy is not unready: the next write takes its turn"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert save(study, cookie, case, "saved after the lock").status_code == 200
    assert reading.case_view(study.db, actor, case).editor_text == "saved after the lock"


def test_a_full_disk_is_answered_full_and_keeps_what_was_acknowledged(study_server, tmp_path):
    with small_disk(tmp_path / "disk", "40m") as disk:
        study = study_server(db_dir=disk)
        try:
            cookie, actor, case = reader_with_open_case(study)
            coordinator = _coordinator_cookie(study)
            # A cohort upload larger than the disk is refused before a byte is written.
            with httpx.Client(base_url=study.base, cookies={auth.SESSION_COOKIE: coordinator}, timeout=60) as client:
                too_big = client.put("/console/upload/huge", content=b"\0" * (48 * 1024**2),
                                     headers={**BEACON, "Origin": study.base})
            assert too_big.status_code == 507 and "not enough disk space" in too_big.json()["error"]
            assert not list((disk / "cohorts" / ".uploads").glob("*")), "nothing was written"
            filler = fill(disk)
            acknowledged = None
            for n in range(200):
                typed = f"{n} " + "a long report " * 1300
                response = save(study, cookie, case, typed)
                if response.status_code != 200:
                    break
                acknowledged = typed
            assert_plain_503(response, "full")
            filler.unlink()
            if acknowledged is not None:
                assert reading.case_view(study.db, actor, case).editor_text == acknowledged
            assert save(study, cookie, case, "after space was freed").status_code == 200
            assert ready(study).status_code == 200
        finally:
            study.server.stop()
            study.db.dispose()


def _coordinator_cookie(study) -> str:
    from study_app.services.actors import SYSTEM

    auth.create_coordinator(study.db, SYSTEM, "keeper", "a long coordinator password")
    return auth.coordinator_sign_in(study.db, "keeper", "a long coordinator password", address="setup")[0]


def test_a_database_damaged_while_serving_is_unready_and_takes_no_more_writes(study_server, tmp_path):
    study = study_server()
    cookie, actor, case = reader_with_open_case(study)
    assert save(study, cookie, case, "acknowledged").status_code == 200
    assert ready(study).json() == {"status": "ready"}
    with open(study.path, "r+b") as f:
        f.write(b"scribbled over by a failing disk" * 4)
    response = ready(study)
    assert response.status_code == 503 and response.json()["reason"] == "corrupt"
    assert "damaged" in response.json()["message"]
    assert_plain_503(save(study, cookie, case, "not into a damaged file"), "corrupt")
    study.server.stop()
    # Started again on the damaged file, `readerstudy serve` says what is wrong in one line and exits.
    readerstudy = Path(sys.executable).with_name("readerstudy")
    started = subprocess.run([str(readerstudy), "serve", "--db", study.url, "--port", "8599"],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert started.returncode == 7
    assert started.stderr == (f"error: The study database is damaged ({study.path}). "
                              "Tell your study coordinator (restore from a backup).\n")


@pytest.mark.browser
def test_the_reader_page_says_in_plain_words_when_the_database_is_locked(study_server, browser):
    study = study_server(env={"READERSTUDY_DB_BUSY_TIMEOUT_S": "1"})
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    sign_in(page, study.base, study.invites["res1"])
    page.get_by_text("cases done").first.wait_for(timeout=30_000)
    actor = study.actor("res1")
    later = study.items(actor, status="ready")[-1].case_ref
    holder = sqlite3.connect(study.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        page.goto(f"{study.base}/?case={later}")  # opening a case is a write (the clock, the visit)
        start = page.get_by_role("button", name="Start")
        busy = page.get_by_text("The study database is busy")
        start.or_(busy).first.wait_for(timeout=30_000)
        if start.count():
            start.click()
        page.get_by_text("The study database is busy").wait_for(timeout=30_000)
        assert page.locator("[data-testid=stException]").count() == 0
        assert "Traceback" not in page.content() and "sqlite" not in page.locator("body").inner_text().lower()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    open_case(page, study.base, later)  # the reader carries on once the lock is gone
    page.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_turning_read_only_then_unreachable_while_serving(demo_cohort_dir, tmp_path):
    from tests.postgres_server import PostgresUnavailable, start_postgres

    try:
        pg = start_postgres()  # a server of this test's own: it is stopped half-way
    except PostgresUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))
    app = None
    db = None
    try:
        url = pg.create_database()
        db = open_database(url)
        from study_app.demo import build_demo_study
        import shutil

        shutil.copytree(demo_cohort_dir, tmp_path / "cohort")
        invites = {i.reader_key: i.token for i in build_demo_study(db, cohort_dir=tmp_path / "cohort").invites}
        cookie, actor = auth.exchange_invite(db, invites["res1"])
        case = reading.worklist(db, actor).items[0].case_ref
        reading.open_case(db, actor, case)
        app = ServerProcess(url, tmp_path, env={"READERSTUDY_DB_BUSY_TIMEOUT_S": "2"})
        app.start()

        class Live:  # what save() and ready() need
            base = app.base

        assert save(Live, cookie, case, "acknowledged").status_code == 200
        name = url.rsplit("/", 1)[1]
        with db.engine.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
            # A failover to a read-only standby: every open connection is cut, new ones are read-only.
            admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
            admin.commit()
        response = ready(Live)
        assert response.status_code == 503 and response.json()["reason"] == "read_only"
        assert_plain_503(save(Live, cookie, case, "cannot be kept"), "read_only")
        pg.stop()
        response = ready(Live)
        assert response.status_code == 503 and response.json()["reason"] == "unreachable"
        assert_plain_503(save(Live, cookie, case, "nowhere to keep it"), "unreachable")
    finally:
        if app is not None:
            app.stop()
        if db is not None:
            db.dispose()
        pg.stop()
