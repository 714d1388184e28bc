"""The rules every request meets before any route, in one ASGI middleware: only this study's own pages may
change state or open the websocket, bodies are bounded, uploads need a signed-in coordinator, and every
response carries the security headers.

Routes added later are covered by construction: the middleware wraps Streamlit's routes and ours alike.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

from study_app.services import auth

PUBLIC_ORIGIN_ENV = "READERSTUDY_PUBLIC_ORIGIN"
# Where the middleware leaves the guard for the routes (the session cookie's Secure flag reads it).
GUARD_SCOPE_KEY = "readerstudy.guard"
TRUSTED_PROXIES_ENV = "READERSTUDY_TRUSTED_PROXIES"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Every body the app takes is small (a sign-in form, an autosave of at most 256 kB), except the cohort upload,
# which has its own route and limit. A bigger declared body is refused before a byte of it is read.
MAX_BODY_BYTES = 1024**2
# Streamlit's own uploader carries only design files and reader lists (server.maxUploadSize, MB) plus framing.
STREAMLIT_UPLOAD_PATH = "/_stcore/upload_file/"
# Probes a proxy or an orchestrator sends with whatever Host it likes; they reveal nothing.
PROBE_PATHS = frozenset({"/ready", "/_stcore/health"})



def _index_inline_script_hashes() -> list[str]:
    """CSP hashes of the inline scripts in Streamlit's own index.html (one line, ``window.prerenderReady``),
    computed from the installed file so that an upgrade cannot silently break or widen the policy."""
    import base64
    import hashlib
    import re
    from importlib.util import find_spec

    spec = find_spec("streamlit")
    if spec is None or not spec.submodule_search_locations:
        return []
    index = Path(next(iter(spec.submodule_search_locations))) / "static" / "index.html"
    try:
        page = index.read_text(encoding="utf-8")
    except OSError:
        return []
    return [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
            for body in re.findall(r"<script>(.*?)</script>", page, re.S)]


# Verified in Chromium (tests/reliability/test_csp.py): Streamlit's pages need inline styles (emotion), their own
# scripts, websockets and fonts; components v2 (the viewer, the editor) import their script from a blob: URL the
# page itself made (markup alone cannot mint one); Streamlit's protobuf runtime compiles a small WebAssembly module
# ('wasm-unsafe-eval' allows that and nothing of JavaScript's eval); images come from the app or data:/blob: URLs.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    " ".join(["script-src 'self' blob: 'wasm-unsafe-eval'", *_index_inline_script_hashes()]),
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "frame-src 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'self'",
    "object-src 'none'",
])
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
_SECURITY_HEADER_BYTES = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]  # added to every answer
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def normalise_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case without the scheme's default port; None when not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def served_origins(host: str, port: int) -> list[str]:
    """The origins a browser uses for the bound address itself: loopback under each of its names."""
    if host in ("0.0.0.0", "::", ""):
        return []
    if _is_loopback(host):
        return [f"http://{name}:{port}" for name in LOOPBACK_NAMES]
    shown = f"[{host}]" if ":" in host else host
    return [f"http://{shown}:{port}"]


def parse_origins(text: str) -> list[str]:
    """Origins from a comma- or space-separated setting; ValueError naming the first one that is not an origin."""
    found = []
    for item in text.replace(",", " ").split():
        origin = normalise_origin(item)
        if origin is None or urlsplit(item).path not in ("", "/"):
            raise ValueError(f"'{item}' is not an origin (scheme://host[:port], no path), e.g. https://study.example.org")
        found.append(origin)
    return found


@dataclass(frozen=True)
class Guard:
    """What the middleware allows: the public origins (the address readers type) and the Host names that
    may address this server (those origins', plus the bound address a proxy connects to)."""

    origins: frozenset[str]
    hosts: frozenset[str]

    @classmethod
    def for_serving(cls, host: str, port: int, public_origins: list[str] | None = None) -> Guard:
        """The guard of ``readerstudy serve --host H --port P [--public-origin ...]``.

        Raises
        ------
        ValueError
            Bound to every interface (0.0.0.0) with no public origin: which address readers use is unknown.
        """
        served = served_origins(host, port)
        origins = [o for o in (normalise_origin(x) for x in (public_origins or [])) if o] or served
        if not origins:
            raise ValueError(f"bound to {host or 'every address'}: name the address readers use with "
                             f"--public-origin (or ${PUBLIC_ORIGIN_ENV}), e.g. https://study.example.org")
        return cls(frozenset(origins), frozenset(urlsplit(o).netloc for o in (*origins, *served)))

    def allows_origin(self, value: str | None) -> bool:
        return value is not None and normalise_origin(value) in self.origins

    def allows_host(self, host: str | None) -> bool:
        if not host:
            return False
        return any(o is not None and urlsplit(o).netloc in self.hosts
                   for o in (normalise_origin(f"http://{host}"), normalise_origin(f"https://{host}")))

    @property
    def secure_cookies(self) -> bool:
        """Readers reach the app over HTTPS (a TLS proxy in front): the session cookie is sent only over TLS."""
        return any(o.startswith("https://") for o in self.origins)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def origin_refusal(guard: Guard, scope) -> str | None:
    """Why a request must be refused as cross-site, or None. The one rule for every route, ours and Streamlit's.

    - A request carrying an Origin that is not one of the study's public origins is refused, whatever its
      method: a foreign page may not use the websocket, ``/_stcore/*`` or any route with the reader's cookie.
    - A state-changing request (any method but GET/HEAD/OPTIONS) and every websocket must show where it comes
      from: its Origin, or failing that its Referer, must be the study's. Browsers send one or the other;
      ``Origin: null`` (a sandboxed frame, a page with no-referrer) proves nothing and is refused.
    """
    origin = _header(scope, b"origin")
    if origin is not None and origin != "null":
        return None if guard.allows_origin(origin) else f"requests from {origin[:80]} are refused"
    unsafe = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
    if not unsafe:
        return None
    referer = _header(scope, b"referer")
    if referer:
        return None if guard.allows_origin(referer) else "requests from other sites are refused"
    return "this request must come from the study's own pages (no Origin or Referer was sent)"


def client_address(scope) -> str:
    """The browser's address: uvicorn has already replaced a trusted proxy's address with X-Forwarded-For's."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _cookie(scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"') or None
    return None


# A refused request's small body is read and dropped, so the client gets the answer rather than a reset connection.
DRAIN_BYTES = 64 * 1024


async def _drain(scope, receive) -> None:
    try:
        declared = int(_header(scope, b"content-length") or 0)
    except ValueError:
        return
    if not 0 < declared <= DRAIN_BYTES:
        return
    received = 0
    while received <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        received += len(message.get("body", b""))
        if not message.get("more_body"):
            return


class SecurityMiddleware:
    """ASGI middleware in front of Streamlit and our routes; see the module docstring for the rules."""

    def __init__(self, app, guard: Guard, *, body_limits: dict[str, int] | None = None, database=None,
                 streamlit_upload_bytes: int | None = None, direct: tuple | None = None):
        self.app = app
        self.guard = guard
        # (compiled path pattern, ASGI app): requests whose whole path matches go to that app once the checks
        # here have passed, instead of through Streamlit's own middleware (path patterns, its session cookie,
        # gzip) that a reader's image or beacon has no use for; everything else takes the usual way (P8).
        self.direct_paths, self.direct_app = direct or (None, None)
        # Path prefix -> largest body it takes (the cohort upload route streams its own, larger, bodies).
        self.body_limits = dict(body_limits or {})
        self._database = database
        self.streamlit_upload_bytes = streamlit_upload_bytes

    def database(self):
        if self._database is not None:
            return self._database
        from study_app.web.database import shared_database

        return shared_database()

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path not in PROBE_PATHS and not self.guard.allows_host(_header(scope, b"host")):
            await self._refuse(scope, receive, send, 403, "this server does not answer to that host name")
            return
        refusal = origin_refusal(self.guard, scope)
        if refusal is not None:
            await self._refuse(scope, receive, send, 403, f"cross-site request refused: {refusal}")
            return
        scope[GUARD_SCOPE_KEY] = self.guard
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        problem = self._body_problem(scope, path)
        if problem is not None:
            await self._refuse(scope, receive, send, *problem)
            return
        if STREAMLIT_UPLOAD_PATH in path and scope.get("method") not in SAFE_METHODS:
            if not await self._is_coordinator(scope):
                await self._refuse(scope, receive, send, 403, "only a signed-in coordinator may upload files")
                return
        if self.direct_paths is not None and self.direct_paths.fullmatch(path):
            await self.direct_app(scope, receive, self._with_headers(send))
            return
        await self.app(scope, receive, self._with_headers(send))

    def _body_problem(self, scope, path: str) -> tuple[int, str] | None:
        if scope.get("method") in SAFE_METHODS:
            return None
        if (_header(scope, b"transfer-encoding") or "").lower().strip() not in ("", "identity"):
            return 411, "send the request with a Content-Length"
        declared = _header(scope, b"content-length")
        try:
            length = int(declared) if declared is not None else 0
        except ValueError:
            return 400, "bad Content-Length"
        limit = next((n for prefix, n in self.body_limits.items() if path.startswith(prefix)), None)
        if limit is None:
            limit = self._streamlit_upload_limit() if STREAMLIT_UPLOAD_PATH in path else MAX_BODY_BYTES
        if length > limit:
            return 413, f"the request is larger than this route accepts ({limit // 1024} kB)"
        return None

    def _streamlit_upload_limit(self) -> int:
        if self.streamlit_upload_bytes is not None:
            return self.streamlit_upload_bytes
        try:
            from streamlit import config

            megabytes = int(config.get_option("server.maxUploadSize"))
        except Exception:  # no Streamlit config loaded (a bare ASGI test)
            megabytes = 5
        return megabytes * 1024**2 + 64 * 1024  # multipart framing

    async def _is_coordinator(self, scope) -> bool:
        token = _cookie(scope, auth.SESSION_COOKIE)
        if not token:
            return False
        try:
            actor = await run_in_threadpool(auth.actor_for_session, self.database(), token)
        except Exception:  # a database fault refuses the upload; the page says why on its next run
            return False
        return actor is not None and actor.is_coordinator

    def _with_headers(self, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {key.lower() for key, _ in headers}
                # A route that set its own (a sign-in form's Referrer-Policy, say) keeps it.
                headers += [(k, v) for k, v in _SECURITY_HEADER_BYTES if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        return send_with_headers

    async def _refuse(self, scope, receive, send, status: int, message: str) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with HTTP 403.
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        await _drain(scope, receive)
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store"), (b"connection", b"close")]
        headers += _SECURITY_HEADER_BYTES
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
