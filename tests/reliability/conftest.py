"""Fixtures of the reliability tests: the real reader server as a killable subprocess on a copy of the demo study."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from study_app.services import auth, reading
from study_app.services.actors import Actor, reader_actor
from study_app.services.database import Database, open_database
from study_app.store.models import Reader
from tests.browser_support import CHROMIUM_ARGS, free_port, stop_process
from tests.web.conftest import demo_template  # noqa: F401  (the launched demo study, built once per session)

# Markup a hostile or careless reader could type: every piece must come back to other readers as plain text.
HOSTILE_REPORT = ('<b>bold</b> <script>window.__rs_pwned = 1</script> <img src="x" onerror="window.__rs_pwned = 2"> '
                  "**stars** [link](http://evil.example) <i>lungs clear</i>")


class ServerProcess:
    """`serve()` of the reader app in a child process, which a test may SIGKILL and start again on the same port."""

    def __init__(self, db_url: str, workdir: Path, port: int | None = None, env: dict[str, str] | None = None):
        self.db_url = db_url
        self.workdir = workdir
        self.port = port or free_port()
        # Settings of the served app (READERSTUDY_TRUSTED_PROXIES, READERSTUDY_DB_BUSY_TIMEOUT_S ...).
        self.env = dict(env or {})
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout_s: float = 45.0) -> None:
        self.starts += 1
        code = f"from study_app.serve import serve; serve({self.db_url!r}, port={self.port})"
        log = open(self.workdir / f"server-{self.starts}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], cwd=self.workdir, env=dict(os.environ, PYTHONUNBUFFERED="1", **self.env),
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log())
            try:
                if httpx.get(f"{self.base}/_stcore/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        path = self.workdir / f"server-{self.starts}.log"
        return path.read_text() if path.is_file() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush, no goodbye; what a power cut or the OOM killer does."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process)


@dataclass
class ServedStudy:
    """A private copy of the demo study, the database handle the test inspects it with, and the live server on it."""

    db: Database
    url: str
    path: Path
    invites: dict[str, str]
    server: ServerProcess
    spent: set[str] = field(default_factory=set)
    sessions: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.server.base

    def actor(self, reader_key: str) -> Actor:
        with self.db.read() as session:
            reader_id = session.scalars(select(Reader.id).where(Reader.reader_key == reader_key)).one()
        return reader_actor(reader_id, reader_key)

    def session_token(self, reader_key: str) -> str:
        """A session cookie value for the reader, as /signin would set it (spends the reader's invite)."""
        if reader_key not in self.sessions:
            self.spent.add(reader_key)
            self.sessions[reader_key], _ = auth.exchange_invite(self.db, self.invites[reader_key])
        return self.sessions[reader_key]

    def items(self, actor: Actor, task: str | None = None, status: str | None = None):
        return [
            i for i in reading.worklist(self.db, actor).items
            if (task is None or i.task == task) and (status is None or i.status == status)
        ]


def finish_residents(db: Database, invites: dict[str, str], text: str) -> None:
    """Both residents finish every case through the services, so the attendings' resident-draft cases open."""
    for key in ("res1", "res2"):
        _, actor = auth.exchange_invite(db, invites[key])
        for item in reading.worklist(db, actor).items:
            view = reading.open_case(db, actor, item.case_ref)
            reading.mark_image_shown(db, actor, item.case_ref)
            result = reading.submit(db, actor, item.case_ref, text if view.task in ("write", "edit") else None)
            if result.status == "submitted":
                reading.save_answers(db, actor, item.case_ref,
                                     {q.key: q.options[0]["value"] for q in view.questions})


def _serve_copy(template: Path, invites: dict[str, str], workdir: Path, *, residents_text: str | None,
                env: dict[str, str] | None = None, db_dir: Path | None = None):
    path = (db_dir or workdir) / "study.sqlite"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    db = open_database(url)
    if residents_text is not None:
        finish_residents(db, invites, residents_text)
    server = ServerProcess(url, workdir, env=env)
    try:
        server.start()
    except BaseException:
        server.stop()  # a server that did not come up in time is still a process of ours
        db.dispose()
        raise
    spent = {"res1", "res2"} if residents_text is not None else set()
    return ServedStudy(db, url, path, dict(invites), server, spent)


@pytest.fixture(scope="module")
def served_study(demo_template, tmp_path_factory):  # noqa: F811
    """One live server per module on the demo study whose residents wrote markup-laden reports (read-mostly tests)."""
    template, invites = demo_template
    study = _serve_copy(template, invites, tmp_path_factory.mktemp("served"), residents_text=HOSTILE_REPORT)
    yield study
    study.server.stop()
    study.db.dispose()


@pytest.fixture
def killable_study(demo_template, tmp_path):  # noqa: F811
    """A live server of its own on a fresh copy of the demo study, for a test that kills and restarts it."""
    template, invites = demo_template
    study = _serve_copy(template, invites, tmp_path, residents_text=None)
    yield study
    study.server.stop()
    study.db.dispose()


@pytest.fixture
def study_server(demo_template, tmp_path):  # noqa: F811
    """``study_server(env=None, db_dir=None)``: a live server of its own on a fresh copy of the demo study, with
    the given settings (environment) and the database file in ``db_dir`` (a small file system, say); every
    server started is stopped at the end of the test."""
    template, invites = demo_template
    started: list[ServedStudy] = []

    def start(*, env: dict[str, str] | None = None, db_dir: Path | None = None) -> ServedStudy:
        workdir = tmp_path / f"server-{len(started)}"
        workdir.mkdir()
        study = _serve_copy(template, invites, workdir, residents_text=None, env=env, db_dir=db_dir)
        started.append(study)
        return study

    yield start
    for study in started:
        study.server.stop()
        study.db.dispose()


@pytest.fixture
def browser(chromium):
    """A headless Chromium for one test (sync Playwright)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()




def open_case(page, base: str, case_ref: str, timeout_ms: int = 30_000) -> None:
    """Open a case by its address, press Start if the instructions come first, wait for the clock to start."""
    page.goto(f"{base}/?case={case_ref}")
    start = page.get_by_role("button", name="Start")
    viewer = page.locator(f".rs-viewer[data-case='{case_ref}']")
    start.or_(viewer).first.wait_for(timeout=timeout_ms)
    if start.count():
        start.click()
    wait_clock(page, case_ref, timeout_ms)


def wait_clock(page, case_ref: str, timeout_ms: int = 30_000) -> None:
    page.wait_for_selector(f".rs-viewer[data-case='{case_ref}'][data-clock='started']", timeout=timeout_ms)
