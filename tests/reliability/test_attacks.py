"""The attacks of issue 13 against the live server on loopback, with real HTTP and websocket clients (and Chromium
where a browser is the attacker): each must fail against a default `readerstudy serve`."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psutil
import pytest
from sqlalchemy import select
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from study_app.services import auth, throttle
from study_app.services.actors import SYSTEM
from study_app.store.models import Event, SignInThrottle, WebSession
from study_app.web.guard import SECURITY_HEADERS
from tests.browser_support import free_port, sign_in

PASSWORD = "a long coordinator password"
UPLOAD_MB = 100


def own(study) -> dict[str, str]:
    """What the study's own page sends with a state change: its origin."""
    return {"Origin": study.base}


def coordinator_cookie(study, name: str = "guard") -> str:
    with study.db.read() as session:
        from study_app.store.models import Coordinator

        exists = session.scalars(select(Coordinator).where(Coordinator.username == name)).first() is not None
    if not exists:
        auth.create_coordinator(study.db, SYSTEM, name, PASSWORD)
    token, _ = auth.coordinator_sign_in(study.db, name, PASSWORD, address="setup")
    return token


@contextmanager
def streamlit_session(study, cookie: str | None = None):
    """A websocket session as the browser opens it (own origin): the open socket and its session id, for the block."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    headers = {"Cookie": f"{auth.SESSION_COOKIE}={cookie}"} if cookie else {}
    with ws_connect(study.base.replace("http", "ws") + "/_stcore/stream", origin=study.base,
                    subprotocols=["streamlit"], additional_headers=headers, open_timeout=10) as ws:
        rerun = BackMsg()
        rerun.rerun_script.query_string = ""
        ws.send(rerun.SerializeToString())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = ForwardMsg()
            message.ParseFromString(ws.recv(timeout=30))
            if message.WhichOneof("type") == "new_session":
                yield ws, message.new_session.initialize.session_id
                return
        raise AssertionError("no new_session message from the server")


def session_alive(study, cookie: str) -> bool:
    return auth.actor_for_session(study.db, cookie) is not None


# --- cross-site requests -------------------------------------------------------------------------------------

FOREIGN = [{"Origin": "http://evil.example"}, {"Origin": "http://127.0.0.1:1"}, {"Origin": "http://localhost:9"},
           {"Origin": "null"}, {"Referer": "http://evil.example/page.html"}, {}]


def test_a_foreign_page_cannot_sign_a_browser_in_login_csrf(served_study):
    study = served_study
    token = study.invites["att1"]
    with httpx.Client(base_url=study.base, timeout=30) as client:
        for headers in FOREIGN:
            response = client.post("/signin", data={"token": token, "replace": "1"}, headers=headers)
            assert response.status_code == 403 and auth.SESSION_COOKIE not in response.cookies, headers
    assert auth.invite_holder(study.db, token) == "att1", "the attacker's link is not spent"


def test_a_foreign_page_cannot_sign_a_reader_out(served_study):
    study = served_study
    cookie = study.session_token("att1")
    jar = {auth.SESSION_COOKIE: cookie}
    with httpx.Client(base_url=study.base, cookies=jar, timeout=30) as client:
        # A top-level navigation from another site (what an <a href> or location= does): only a question.
        asked = client.get("/signout", headers={"Referer": "http://evil.example/"})
        assert asked.status_code == 200 and "Sign out?" in asked.text and "set-cookie" not in asked.headers
        for headers in FOREIGN:
            assert client.post("/signout", headers=headers).status_code == 403, headers
        assert session_alive(study, cookie)
        for path in ("/console/signin", "/api/reading/1/autosave", "/console/upload/x", "/a-route-added-later"):
            assert client.post(path, headers={"Origin": "http://evil.example"}).status_code == 403, path


def test_the_websocket_and_every_stcore_route_accept_only_the_public_origin(served_study):
    study = served_study
    ws_url = study.base.replace("http", "ws") + "/_stcore/stream"
    port = study.server.port
    for origin in (f"http://localhost:{port + 1}", f"http://127.0.0.1:{port + 1}", "http://evil.example",
                   f"https://127.0.0.1:{port}", None):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(ws_url, origin=origin, subprotocols=["streamlit"], open_timeout=10).close()
        assert refused.value.response.status_code == 403, origin
    with streamlit_session(study) as (_, session_id):  # the study's own page: accepted
        assert session_id
    with httpx.Client(base_url=study.base, timeout=30) as client:
        for path in ("/_stcore/health", "/_stcore/host-config", "/_stcore/metrics"):
            assert client.get(path, headers={"Origin": f"http://localhost:{port + 1}"}).status_code == 403, path
        assert client.get("/_stcore/host-config", headers=own(study)).status_code == 200
        # DNS rebinding: a name of the attacker's that resolves to us is not a name of ours.
        assert client.get("/", headers={"Host": f"rebind.evil.example:{port}"}).status_code == 403


def test_every_response_carries_the_security_headers(served_study):
    study = served_study
    cookie = study.session_token("att2")
    case = study.items(study.actor("att2"), status="ready")[0].case_ref
    image = 0  # the first image of the case (images are named by their place in it)
    with httpx.Client(base_url=study.base, cookies={auth.SESSION_COOKIE: cookie}, timeout=30) as client:
        index = client.get("/")
        script = index.text.split('src="./', 1)[1].split('"', 1)[0]
        for response in (index, client.get(f"/{script}"), client.get("/signin?token=x"), client.get("/ready"),
                         client.get("/_stcore/health"), client.get(f"/api/image/{case}/{image}"),
                         client.get("/no/such/page.txt"), client.post("/signout")):
            for name, value in SECURITY_HEADERS.items():
                if name == "referrer-policy" and response.request.url.path in ("/signin",):
                    assert response.headers[name] == "same-origin"  # a form's own page: its POST keeps its origin
                    continue
                assert response.headers.get(name) == value, (response.request.url.path, name)


def test_huge_ids_are_not_found(served_study):
    study = served_study
    cookie = study.session_token("att2")
    huge = "9" * 40
    with httpx.Client(base_url=study.base, cookies={auth.SESSION_COOKIE: cookie}, timeout=30) as client:
        own_case = study.items(study.actor("att2"), status="ready")[0].case_ref
        for path in (f"/api/image/{huge}/0", f"/api/image/{own_case}/{huge}", f"/api/image/{own_case}/{2**63}",
                     f"/api/image/{'x' * 5000}/0"):
            assert client.get(path).status_code == 404, path
        for path in (f"/api/reading/{huge}/autosave", f"/api/reading/{2**64}/shown"):
            response = client.post(path, json={"text": "x"}, headers={**own(study), "X-Readerstudy-Client": "1"})
            assert response.status_code == 404, path


# --- uploads ---------------------------------------------------------------------------------------------------


def raw_upload(study, path: str, declared: int, cookies: dict[str, str], headers: dict[str, str]) -> int:
    """PUT with a declared body of ``declared`` bytes, sent as fast as the server reads; the status it answers."""
    host, port = "127.0.0.1", study.server.port
    lines = [f"PUT {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {declared}",
             "Content-Type: application/octet-stream", "Connection: close",
             "Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()),
             *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        chunk = b"\0" * 1024**2
        try:
            for _ in range(declared // len(chunk)):
                sock.sendall(chunk)
        except OSError:  # the server answered and closed without reading it: what should happen
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                more = sock.recv(4096)
                if not more:
                    break
                data += more
        except OSError:
            pass
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1") else 0


def test_uploads_need_a_signed_in_coordinator_and_are_bounded_in_memory(served_study):
    study = served_study
    server = psutil.Process(study.server.process.pid)
    reader = study.session_token("att3")
    coordinator = coordinator_cookie(study)
    with streamlit_session(study) as (_, session_id):
        with httpx.Client(base_url=study.base, timeout=30) as client:
            xsrf = client.get("/_stcore/health").cookies["_streamlit_xsrf"]
        url = f"/_stcore/upload_file/{session_id}/file-1"
        for cookie in (None, reader):  # anonymous, then a reader: refused, however valid the session and XSRF
            jar = {"_streamlit_xsrf": xsrf, **({auth.SESSION_COOKIE: cookie} if cookie else {})}
            with httpx.Client(base_url=study.base, cookies=jar, timeout=30) as client:
                response = client.put(url, files={"file": ("a.csv", b"x,y\n")}, headers={**own(study),
                                                                                      "X-Xsrftoken": xsrf})
                assert response.status_code == 403, cookie
        jar = {"_streamlit_xsrf": xsrf, auth.SESSION_COOKIE: coordinator}
        with httpx.Client(base_url=study.base, cookies=jar, timeout=30) as client:  # positive control
            accepted = client.put(url, files={"file": ("a.csv", b"x,y\n")}, headers={**own(study), "X-Xsrftoken": xsrf})
            assert accepted.status_code == 204
        before = server.memory_info().rss
        headers = {**own(study), "X-Xsrftoken": xsrf}
        for n in range(3):  # the attack: 3 x 100 MB, anonymous; then the same from a coordinator
            assert raw_upload(study, f"/_stcore/upload_file/{session_id}/big-{n}", UPLOAD_MB * 1024**2,
                              {"_streamlit_xsrf": xsrf}, headers) in (403, 413)
        assert raw_upload(study, f"/_stcore/upload_file/{session_id}/big", UPLOAD_MB * 1024**2, jar, headers) == 413
        grown = server.memory_info().rss - before
        assert grown < 50 * 1024**2, f"the server kept {grown / 1024**2:.0f} MB"
        # The cohort route: only a coordinator, only from the page (client header), only up to its limit.
        assert raw_upload(study, "/console/upload/x1", 1024, {}, {**own(study), "X-Readerstudy-Client": "1"}) == 403
        assert raw_upload(study, "/console/upload/x1", 1024, {auth.SESSION_COOKIE: coordinator}, own(study)) == 403
        assert raw_upload(study, "/console/upload/x1", 2 * 1024**3, {auth.SESSION_COOKIE: coordinator},
                          {**own(study), "X-Readerstudy-Client": "1"}) == 413


# --- password guessing ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fifty_parallel_wrong_passwords_are_throttled_then_locked_and_the_cli_lifts_it(study_server):
    # Behind a proxy (trusted), so the attacker and the real coordinator have addresses of their own.
    study = study_server(env={"READERSTUDY_TRUSTED_PROXIES": "127.0.0.1"})
    auth.create_coordinator(study.db, SYSTEM, "alice", PASSWORD)
    reader = study.session_token("res1")
    case = study.items(study.actor("res1"), status="ready")[0].case_ref
    from study_app.services import reading

    reading.open_case(study.db, study.actor("res1"), case)
    attacker = {**own(study), "X-Forwarded-For": "203.0.113.9"}
    colleague = {**own(study), "X-Forwarded-For": "198.51.100.4"}

    def attempt(password, headers):
        with httpx.Client(base_url=study.base, timeout=60, follow_redirects=False) as client:
            response = client.post("/console/signin", data={"username": "alice", "password": password},
                                   headers=headers)
            return response.status_code, response.headers.get("retry-after"), response.text

    def reader_reads():
        with httpx.Client(base_url=study.base, cookies={auth.SESSION_COOKIE: reader}, timeout=60) as client:
            return client.post(f"/api/reading/{case}/shown", headers={**own(study), "X-Readerstudy-Client": "1"}
                               ).status_code

    with ThreadPoolExecutor(60) as pool:
        readers = [pool.submit(reader_reads) for _ in range(5)]
        outcomes = list(pool.map(lambda n: attempt(f"guess {n}", attacker), range(50)))
        assert [r.result() for r in readers] == [200] * 5, "readers are served during the attack"
    statuses = [status for status, _, _ in outcomes]
    # Checked by argon2 and wrong: the free failures, plus one more per backoff window the burst outlasted.
    checked = statuses.count(403)
    assert throttle.FREE_FAILURES <= checked <= throttle.FREE_FAILURES + 2, statuses
    # Everything else was refused before argon2 ran: the backoff (429), or the bound on sign-ins in flight (503).
    assert statuses.count(429) + statuses.count(503) == 50 - checked, statuses
    assert all(int(wait) >= 1 for status, wait, _ in outcomes if status == 429)
    # Right after a counted failure a wait runs (the burst may have outlasted the last one): the right password
    # waits too, from the attacker's address and from a colleague's.
    for _ in range(10):
        status, retry_after, _page = attempt("one more guess", attacker)
        if status == 403:
            break
        time.sleep(int(retry_after or 1))
    assert status == 403
    for headers in (attacker, colleague):
        assert attempt(PASSWORD, headers)[0] == 429, "while the account's wait runs even the right password waits"
    # Time passes (the waits are aged in the database) and the guessing goes on until the account locks. The waits
    # the server remembers are real time: a guess inside one is refused uncounted, and tried again after it.
    for _ in range(4 * throttle.LOCK_AFTER["user"]):
        with study.db.transaction() as session:
            for row in session.scalars(select(SignInThrottle)):
                if row.last_failure_at is not None:
                    row.last_failure_at -= throttle.FORGET_AFTER / 2
        status, retry_after, page = attempt("late guess", attacker)
        if "locked after too many failed attempts" in page:
            break
        if status == 429:
            time.sleep(int(retry_after))  # the server said how long; waiting it out is the attacker's only way
    status, _, page = attempt(PASSWORD, colleague)
    assert status == 403 and "locked after too many failed attempts" in page
    with study.db.read() as session:
        locks = session.scalars(select(Event).where(Event.kind == "sign_in_locked")).all()
    assert [(e.payload["kind"], e.payload["key"]) for e in locks] == [("user", "alice")]
    from click.testing import CliRunner

    from study_app.cli import main

    lifted = CliRunner().invoke(main, ["coordinator", "unlock", "alice", "--db", study.url])
    assert lifted.exit_code == 0, lifted.output
    assert attempt(PASSWORD, colleague)[0] == 303, "unlocked: the coordinator signs in again"


def test_client_addresses_come_from_trusted_proxies_only(study_server):
    study = study_server(env={"READERSTUDY_TRUSTED_PROXIES": "127.0.0.1"})
    with httpx.Client(base_url=study.base, timeout=60) as client:
        for n in range(3):
            client.post("/console/signin", data={"username": "bob", "password": "x" * 12},
                        headers={**own(study), "X-Forwarded-For": f"192.0.2.{n}"})
    with study.db.read() as session:
        addresses = set(session.scalars(select(SignInThrottle.key).where(SignInThrottle.kind == "address")))
    assert addresses == {"192.0.2.0", "192.0.2.1", "192.0.2.2"}
    untrusting = study_server()  # the default: no proxy is believed, the connection's own address counts
    with httpx.Client(base_url=untrusting.base, timeout=60) as client:
        client.post("/console/signin", data={"username": "bob", "password": "x" * 12},
                    headers={**own(untrusting), "X-Forwarded-For": "192.0.2.77"})
    with untrusting.db.read() as session:
        assert set(session.scalars(select(SignInThrottle.key).where(SignInThrottle.kind == "address"))) == {"127.0.0.1"}


def test_cookies_are_secure_when_readers_use_https(study_server):
    study = study_server(env={"READERSTUDY_PUBLIC_ORIGIN": "https://study.example.org"})
    with httpx.Client(base_url=study.base, timeout=30, follow_redirects=False,
                      headers={"Origin": "https://study.example.org", "Host": "study.example.org"}) as client:
        response = client.post("/signin", data={"token": study.invites["res2"]})
        assert response.status_code == 303
        assert "secure" in response.headers["set-cookie"].lower()
        # The loopback address itself is no longer an origin of the study (it was not named).
        assert client.post("/signin", data={"token": "x"}, headers={"Origin": study.base}).status_code == 403


# --- the browser as the attacker ------------------------------------------------------------------------------


class ForeignSite:
    """Another site (here: another port on loopback, the issue's "same-site" origin) serving one page."""

    def __init__(self, html: str):
        page = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def foreign_site():
    sites = []

    def make(html: str) -> ForeignSite:
        sites.append(ForeignSite(html))
        return sites[-1]

    yield make
    for site in sites:
        site.close()


@pytest.mark.browser
def test_a_foreign_page_in_the_readers_browser_changes_nothing(study_server, browser, foreign_site):
    study = study_server()
    victim = browser.new_page(viewport={"width": 1200, "height": 800})
    sign_in(victim, study.base, study.invites["res1"])
    victim.get_by_text("cases done").first.wait_for(timeout=30_000)
    cookie = next(c["value"] for c in victim.context.cookies() if c["name"] == auth.SESSION_COOKIE)
    attacker_token = study.invites["res2"]
    # 1. Login CSRF: the page auto-submits the attacker's invite into the victim's browser.
    login = foreign_site(f"""<form id=f method=post action="{study.base}/signin">
        <input name=token value="{attacker_token}"><input name=replace value=1></form>
        <script>document.getElementById('f').submit()</script>""")
    victim.goto(login.url)
    victim.wait_for_url(f"{study.base}/signin")
    assert "cross-site request refused" in victim.content()
    # 2. Sign-out CSRF: a navigation to /signout, and a form posting to it.
    logout = foreign_site(f"""<script>location = "{study.base}/signout"</script>""")
    victim.goto(logout.url)
    victim.wait_for_url(f"{study.base}/signout")
    victim.get_by_role("heading", name="Sign out?").wait_for()
    post_logout = foreign_site(f"""<form id=f method=post action="{study.base}/signout"></form>
        <script>document.getElementById('f').submit()</script>""")
    victim.goto(post_logout.url)
    victim.wait_for_url(f"{study.base}/signout")
    assert "cross-site request refused" in victim.content()
    # 3. The websocket from the other origin, and framing the app.
    hijack = foreign_site(f"""<iframe id=frame src="{study.base}/"></iframe><script>
        window.result = "pending";
        const ws = new WebSocket("{study.base.replace('http', 'ws')}/_stcore/stream", ["streamlit"]);
        ws.onopen = () => window.result = "open";
        ws.onerror = () => window.result = "refused";
        </script>""")
    victim.goto(hijack.url)
    victim.wait_for_function("() => window.result !== 'pending'", timeout=15_000)
    assert victim.evaluate("() => window.result") == "refused"
    framed = victim.frame_locator("#frame")
    assert framed.locator("text=cases done").count() == 0
    # Nothing changed: the victim is still themselves, the attacker's link is unspent.
    assert auth.actor_for_session(study.db, cookie).name == "res1"
    assert auth.invite_holder(study.db, attacker_token) == "res2"
    with study.db.read() as session:
        assert session.scalars(select(WebSession).where(WebSession.revoked_at.is_not(None))).all() == []
    victim.goto(study.base + "/")
    victim.get_by_text("cases done").first.wait_for(timeout=30_000)


@pytest.mark.browser
def test_signing_in_with_another_link_in_the_same_browser_asks_first(study_server, browser):
    study = study_server()
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    sign_in(page, study.base, study.invites["res1"])
    page.get_by_text("cases done").first.wait_for(timeout=30_000)
    page.goto(f"{study.base}/signin?token={study.invites['att1']}")
    notice = page.locator("#swap").inner_text()
    assert "signed in as reader res1" in notice and "signs in reader att1" in notice
    page.get_by_role("link", name="Keep reader res1 signed in").click()
    page.get_by_text("cases done").first.wait_for(timeout=30_000)
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == auth.SESSION_COOKIE)
    assert auth.actor_for_session(study.db, cookie).name == "res1"
    assert auth.invite_holder(study.db, study.invites["att1"]) == "att1"
    page.goto(f"{study.base}/signin?token={study.invites['att1']}")
    page.get_by_role("button", name="Sign out reader res1 and sign in").click()
    page.get_by_text("cases done").first.wait_for(timeout=30_000)
    swapped = next(c["value"] for c in page.context.cookies() if c["name"] == auth.SESSION_COOKIE)
    assert auth.actor_for_session(study.db, swapped).name == "att1"
    assert auth.actor_for_session(study.db, cookie) is None


@pytest.mark.browser
def test_sign_out_is_a_confirmed_post(study_server, browser):
    study = study_server()
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    sign_in(page, study.base, study.invites["res1"])
    page.get_by_text("cases done").first.wait_for(timeout=30_000)
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == auth.SESSION_COOKIE)
    page.goto(f"{study.base}/signout")
    assert auth.actor_for_session(study.db, cookie) is not None
    page.click("#signout")
    page.get_by_role("heading", name="Signed out").wait_for()
    assert auth.actor_for_session(study.db, cookie) is None
