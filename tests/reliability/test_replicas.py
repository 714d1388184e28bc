"""Two `readerstudy serve` replicas on one PostgreSQL behind nginx (Debian's package), as docs/deployment.md says.

A reader signs in through the proxy and works on one replica; that replica is SIGKILLed mid-case; the reader goes
on through the proxy on the other (same database, same cookie secret from the database): signed in, text and clock
intact, the submission stored once, then the next case read to the end there.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from study_app.services import auth, reading
from study_app.services.actors import reader_actor
from study_app.services.database import open_database
from study_app.store.models import Reader, Response
from tests.browser_support import free_port, sign_in, stop_process, wait_saved
from tests.case_refs import assignment_of
from tests.reliability.conftest import ServerProcess, open_case
from tests.reliability.test_server_crash import ACKNOWLEDGED



CONFIG = Path(__file__).resolve().parents[2] / "docs" / "nginx" / "replicas.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def start_nginx(prefix: Path, proxy_port: int, ports: tuple[int, int]) -> subprocess.Popen:
    for folder in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / folder).mkdir(parents=True, exist_ok=True)
    conf = (CONFIG.read_text().replace("@PREFIX@", str(prefix)).replace("@PROXY_PORT@", str(proxy_port))
            .replace("@REPLICA_A@", str(ports[0])).replace("@REPLICA_B@", str(ports[1])))
    (prefix / "nginx.conf").write_text(conf)
    process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx did not start: {process.stderr.read()}")
        try:
            httpx.get(f"http://127.0.0.1:{proxy_port}/ready", timeout=1.0)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    stop_process(process)
    raise RuntimeError("nginx did not answer")


@pytest.fixture
def replicated_study(postgres_server, demo_cohort_dir, tmp_path):
    if not Path(NGINX).is_file():
        pytest.skip("nginx is not installed (.ci/run installs Debian's nginx)")
    from study_app.demo import build_demo_study

    url = postgres_server.create_database()
    db = open_database(url)
    shutil.copytree(demo_cohort_dir, tmp_path / "cohort")
    invites = {i.reader_key: i.token for i in build_demo_study(db, cohort_dir=tmp_path / "cohort").invites}
    proxy_port = free_port()
    settings = {"READERSTUDY_PUBLIC_ORIGIN": f"http://127.0.0.1:{proxy_port}",
                "READERSTUDY_TRUSTED_PROXIES": "127.0.0.1"}
    replicas = []
    for name in ("a", "b"):
        workdir = tmp_path / f"replica-{name}"
        workdir.mkdir()
        replicas.append(ServerProcess(url, workdir, env=settings))
    nginx = None
    try:
        for replica in replicas:
            replica.start()
        nginx = start_nginx(tmp_path / "nginx", proxy_port, (replicas[0].port, replicas[1].port))
        yield db, invites, replicas, f"http://127.0.0.1:{proxy_port}"
    finally:  # every process stopped on every path
        if nginx is not None:
            stop_process(nginx)
        for replica in replicas:
            replica.stop()
        db.dispose()


def served_by(base: str, cookie: str) -> int:
    """The port of the replica the proxy sends this reader to (nginx's X-Served-By)."""
    response = httpx.get(f"{base}/ready", cookies={auth.SESSION_COOKIE: cookie}, timeout=10)
    return int(response.headers["x-served-by"].rsplit(":", 1)[1])


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.postgres
def test_a_replica_killed_mid_case_loses_nothing(replicated_study, browser):
    db, invites, replicas, base = replicated_study
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    sign_in(page, base, invites["res1"])
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == auth.SESSION_COOKIE)
    actor = auth.actor_for_session(db, cookie)
    assert actor is not None and actor.name == "res1"
    first, second = [i.case_ref for i in reading.worklist(db, actor).items if i.status == "ready"][:2]
    open_case(page, base, first)
    typed = "Typed on the replica that dies: small right effusion."
    page.locator("textarea.rs-text").fill(typed)
    wait_saved(page, timeout_ms=20_000)
    with db.read() as session:
        shown_at = assignment_of(session, first).first_shown_at
    doomed = next(r for r in replicas if r.port == served_by(base, cookie))
    survivor = next(r for r in replicas if r is not doomed)

    doomed.kill()
    page.locator("button.rs-submit").click()  # the submit goes through nginx to the survivor
    page.get_by_text(ACKNOWLEDGED).first.wait_for(timeout=60_000)
    assert served_by(base, cookie) == survivor.port
    # The page itself reconnects to the survivor and goes on: questions (or the next case) without a reload.
    moved_on = page.locator(f".rs-viewer:not([data-case='{first}'])").or_(page.get_by_role("button", name="Start"))
    page.get_by_text("Submitted; the clock has stopped").or_(moved_on).first.wait_for(timeout=60_000)
    with db.read() as session:
        row = assignment_of(session, first)
        responses = session.scalars(select(Response).where(Response.assignment_id == row.id)).all()
    assert [r.final_text for r in responses] == [typed], "stored once, the text as typed"
    assert row.first_shown_at == shown_at, "the clock did not restart on the other replica"

    # The reader finishes that case and reads the next one to the end, on the survivor.
    view = reading.case_view(db, actor, first)
    if view.status == "submitted":
        for question in view.questions:
            page.get_by_role("radiogroup", name=question.label).get_by_text(question.options[0]["label"],
                                                                            exact=True).click()
        page.get_by_role("button", name="Save and next").click()
        moved_on.first.wait_for(timeout=60_000)
    open_case(page, base, second)
    page.locator("textarea.rs-text").fill("Read entirely on the survivor.")  # waits until the editor is editable
    page.locator("button.rs-submit").click()
    page.get_by_text(ACKNOWLEDGED).first.wait_for(timeout=60_000)  # the editor's word, or the page already moved on
    with db.read() as session:
        reader_id = session.scalars(select(Reader.id).where(Reader.reader_key == "res1")).one()
    done = reading.worklist(db, reader_actor(reader_id, "res1"))
    assert {i.case_ref: i.status for i in done.items}[second] in ("submitted", "completed")
    page.close()


def test_the_deployment_guide_shows_the_configuration_the_test_runs():
    guide = (CONFIG.parents[1] / "deployment.md").read_text()
    assert CONFIG.read_text().rstrip() in guide
