"""The analysis report shown inside the console: kept on the server under a random address, served in a
sandbox of its own.

The report is a self-contained page whose charts run inline scripts (plotly). The app's policy allows no
inline script, and an iframe's ``srcdoc`` inherits that policy, so the report gets an address of its own
instead: ``/console/report/<token>``, for the coordinator who made it, with a policy that runs its inline
scripts but sandboxes them (an opaque origin: no cookie, no access to the console around it, no network).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from study_app.services import auth
from study_app.web.database import shared_database

REPORT_PREFIX = "/console/report/"
KEEP_REPORTS = 16
KEEP_SECONDS = 12 * 3600
REPORT_POLICY = "; ".join([
    "sandbox allow-scripts allow-downloads",
    "default-src 'none'",
    "script-src 'unsafe-inline'",
    "style-src 'unsafe-inline'",
    "img-src data: blob:",
    "font-src data:",
    "frame-ancestors 'self'",
])

_lock = threading.Lock()
_reports: OrderedDict[str, tuple[int | None, str, float]] = OrderedDict()


def keep_report(coordinator_id: int | None, page: str) -> str:
    """Keep a report for its coordinator; returns the address the console's iframe loads."""
    token = secrets.token_urlsafe(24)
    with _lock:
        _reports[token] = (coordinator_id, page, time.monotonic())
        while len(_reports) > KEEP_REPORTS:
            _reports.popitem(last=False)
    return REPORT_PREFIX + token


def _kept(token: str) -> tuple[int | None, str] | None:
    with _lock:
        found = _reports.get(token)
        if found is None or time.monotonic() - found[2] > KEEP_SECONDS:
            _reports.pop(token, None)
            return None
        return found[0], found[1]


async def report(request: Request) -> Response:
    """GET /console/report/{token}: the kept report, to the coordinator who made it only."""
    actor = await run_in_threadpool(auth.actor_for_session, shared_database(), request.cookies.get(auth.SESSION_COOKIE))
    found = _kept(request.path_params["token"])
    if actor is None or not actor.is_coordinator or found is None or found[0] != actor.coordinator_id:
        return Response("no such report", status_code=404, media_type="text/plain")
    return HTMLResponse(found[1], headers={"Content-Security-Policy": REPORT_POLICY, "X-Frame-Options": "SAMEORIGIN",
                                           "Cache-Control": "no-store"})


REPORT_ROUTES = [Route(REPORT_PREFIX + "{token}", report, methods=["GET"])]
