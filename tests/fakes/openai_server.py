"""A real loopback HTTP server that imitates vLLM's OpenAI-compatible API with scriptable failures, for tests and benchmarks."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

# One scripted outcome per chat request, consumed in arrival order:
#   "ok", an HTTP status (400, 429, 503, ...), "malformed" (200 with broken JSON),
#   "hang" (sleep hang_s before answering, to trigger client timeouts), "length"
#   (output cut, finish_reason "length"), "drop" (close the connection, no answer).


def default_reply(body: dict) -> str:
    """A CheXOne-like reasoning output derived from the request, so equal requests give equal text; a
    multiple-choice prompt (options ``A. ...`` one per line) is answered with the first option's letter."""
    digest = hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).hexdigest()[:12]
    if re.search(r"^A\. ", json.dumps(body.get("messages")).replace("\\n", "\n"), re.M):
        return f"The opacity projects over the base (trace {digest}).\n\\boxed{{A}}"
    return (
        f"The frontal view shows clear lungs (trace {digest}).\n"
        f"**Final Answer:** \\boxed{{No acute cardiopulmonary process. Ref {digest}.}}"
    )


@dataclass
class Behaviour:
    """How the fake server answers. Every field may be changed while it runs."""

    latency_s: float = 0.0
    script: list = field(default_factory=list)
    fail_when: Callable[[dict], "int | str | None"] | None = None
    reply: Callable[[dict], str] | str = default_reply
    models: list[str] = field(default_factory=lambda: ["StanfordAIMI/CheXOne"])
    version: str | None = "0.11.0-fake"
    healthy_after_s: float = 0.0
    hang_s: float = 30.0
    retry_after: str | None = None
    record_bodies: bool = True
    prompt_tokens: int = 400
    # As `vllm serve --api-key`: every /v1 route then needs "Authorization: Bearer <key>" (/health does not).
    api_key: str | None = None


class FakeServer:
    """State of a running fake server.

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:PORT`` (no ``/v1``).
    requests : list of dict
        Received chat-completion bodies, in arrival order (when ``record_bodies``).
    paths : list of str
        Every request line ``"METHOD /path"``.
    chat_calls : int
        Chat-completion requests received (including failed ones).
    in_flight, max_in_flight : int
        Chat requests being answered now, and the peak seen.
    behaviour : Behaviour
    """

    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self.chat_calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.started_at = time.monotonic()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- bookkeeping (called from handler threads) -------------------------
    def _next_outcome(self, body: dict) -> Any:
        with self._lock:
            self.chat_calls += 1
            if self.behaviour.record_bodies:
                self.requests.append(body)
            scripted = self.behaviour.script.pop(0) if self.behaviour.script else None
        if scripted is not None and scripted != "ok":
            return scripted
        if self.behaviour.fail_when is not None:
            decided = self.behaviour.fail_when(body)
            if decided is not None:
                return decided
        return "ok"

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def reset_counters(self) -> None:
        """Forget recorded requests and peaks (between phases of one test)."""
        with self._lock:
            self.requests.clear()
            self.paths.clear()
            self.chat_calls = 0
            self.max_in_flight = self.in_flight

    # -- lifecycle ---------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> "FakeServer":
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = _LoopbackServer((host, port), Handler)
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


class _LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    # Dozens of clients connect at once; the default listen backlog of 5 resets some of them.
    request_queue_size = 1024

    def handle_error(self, request, client_address) -> None:
        """A client that went away (killed, timed out) is normal here; anything else is still printed."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    # TCP_NODELAY, as uvicorn (vLLM's server) sets it. Without it the body, written after the headers, waits
    # for the client's delayed ACK of the headers: every answer came ~44 ms late on loopback.
    disable_nagle_algorithm = True
    fake: FakeServer

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def _send_json(self, status: int, payload: Any, extra_headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self._send_raw(status, data, extra_headers)

    def _send_raw(self, status: int, data: bytes, extra_headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _refused(self) -> bool:
        """Answer 401 to a /v1 request without the server's API key, as vLLM does; True when refused."""
        key = self.fake.behaviour.api_key
        if key is None or not self.path.startswith("/v1") or self.headers.get("Authorization") == f"Bearer {key}":
            return False
        self._send_json(401, {"error": "Unauthorized"})
        return True

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        fake = self.fake
        with fake._lock:
            fake.paths.append(f"GET {self.path}")
        b = fake.behaviour
        if self._refused():
            return
        if self.path == "/health":
            healthy = time.monotonic() - fake.started_at >= b.healthy_after_s
            self._send_raw(200 if healthy else 503, b"")
        elif self.path == "/version":
            if b.version is None:
                self._send_json(404, {"detail": "Not Found"})
            else:
                self._send_json(200, {"version": b.version})
        elif self.path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "vllm", "root": m} for m in b.models]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:  # noqa: N802
        fake = self.fake
        with fake._lock:
            fake.paths.append(f"POST {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self._refused():
            return
        if self.path != "/v1/chat/completions":
            self._send_json(404, {"detail": "Not Found"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send_json(400, {"object": "error", "message": "invalid JSON body", "type": "BadRequestError", "code": 400})
            return
        fake._enter()
        try:
            self._answer_chat(body)
        finally:
            fake._leave()

    def _answer_chat(self, body: dict) -> None:
        fake = self.fake
        b = fake.behaviour
        outcome = fake._next_outcome(body)
        if b.latency_s:
            time.sleep(b.latency_s)
        if outcome == "hang":
            time.sleep(b.hang_s)
            outcome = "ok"
        if outcome == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if isinstance(outcome, int):
            headers = {"Retry-After": b.retry_after} if b.retry_after and outcome in (429, 503) else None
            message = {400: "image could not be processed", 429: "rate limited", 503: "server overloaded"}.get(outcome, "error")
            self._send_json(outcome, {"object": "error", "message": message, "type": "Error", "code": outcome}, headers)
            return
        if outcome == "malformed":
            self._send_raw(200, b'{"id": "chatcmpl-x", "choices": [')
            return
        n = int(body.get("n") or 1)
        text = b.reply(body) if callable(b.reply) else str(b.reply)
        choices = []
        for i in range(n):
            content = text if n == 1 else f"{text} [sample {i}]"
            finish = "stop"
            if outcome == "length":
                content = re.sub(r"\}[^}]*$", "", content)[: max(1, len(content) - 8)]
                finish = "length"
            choices.append({
                "index": i, "message": {"role": "assistant", "content": content},
                "finish_reason": finish, "logprobs": None,
            })
        completion_tokens = sum(max(1, len(c["message"]["content"]) // 4) for c in choices)
        self._send_json(200, {
            "id": f"chatcmpl-{fake.chat_calls}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"), "choices": choices,
            "usage": {"prompt_tokens": b.prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": b.prompt_tokens + completion_tokens},
        })


@contextlib.contextmanager
def serve_openai(**behaviour: Any) -> Iterator[FakeServer]:
    """Run a fake OpenAI-compatible server on 127.0.0.1 for the duration of a ``with`` block.

    Parameters
    ----------
    **behaviour
        Fields of :class:`Behaviour`: ``latency_s``, ``script`` (list of outcomes:
        ``"ok"``, an HTTP status, ``"malformed"``, ``"hang"``, ``"length"``, ``"drop"``),
        ``fail_when(body) -> outcome | None``, ``reply`` (text or ``body -> text``),
        ``models``, ``version`` (None: no ``/version``), ``healthy_after_s``,
        ``hang_s``, ``retry_after``, ``record_bodies``, ``prompt_tokens``, ``api_key``.

    Yields
    ------
    FakeServer
        With ``.url``, ``.requests``, ``.max_in_flight``, ``.chat_calls``.

    Examples
    --------
    >>> with serve_openai(script=[503, "ok"]) as server:  # doctest: +SKIP
    ...     backend = get_backend("vllm-server", base_url=server.url)
    """
    server = FakeServer(Behaviour(**behaviour)).start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the fake server in the foreground (used by the drafting benchmark as a separate process)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = FakeServer(Behaviour(latency_s=args.latency, record_bodies=False)).start(port=args.port)
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
