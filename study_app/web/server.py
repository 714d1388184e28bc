"""HTTP routes beside the Streamlit app: sign-in (sets the HttpOnly cookie), case images, and the viewer's beacons.

Streamlit cannot set an HttpOnly cookie or answer a plain HTTP request from a page script, but
``st.App`` (Streamlit >= 1.53) mounts extra Starlette routes next to its own. The sign-in link lands on
``/signin``, which trades the invite token for a session cookie and redirects to the app; the pages
then read the cookie through ``st.context.cookies`` on every rerun.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta, timezone
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from study_app.services import auth, images, reading
from study_app.services.actors import Actor
from study_app.services.errors import Conflict, InvalidInput, NotFound, PermissionDenied, ServiceError
from study_app.web.database import shared_database

ENTRY_SCRIPT = Path(__file__).with_name("app.py")
# The viewer's and editor's fetches carry this header: a cross-site form cannot set it, and a cross-site
# fetch that sets it needs a CORS preflight that this server never grants.
CLIENT_HEADER = "X-Readerstudy-Client"
MAX_BODY_BYTES = 256_000

_STATUS = {NotFound: 404, PermissionDenied: 403, Conflict: 409, InvalidInput: 422}


def _status_of(error: ServiceError) -> int:
    for kind, status in _STATUS.items():
        if isinstance(error, kind):
            return status
    return 400


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>"
        f"{html.escape(title)}</title><meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#222}"
        "button{font-size:1.05rem;padding:.6rem 1.4rem;border-radius:.4rem;border:0;background:#1f5fa8;color:#fff;"
        "cursor:pointer}input{font-size:1rem;padding:.4rem;margin:.2rem 0 .8rem;width:100%;box-sizing:border-box}"
        ".error{color:#a11}</style></head><body>" + body + "</body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _set_session_cookie(response: Response, request: Request, token: str, lifetime: timedelta) -> None:
    response.set_cookie(
        auth.SESSION_COOKIE, token, max_age=int(lifetime.total_seconds()), path="/", httponly=True,
        # Lax, not Strict: a reader who opens the app from a bookmark or a mail must arrive signed in.
        samesite="lax", secure=request.url.scheme == "https",
    )


async def signin_form(request: Request) -> Response:
    """GET /signin?token=...: a confirm button, so a mail scanner that follows links cannot burn the invite."""
    token = request.query_params.get("token", "")
    if not token:
        return _page("Sign in", "<h1>Sign in</h1><p class='error'>This link has no sign-in token. "
                     "Use the personal link your study coordinator sent you.</p>", 400)
    return _page(
        "Sign in to the reader study",
        "<h1>Reader study</h1><p>This is your personal sign-in link. It works once; after that this browser "
        "stays signed in.</p><form method='post' action='/signin'>"
        f"<input type='hidden' name='token' value='{html.escape(token, quote=True)}'>"
        "<button type='submit' id='signin'>Sign in and start reading</button></form>",
    )


async def signin(request: Request) -> Response:
    """POST /signin: the invite becomes a session cookie (HttpOnly, SameSite=Lax); the link is spent."""
    form = await request.form()
    token = str(form.get("token", ""))
    db = shared_database()
    try:
        session_token, _actor = await run_in_threadpool(auth.exchange_invite, db, token)
    except PermissionDenied as error:
        return _page("Sign-in failed", f"<h1>Sign-in failed</h1><p class='error'>{html.escape(str(error))}</p>", 403)
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(response, request, session_token, timedelta(days=auth.READER_SESSION_DAYS))
    return response


async def signout(request: Request) -> Response:
    """GET /signout: revoke this browser's session and drop the cookie."""
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        await run_in_threadpool(auth.revoke_session, shared_database(), token)
    response = _page("Signed out", "<h1>Signed out</h1><p>You can close this tab. Your work is saved; "
                     "ask your coordinator for a new link to continue on another computer.</p>")
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


async def console_signin(request: Request) -> Response:
    """GET/POST /console/signin: coordinator password sign-in."""
    message = ""
    if request.method == "POST":
        form = await request.form()
        try:
            token, _actor = await run_in_threadpool(
                auth.coordinator_sign_in, shared_database(), str(form.get("username", "")),
                str(form.get("password", "")),
            )
        except PermissionDenied as error:
            message = f"<p class='error'>{html.escape(str(error))}</p>"
        else:
            response = RedirectResponse("/", status_code=303)
            _set_session_cookie(response, request, token, timedelta(hours=auth.COORDINATOR_SESSION_HOURS))
            return response
    return _page(
        "Coordinator sign-in",
        "<h1>Coordinator sign-in</h1>" + message + "<form method='post' action='/console/signin'>"
        "<label>Username<input name='username' autocomplete='username' required></label>"
        "<label>Password<input name='password' type='password' autocomplete='current-password' required></label>"
        "<button type='submit'>Sign in</button></form>",
        403 if message else 200,
    )


async def _reader(request: Request) -> Actor | None:
    actor = await run_in_threadpool(auth.actor_for_session, shared_database(), request.cookies.get(auth.SESSION_COOKIE))
    return actor if actor is not None and actor.kind == "reader" else None


def _same_origin(request: Request) -> bool:
    if request.headers.get(CLIENT_HEADER) != "1":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    # Behind a proxy the browser's host may arrive as X-Forwarded-Host instead of Host.
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")} - {None}
    return origin.split("://", 1)[-1] in hosts


def _error(error: ServiceError) -> JSONResponse:
    return JSONResponse({"error": str(error), "kind": type(error).__name__}, status_code=_status_of(error))


async def case_image(request: Request) -> Response:
    """GET /api/image/{case_ref}/{ordinal}: a packed display PNG, only for the reader's own open case."""
    actor = await _reader(request)
    if actor is None:
        return JSONResponse({"error": "not signed in"}, status_code=401)
    try:
        png = await run_in_threadpool(
            images.case_image_png, shared_database(), actor, request.path_params["case_ref"],
            request.path_params["ordinal"],
        )
    except ServiceError as error:
        return _error(error)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})


async def _reader_post(request: Request):
    if not _same_origin(request):
        return None, JSONResponse({"error": "cross-site request refused"}, status_code=403)
    actor = await _reader(request)
    if actor is None:
        return None, JSONResponse({"error": "not signed in"}, status_code=401)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return None, JSONResponse({"error": "request too large"}, status_code=413)
    return actor, body


async def _json(body: bytes) -> dict:
    import json

    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise InvalidInput("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    return data


async def image_shown(request: Request) -> Response:
    """POST /api/reading/{case_ref}/shown: the first image is on screen; the server clock starts (once)."""
    received_at = datetime.now(timezone.utc)  # on arrival: queueing for a thread or the database must not move the clock
    actor, body = await _reader_post(request)
    if actor is None:
        return body
    try:
        data = await _json(body)
        at = await run_in_threadpool(
            lambda: reading.mark_image_shown(shared_database(), actor, request.path_params["case_ref"],
                                             age_s=data.get("age_s"), received_at=received_at)
        )
    except ServiceError as error:
        return _error(error)
    return JSONResponse({"first_shown_at": at.isoformat()})


async def submit(request: Request) -> Response:
    """POST /api/reading/{case_ref}/submit: SUBMIT pressed ``age_s`` ago, with the text and the client's totals.

    The press goes to the server as this request, the moment it happens, instead of riding on the page's next
    rerun (which waits for the websocket, seconds after a server restart); the read's clock stops at it.
    """
    received_at = datetime.now(timezone.utc)  # on arrival: queueing for a thread or the database must not move the clock
    actor, body = await _reader_post(request)
    if actor is None:
        return body
    try:
        data = await _json(body)

        def seconds(name: str):
            value = data.get(name)
            return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        result = await run_in_threadpool(
            lambda: reading.submit(
                shared_database(), actor, request.path_params["case_ref"], data.get("text"),
                active_s=seconds("active_s"), hidden_s=seconds("hidden_s"), idle_s=seconds("idle_s"),
                press_id=data.get("press_id"), age_s=data.get("age_s"), received_at=received_at,
            )
        )
    except ServiceError as error:
        return _error(error)
    return JSONResponse({"submitted_at": result.submitted_at.isoformat(), "status": result.status})


async def client_event(request: Request) -> Response:
    """POST /api/reading/{case_ref}/event: a hidden/visible/idle stretch measured in the browser."""
    actor, body = await _reader_post(request)
    if actor is None:
        return body
    try:
        data = await _json(body)
        await run_in_threadpool(
            lambda: reading.record_client_event(
                shared_database(), actor, request.path_params["case_ref"], str(data.get("kind", "")),
                duration_s=data.get("duration_s"), client_at=data.get("client_at"),
            )
        )
    except ServiceError as error:
        return _error(error)
    return JSONResponse({"ok": True})


async def autosave(request: Request) -> Response:
    """POST /api/reading/{case_ref}/autosave: a snapshot of the editor text."""
    actor, body = await _reader_post(request)
    if actor is None:
        return body
    try:
        data = await _json(body)
        at = await run_in_threadpool(
            reading.autosave, shared_database(), actor, request.path_params["case_ref"], data.get("text")
        )
    except ServiceError as error:
        return _error(error)
    return JSONResponse({"saved_at": at.isoformat()})


ROUTES = [
    Route("/signin", signin_form, methods=["GET"]),
    Route("/signin", signin, methods=["POST"]),
    Route("/signout", signout, methods=["GET"]),
    Route("/console/signin", console_signin, methods=["GET", "POST"]),
    # A case is named by its case_ref (opaque, random), never by an assignment id.
    Route("/api/image/{case_ref}/{ordinal:int}", case_image, methods=["GET"]),
    Route("/api/reading/{case_ref}/shown", image_shown, methods=["POST"]),
    Route("/api/reading/{case_ref}/submit", submit, methods=["POST"]),
    Route("/api/reading/{case_ref}/event", client_event, methods=["POST"]),
    Route("/api/reading/{case_ref}/autosave", autosave, methods=["POST"]),
]


def build_app():
    """The ASGI app: the Streamlit entry script plus the routes above."""
    import streamlit as st

    return st.App(str(ENTRY_SCRIPT), routes=ROUTES)
