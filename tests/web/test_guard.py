"""The security middleware in process: the origin rule for every route, host names, body bounds, uploads, headers."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from study_app.serve import parse_trusted_proxies, security_settings
from study_app.web.guard import (
    CONTENT_SECURITY_POLICY, SECURITY_HEADERS, Guard, SecurityMiddleware, normalise_origin, parse_origins,
    served_origins,
)

OWN = "http://testserver"
GUARD = Guard.for_serving("127.0.0.1", 8501, [OWN])


async def ok(request):
    return PlainTextResponse("ok")


async def echo_length(request):
    return PlainTextResponse(str(len(await request.body())))


async def stream(websocket):
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


@pytest.fixture
def client(monkeypatch):
    from study_app.services import auth
    from study_app.services.actors import Actor

    monkeypatch.setattr(auth, "actor_for_session", lambda db, token: (
        Actor(kind="coordinator", name="c", coordinator_id=1) if token == "coord"
        else Actor(kind="reader", name="r", reader_id=1) if token == "reader" else None))
    app = Starlette(routes=[
        Route("/", ok), Route("/new-route", echo_length, methods=["POST", "PUT", "DELETE"]),
        Route("/_stcore/host-config", ok), Route("/_stcore/upload_file/{sid}/{fid}", echo_length, methods=["PUT"]),
        Route("/console/upload/{study}", echo_length, methods=["PUT"]), Route("/ready", ok),
        WebSocketRoute("/_stcore/stream", stream),
    ], middleware=[Middleware(SecurityMiddleware, guard=GUARD, body_limits={"/console/upload/": 10_000},
                              database=object(), streamlit_upload_bytes=2_000)])
    with TestClient(app, base_url=OWN) as test_client:
        yield test_client


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "http://testserver:8080"},          # same host, another port: another origin
    {"Origin": "https://testserver"},               # another scheme
    {"Origin": "null"},                             # a sandboxed frame or a no-referrer page
    {"Referer": "http://evil.example/page"},        # no Origin, a foreign Referer
    {},                                             # neither: not from a page of ours
], ids=["foreign", "other-port", "other-scheme", "null", "foreign-referer", "none"])
def test_a_state_change_needs_the_studys_own_origin_on_any_route(client, headers):
    for method in ("post", "put", "delete"):
        response = getattr(client, method)("/new-route", headers=headers)
        assert response.status_code == 403, (method, headers)
        assert "cross-site request refused" in response.json()["error"]


@pytest.mark.parametrize("headers", [{"Origin": OWN}, {"Origin": "HTTP://TESTSERVER:80"},
                                     {"Referer": f"{OWN}/signin?token=x"}], ids=["origin", "default-port", "referer"])
def test_the_studys_own_pages_may_change_state(client, headers):
    assert client.post("/new-route", content=b"abc", headers=headers).text == "3"


def test_a_read_is_refused_only_when_a_foreign_page_asks(client):
    assert client.get("/").status_code == 200  # a navigation or an <img> sends no Origin
    assert client.get("/", headers={"Origin": OWN}).status_code == 200
    assert client.get("/_stcore/host-config", headers={"Origin": "http://localhost:9999"}).status_code == 403
    assert client.get("/", headers={"Origin": "http://evil.example"}).status_code == 403


def test_the_websocket_opens_only_for_the_studys_origin(client):
    with client.websocket_connect("/_stcore/stream", headers={"Origin": OWN}) as ws:
        assert ws.receive_text() == "hello"
    for headers in ({"Origin": "http://localhost:9999"}, {"Origin": "http://evil.example"}, {}):
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/_stcore/stream",
                                                                                  headers=headers):
            pass
        assert refused.value.code == 1008, headers


def test_a_host_name_that_is_not_ours_is_refused_except_by_the_probes(client):
    assert client.get("/", headers={"Host": "rebound.evil.example"}).status_code == 403
    assert client.get("/ready", headers={"Host": "10.0.0.7:8501"}).status_code == 200
    assert client.get("/", headers={"Host": "127.0.0.1:8501"}).status_code == 200  # the bound address (a proxy)


def test_bodies_are_bounded_before_they_are_read(client):
    own = {"Origin": OWN}
    assert client.post("/new-route", content=b"x" * 100, headers=own).status_code == 200
    big = client.post("/new-route", content=b"x" * (1024**2 + 1), headers=own)
    assert big.status_code == 413
    assert client.put("/console/upload/s1", content=b"x" * 10_000, headers=own).status_code == 200
    assert client.put("/console/upload/s1", content=b"x" * 10_001, headers=own).status_code == 413
    chunked = client.post("/new-route", content=iter([b"a", b"b"]), headers=own)
    assert chunked.status_code == 411


def test_streamlits_upload_route_takes_files_from_coordinators_only(client):
    own = {"Origin": OWN}
    url = "/_stcore/upload_file/session/file"
    assert client.put(url, content=b"x", headers=own).status_code == 403  # anonymous
    client.cookies.set("readerstudy_session", "reader")
    assert client.put(url, content=b"x", headers=own).status_code == 403
    client.cookies.set("readerstudy_session", "coord")
    assert client.put(url, content=b"x", headers=own).status_code == 200
    assert client.put(url, content=b"x" * 2_001, headers=own).status_code == 413
    client.cookies.clear()


def test_every_response_carries_the_security_headers(client):
    for response in (client.get("/"), client.get("/missing"), client.post("/new-route"),
                     client.get("/", headers={"Host": "evil.example"})):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.request.url, name)
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    sources = " ".join(policy.values()).split()
    assert not [s for s in sources if "://" in s or s in ("*", "https:", "http:", "'unsafe-eval'")], sources
    assert "'unsafe-inline'" not in policy["script-src"]


def test_a_readers_images_and_beacons_take_the_short_way_only_after_the_same_checks():
    from study_app.web.server import READER_PATHS

    reached = []

    async def short_way(scope, receive, send):
        reached.append(scope["path"])
        await PlainTextResponse("short")(scope, receive, send)

    app = Starlette(routes=[Route("/{rest:path}", ok, methods=["GET", "POST"])], middleware=[
        Middleware(SecurityMiddleware, guard=GUARD, database=object(), direct=(READER_PATHS, short_way))])
    ref = "0a" * 16
    own = {"Origin": OWN}
    with TestClient(app, base_url=OWN) as test_client:
        for method, path in (("GET", f"/api/image/{ref}/0"), ("GET", f"/api/image/{ref}/1/preview"),
                             ("GET", f"/api/reading/{ref}/text"), ("POST", f"/api/reading/{ref}/autosave"),
                             ("POST", f"/api/reading/{ref}/submit"), ("POST", f"/api/reading/{ref}/shown")):
            response = test_client.request(method, path, headers=own)
            assert response.text == "short", path
            assert all(response.headers.get(k) == v for k, v in SECURITY_HEADERS.items()), path
        assert len(reached) == 6
        # The checks in front come first: another site, a foreign host name, a body too large.
        assert test_client.post(f"/api/reading/{ref}/autosave", headers={"Origin": "http://evil.example"}).status_code == 403
        assert test_client.get(f"/api/image/{ref}/0", headers={"Host": "evil.example"}).status_code == 403
        assert test_client.post(f"/api/reading/{ref}/autosave", content=b"x" * (1024**2 + 1), headers=own).status_code == 413
        assert len(reached) == 6
        # Any other shape of address takes the usual way (Streamlit's stack and its path checks).
        for path in (f"/api/image/{ref.upper()}/0", f"/api/reading/{ref}/autosave/more", "/api/reading/x/autosave",
                     f"/api/image/{ref}/0/preview/", f"/api/reading/{ref}/delete"):
            assert test_client.get(path).text == "ok", path
        assert len(reached) == 6


def test_origins_and_proxies_are_parsed_strictly():
    assert normalise_origin("HTTPS://Study.Example.org:443/") == "https://study.example.org"
    assert normalise_origin("http://[::1]:8501") == "http://[::1]:8501"
    assert parse_origins("https://a.example, http://b.example:8080") == ["https://a.example", "http://b.example:8080"]
    for bad in ("study.example.org", "https://a.example/path", "ftp://a.example"):
        with pytest.raises(ValueError, match="is not an origin"):
            parse_origins(bad)
    assert parse_trusted_proxies("10.0.0.5, 10.1.0.0/16 ::1") == ["10.0.0.5", "10.1.0.0/16", "::1"]
    for bad in ("*", "proxy.example"):
        with pytest.raises(ValueError, match="is not an IP address"):
            parse_trusted_proxies(bad)
    assert "http://localhost:8501" in served_origins("127.0.0.1", 8501)


def test_the_public_origin_defaults_to_the_served_address_and_is_required_on_every_interface(monkeypatch):
    monkeypatch.delenv("READERSTUDY_PUBLIC_ORIGIN", raising=False)
    monkeypatch.delenv("STREAMLIT_SERVER_COOKIE_SECRET", raising=False)
    guard, proxies = security_settings("127.0.0.1", 8600)
    assert guard.allows_origin("http://127.0.0.1:8600") and guard.allows_origin("http://localhost:8600")
    assert not guard.allows_origin("http://127.0.0.1:8601") and proxies == [] and not guard.secure_cookies
    with pytest.raises(ValueError, match="--public-origin"):
        security_settings("0.0.0.0", 8600)
    monkeypatch.setenv("READERSTUDY_PUBLIC_ORIGIN", "https://study.example.org")
    guard, _ = security_settings("0.0.0.0", 8600)
    assert guard.origins == {"https://study.example.org"} and guard.secure_cookies
    assert guard.allows_host("study.example.org") and not guard.allows_host("evil.example")
    monkeypatch.setenv("STREAMLIT_SERVER_COOKIE_SECRET", "short")
    with pytest.raises(ValueError, match="at least 32"):
        security_settings("127.0.0.1", 8600)
