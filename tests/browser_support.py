"""What the browser tests share: Debian's Chromium and its flags, a free loopback port, starting and stopping a server,
following a reader's personal link, and axe-core's accessibility audit of a page."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    """Debian's chromium (or $CHROMIUM); never a browser downloaded by Playwright."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout_s: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()


def start_app_server(db_url: str, log_path: Path, *, port: int | None = None, cwd: Path | None = None,
                     env: dict | None = None, timeout_s: float = 30) -> tuple[subprocess.Popen, int]:
    """``serve()`` (the app as `readerstudy serve` starts it) in a child process on a loopback port, returned
    once the port accepts connections. A server that exits or is not listening within ``timeout_s`` is stopped
    and its log raised; otherwise the caller stops it (:func:`stop_process`) on every path.

    Returns
    -------
    (process, port)
    """
    port = port or free_port()
    code = f"from study_app.serve import serve; serve({db_url!r}, port={port})"
    # The child runs this checkout's code, whichever copy of the package is installed (a worktree's schema may be
    # ahead of the installed copy's, which would refuse the database).
    env = dict(env if env is not None else os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    with open(log_path, "w") as log:  # the child keeps its own descriptor
        process = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(env, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                raise RuntimeError(f"the server did not start:\n{Path(log_path).read_text()}") from None
            time.sleep(0.2)


@contextmanager
def serving(db_url: str, tmp_path: Path) -> Iterator[str]:
    """The app on ``db_url`` in a child process (:func:`start_app_server`), its base URL, stopped on every path."""
    server, port = start_app_server(db_url, tmp_path / "server.log", cwd=tmp_path)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(server)


def sign_in(page, base: str, token: str) -> None:
    """Follow the personal link and press the confirm button, as a reader does."""
    page.goto(f"{base}/signin?token={token}")
    page.click("#signin")
    page.wait_for_url(f"{base}/**")


AXE = Path(__file__).parent / "a11y" / "axe.min.js"  # axe-core, vendored (tests/a11y/README.md)


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical WCAG 2.1 A/AA violations on the page as it stands (the page's context needs
    ``bypass_csp=True``: the app's policy forbids the inline script axe goes in as)."""
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    return page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
        return r.violations.filter(v => ['serious', 'critical'].includes(v.impact))
            .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")


def wait_saved(page, timeout_ms: float = 20_000) -> None:
    """Wait until the editor says its text reached the server ("Saved 10:42:07"). Not ``:has-text('Saved')``:
    that matches case-insensitively, so "Not saved yet…", shown at the first keystroke, satisfied it at once."""
    page.locator(".rs-saved", has_text=re.compile(r"^Saved \d")).wait_for(timeout=timeout_ms)
