"""HTTP routes beside the Streamlit app: sign-in (sets the HttpOnly cookie), case images, and the viewer's beacons.

Streamlit cannot set an HttpOnly cookie or answer a plain HTTP request from a page script, but
``st.App`` (Streamlit >= 1.53) mounts extra Starlette routes next to its own. The sign-in link lands on
``/signin``, which trades the invite token for a session cookie and redirects to the app; the pages
then read the cookie through ``st.context.cookies`` on every rerun.
"""

from __future__ import annotations

import asyncio
import contextvars
import html
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from study_app.services import auth, images, reading
from study_app.services.actors import Actor
from study_app.services.errors import (
    Conflict, DatabaseUnavailable, InvalidInput, NotFound, PermissionDenied, ServiceError, Unavailable,
)
from study_app.web.cohort_upload import UPLOAD_BODY_LIMITS, UPLOAD_ROUTES
from study_app.web.database import shared_database
from study_app.web.guard import GUARD_SCOPE_KEY, Guard, SecurityMiddleware
from study_app.web.report_view import REPORT_ROUTES

ENTRY_SCRIPT = Path(__file__).with_name("app.py")
# The viewer's and editor's fetches carry this header: a cross-site form cannot set it, and a cross-site
# fetch that sets it needs a CORS preflight that this server never grants.
CLIENT_HEADER = "X-Readerstudy-Client"
MAX_BODY_BYTES = 256_000

_STATUS = {NotFound: 404, PermissionDenied: 403, Conflict: 409, InvalidInput: 422, DatabaseUnavailable: 503,
           Unavailable: 503}


def _status_of(error: ServiceError) -> int:
    for kind, status in _STATUS.items():
        if isinstance(error, kind):
            return status
    return 400


PAGE_CSS = ("body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#222}"
            "button{font-size:1.05rem;padding:.6rem 1.4rem;border-radius:.4rem;border:0;background:#1f5fa8;color:#fff;"
            "cursor:pointer}button.secondary{background:#e4e8ee;color:#222}"
            "input{font-size:1rem;padding:.4rem;margin:.2rem 0 .8rem;width:100%;box-sizing:border-box}"
            ".error{color:#a11}.notice{background:#fff4d6;border-left:4px solid #d9a400;padding:.6rem .8rem}"
            "progress{width:100%}")


def plain_page(title: str, body: str, status: int = 200, *, form: bool = False,
          headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>"
        f"{html.escape(title)}</title><meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<style>{PAGE_CSS}</style></head><body>" + body + "</body></html>",
        status_code=status,
        # A form's own page says where its POST comes from (Referrer-Policy no-referrer would make the
        # browser send "Origin: null", which the guard refuses); same-origin still tells other sites nothing.
        headers={"Cache-Control": "no-store", "Referrer-Policy": "same-origin" if form else "no-referrer",
                 **(headers or {})},
    )


def fault_page(error: ServiceError) -> HTMLResponse:
    return plain_page("Not available", f"<h1>Not available</h1><p class='error'>{html.escape(str(error))}</p>",
                 _status_of(error), headers={"Retry-After": "60"} if isinstance(error, DatabaseUnavailable) else None)


def _set_session_cookie(response: Response, request: Request, token: str, lifetime: timedelta) -> None:
    guard = request.scope.get(GUARD_SCOPE_KEY)
    response.set_cookie(
        auth.SESSION_COOKIE, token, max_age=int(lifetime.total_seconds()), path="/", httponly=True,
        # Lax, not Strict: a reader who opens the app from a bookmark or a mail must arrive signed in.
        # Secure whenever readers use HTTPS, even when the TLS proxy talks plain HTTP to this server.
        samesite="lax", secure=request.url.scheme == "https" or bool(guard and guard.secure_cookies),
    )


async def _signed_in(request: Request) -> Actor | None:
    """Whoever this browser's cookie signs in now (reader or coordinator), or None."""
    return await run_in_threadpool(auth.actor_for_session, shared_database(), request.cookies.get(auth.SESSION_COOKIE))


def _who(actor: Actor) -> str:
    return f"reader {actor.name}" if actor.kind == "reader" else f"coordinator {actor.name}"


def _swap_notice(current: Actor, incoming: str) -> str:
    return (f"<p class='notice' id='swap'>This browser is signed in as <b>{html.escape(_who(current))}</b>. "
            f"Continuing signs {html.escape(_who(current))} out here and signs in {html.escape(incoming)}. "
            "Their work is saved either way.</p>")


def _signin_form(token: str, current: Actor | None, holder: str | None) -> HTMLResponse:
    incoming = f"reader {holder}"
    # A spent or unknown link cannot swap anyone in: its POST fails with its own message.
    swapping = current is not None and holder is not None and not (current.kind == "reader" and current.name == holder)
    button = f"Sign out {_who(current)} and sign in" if swapping else "Sign in and start reading"
    return plain_page(
        "Sign in to the reader study",
        "<h1>Reader study</h1>" + (_swap_notice(current, incoming) if swapping else "")
        + "<p>This is your personal sign-in link. It works once; after that this browser stays signed in.</p>"
        "<form method='post' action='/signin'>"
        f"<input type='hidden' name='token' value='{html.escape(token, quote=True)}'>"
        + ("<input type='hidden' name='replace' value='1'>" if swapping else "")
        + f"<button type='submit' id='signin'>{html.escape(button)}</button></form>"
        + ("<p><a href='/'>Keep " + html.escape(_who(current)) + " signed in</a></p>" if swapping else ""),
        form=True,
    )


async def signin_form(request: Request) -> Response:
    """GET /signin?token=...: a confirm button, so a mail scanner that follows links cannot burn the invite.

    When the browser is signed in as someone else, the page says so and the button says it signs them out.
    """
    token = request.query_params.get("token", "")
    if not token:
        return plain_page("Sign in", "<h1>Sign in</h1><p class='error'>This link has no sign-in token. "
                     "Use the personal link your study coordinator sent you.</p>", 400)
    try:
        current = await _signed_in(request)
        if await run_in_threadpool(auth.invite_is_for, shared_database(), token, current):
            return _to_worklist()
        holder = await run_in_threadpool(auth.invite_holder, shared_database(), token)
    except ServiceError as error:
        return fault_page(error)
    return _signin_form(token, current, holder)


def _to_worklist() -> Response:
    # The browser is signed in as the link's own reader already (a second click on the mail, Back to the link):
    # straight to the worklist, the link neither spent nor refused.
    return RedirectResponse("/worklist", status_code=303, headers={"Cache-Control": "no-store"})


async def signin(request: Request) -> Response:
    """POST /signin: the invite becomes a session cookie (HttpOnly, SameSite=Lax); the link is spent.

    A browser signed in as someone else is asked first (the form comes back with the notice) unless the
    post confirms the swap; identities are never exchanged silently.
    """
    form = await request.form()
    token = str(form.get("token", ""))
    previous = request.cookies.get(auth.SESSION_COOKIE)
    db = shared_database()
    try:
        current = await _signed_in(request)
        if await run_in_threadpool(auth.invite_is_for, db, token, current):
            return _to_worklist()
        if current is not None and form.get("replace") != "1":
            holder = await run_in_threadpool(auth.invite_holder, db, token)
            if holder is not None and not (current.kind == "reader" and current.name == holder):
                return _signin_form(token, current, holder)
        session_token, _actor = await run_in_threadpool(
            lambda: auth.exchange_invite(db, token, previous_session=previous)
        )
    except PermissionDenied as error:
        return plain_page("Sign-in failed", f"<h1>Sign-in failed</h1><p class='error'>{html.escape(str(error))}</p>", 403)
    except ServiceError as error:
        return fault_page(error)
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(response, request, session_token, timedelta(days=auth.READER_SESSION_DAYS))
    return response


async def signout_form(request: Request) -> Response:
    """GET /signout: a confirm button. A link from anywhere (another site included) signs nobody out."""
    try:
        current = await _signed_in(request)
    except ServiceError as error:
        return fault_page(error)
    if current is None:
        return plain_page("Signed out", "<h1>Not signed in</h1><p>This browser is not signed in.</p>")
    return plain_page(
        "Sign out", f"<h1>Sign out?</h1><p>This browser is signed in as {html.escape(_who(current))}. Your work is "
        "saved. A reader needs a new link from the coordinator to sign in again.</p>"
        "<form method='post' action='/signout'><button type='submit' id='signout'>Sign out</button></form>"
        "<p><a href='/'>Back to the study</a></p>", form=True,
    )


async def signout(request: Request) -> Response:
    """POST /signout (from this study's own page only: the guard checks the origin): revoke and drop the cookie."""
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        try:
            await run_in_threadpool(auth.revoke_session, shared_database(), token)
        except ServiceError as error:
            return fault_page(error)
    response = plain_page("Signed out", "<h1>Signed out</h1><p>You can close this tab. Your work is saved; "
                     "ask your coordinator for a new link to continue on another computer.</p>")
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


# However many password sign-ins arrive, at most this many wait in (or for) the thread pool at once; the rest
# are told to retry, so guesses cannot take the threads that serve readers' images.
MAX_SIGN_INS_IN_FLIGHT = 8
_sign_ins_in_flight = 0


def _console_form(message: str, current: Actor | None, status: int) -> HTMLResponse:
    swapping = current is not None
    return plain_page(
        "Coordinator sign-in",
        "<h1>Coordinator sign-in</h1>" + message
        + (_swap_notice(current, "the coordinator below") if swapping else "")
        + "<form method='post' action='/console/signin'>"
        "<label>Username<input name='username' autocomplete='username' required></label>"
        "<label>Password<input name='password' type='password' autocomplete='current-password' required></label>"
        + ("<input type='hidden' name='replace' value='1'>" if swapping else "")
        + "<button type='submit'>Sign in</button></form>",
        status, form=True,
    )


async def console_signin(request: Request) -> Response:
    """GET/POST /console/signin: coordinator password sign-in, throttled per username and client address."""
    global _sign_ins_in_flight
    from study_app.services import throttle
    from study_app.services.throttle import SignInThrottled
    from study_app.web.guard import client_address

    try:
        current = await _signed_in(request)
    except ServiceError as error:
        return fault_page(error)
    if request.method != "POST":
        return _console_form("", current, 200)
    form = await request.form()
    if current is not None and form.get("replace") != "1":
        return _console_form("", current, 200)  # ask first: the form now carries the notice
    address = client_address(request.scope)
    refused = throttle.refused_now(str(form.get("username", "")), address)
    if refused is not None:  # a wait already decided: answered here, no thread, no database
        response = _console_form(f"<p class='error'>{html.escape(str(refused))}</p>", current, 429)
        response.headers["Retry-After"] = str(refused.retry_after_s)
        return response
    if _sign_ins_in_flight >= MAX_SIGN_INS_IN_FLIGHT:
        return _console_form("<p class='error'>The server is busy checking other sign-ins; try again in a minute."
                             "</p>", current, 503)
    _sign_ins_in_flight += 1
    try:
        token, _actor = await run_in_threadpool(
            lambda: auth.coordinator_sign_in(
                shared_database(), str(form.get("username", "")), str(form.get("password", "")),
                address=address, previous_session=request.cookies.get(auth.SESSION_COOKIE),
            )
        )
    except SignInThrottled as error:
        response = _console_form(f"<p class='error'>{html.escape(str(error))}</p>", current, 429)
        response.headers["Retry-After"] = str(error.retry_after_s)
        return response
    except PermissionDenied as error:
        return _console_form(f"<p class='error'>{html.escape(str(error))}</p>", current, 403)
    except ServiceError as error:
        return _console_form(f"<p class='error'>{html.escape(str(error))}</p>", current, _status_of(error))
    finally:
        _sign_ins_in_flight -= 1
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(response, request, token, timedelta(hours=auth.COORDINATOR_SESSION_HOURS))
    return response


async def ready(request: Request) -> Response:
    """GET /ready: 200 when the study database can take readers' work, 503 (with the reason) when it is
    unreachable, read-only, missing or damaged. For proxies and orchestrators; Streamlit's /_stcore/health
    only says the process is up."""
    from study_app.services.database import readiness

    try:
        state = await run_in_threadpool(lambda: readiness(shared_database()))
    except DatabaseUnavailable as error:  # the database could not even be opened
        return JSONResponse({"status": "unavailable", "reason": error.reason, "message": str(error)},
                            status_code=503, headers={"Cache-Control": "no-store", "Retry-After": "30"})
    if state.ready:
        return JSONResponse({"status": "ready"}, headers={"Cache-Control": "no-store"})
    return JSONResponse({"status": "unavailable", "reason": state.reason, "message": state.message},
                        status_code=503, headers={"Cache-Control": "no-store", "Retry-After": "30"})


NOT_SIGNED_IN = object()  # what a reader route's work returns when the cookie's session is not a reader's


def _as_reader(request: Request, work):
    """Run ``work(actor)`` for the reader the request's session cookie belongs to, in a worker thread: the session
    check and the service share one trip to the thread pool (each trip costs the event loop; P8). Returns
    :data:`NOT_SIGNED_IN` when the cookie is no reader's session."""
    token = request.cookies.get(auth.SESSION_COOKIE)

    def run():
        actor = auth.actor_for_session(shared_database(), token)
        if actor is None or actor.kind != "reader":
            return NOT_SIGNED_IN
        return work(actor)

    return asyncio.get_running_loop().run_in_executor(_READER_THREADS, contextvars.copy_context().run, run)


# The reader routes' worker threads: a plain executor instead of anyio's to_thread (its capacity limiter, cancel
# scope and event-loop detection were a fifth of an autosave's CPU; P8). As many threads as anyio's default limit.
_READER_THREADS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="reader-route")


def _same_origin(request: Request) -> bool:
    if request.headers.get(CLIENT_HEADER) != "1":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    # Behind a proxy the browser's host may arrive as X-Forwarded-Host instead of Host.
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")} - {None}
    return origin.split("://", 1)[-1] in hosts


def _not_signed_in() -> JSONResponse:
    return JSONResponse({"error": "not signed in"}, status_code=401)


IMAGE_TYPES = {"full": "image/webp", "preview": "image/jpeg"}


async def case_image(request: Request) -> Response:
    """GET /api/image/{case_ref}/{ordinal}[/preview]: the full copy (lossless packed WebP) or the quick windowed
    preview (JPEG) of one image, only for the reader's own open case."""
    kind = request.path_params.get("kind", "full")
    case_ref, ordinal = request.path_params["case_ref"], request.path_params["ordinal"]
    try:
        body = await _as_reader(request, lambda actor: images.case_image_bytes(
            shared_database(), actor, case_ref, ordinal, kind))
    except ServiceError as error:  # the session check's faults too: said as service_error says them
        return await service_error(request, error)
    if body is NOT_SIGNED_IN:
        return _not_signed_in()
    # Cacheable for a day: the browser fetches the next case's images ahead, and a case's pictures never change.
    return Response(body, media_type=IMAGE_TYPES[kind], headers={"Cache-Control": "private, max-age=86400"})


async def case_text(request: Request) -> Response:
    """GET /api/reading/{case_ref}/text: the editor's text as the server has it now (the last autosave, else the
    draft) and the case's status: what a tab that was read-only (the case open in another tab) takes over."""
    if request.headers.get(CLIENT_HEADER) != "1":
        return JSONResponse({"error": "cross-site request refused"}, status_code=403)
    case_ref = request.path_params["case_ref"]
    try:
        view = await _as_reader(request, lambda actor: reading.case_view(shared_database(), actor, case_ref))
    except ServiceError as error:  # the session check's faults too: said as service_error says them
        return await service_error(request, error)
    if view is NOT_SIGNED_IN:
        return _not_signed_in()
    return JSONResponse({"text": view.editor_text, "status": view.status}, headers={"Cache-Control": "no-store"})


async def _reader_body(request: Request) -> tuple[bytes, Response | None]:
    """A reader's POST to one of the reading routes: its body, or the response refusing it (another site, too
    large). Who sent it is checked with the work itself (:func:`_as_reader`), before the body is parsed."""
    if not _same_origin(request):
        return b"", JSONResponse({"error": "cross-site request refused"}, status_code=403)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return b"", JSONResponse({"error": "request too large"}, status_code=413)
    return body, None


def _json(body: bytes) -> dict:
    import json

    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise InvalidInput("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    return data


async def _reader_post(request: Request, work) -> Response:
    """The shape of every reading POST: the body checked, then ``work(actor, data)`` for the signed-in reader in
    one trip to a worker thread, its result (a dict) answered as JSON and a ServiceError as its plain sentence."""
    body, refusal = await _reader_body(request)
    if refusal is not None:
        return refusal
    try:
        result = await _as_reader(request, lambda actor: work(actor, _json(body)))
    except ServiceError as error:  # the session check's faults too: said as service_error says them
        return await service_error(request, error)
    if result is NOT_SIGNED_IN:
        return _not_signed_in()
    return JSONResponse(result)


async def image_shown(request: Request) -> Response:
    """POST /api/reading/{case_ref}/shown: the first image is on screen; the server clock starts (once)."""
    received_at = datetime.now(timezone.utc)  # on arrival: queueing for a thread or the database must not move the clock
    case_ref = request.path_params["case_ref"]

    def work(actor: Actor, data: dict) -> dict:
        at = reading.mark_image_shown(shared_database(), actor, case_ref, age_s=data.get("age_s"),
                                      received_at=received_at)
        return {"first_shown_at": at.isoformat()}

    return await _reader_post(request, work)


def _seconds(data: dict, name: str) -> float | None:
    value = data.get(name)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


async def submit(request: Request) -> Response:
    """POST /api/reading/{case_ref}/submit: SUBMIT pressed ``age_s`` ago, with the text and the client's totals.

    The press goes to the server as this request, the moment it happens, instead of riding on the page's next
    rerun (which waits for the websocket, seconds after a server restart); the read's clock stops at it.
    """
    received_at = datetime.now(timezone.utc)  # on arrival: queueing for a thread or the database must not move the clock
    case_ref = request.path_params["case_ref"]

    def work(actor: Actor, data: dict) -> dict:
        result = reading.submit(
            shared_database(), actor, case_ref, data.get("text"), active_s=_seconds(data, "active_s"),
            hidden_s=_seconds(data, "hidden_s"), idle_s=_seconds(data, "idle_s"), press_id=data.get("press_id"),
            age_s=data.get("age_s"), received_at=received_at,
        )
        return {"submitted_at": result.submitted_at.isoformat(), "status": result.status}

    return await _reader_post(request, work)


async def client_event(request: Request) -> Response:
    """POST /api/reading/{case_ref}/event: a hidden/visible/idle stretch measured in the browser."""
    case_ref = request.path_params["case_ref"]

    def work(actor: Actor, data: dict) -> dict:
        reading.record_client_event(shared_database(), actor, case_ref, str(data.get("kind", "")),
                                    duration_s=data.get("duration_s"), client_at=data.get("client_at"))
        return {"ok": True}

    return await _reader_post(request, work)


async def autosave(request: Request) -> Response:
    """POST /api/reading/{case_ref}/autosave: a snapshot of the editor text."""
    case_ref = request.path_params["case_ref"]

    def work(actor: Actor, data: dict) -> dict:
        return {"saved_at": reading.autosave(shared_database(), actor, case_ref, data.get("text")).isoformat()}

    return await _reader_post(request, work)


# A case is named by its case_ref (opaque, random), never by an assignment id. These are every reader's images and
# beacons, most of a reading's requests (P8): the security middleware sends them straight here (READER_PATHS).
# The reading routes, (method, action) -> endpoint: the one list both the routes and the short way are made from.
_READING_ENDPOINTS = {("GET", "text"): case_text, ("POST", "shown"): image_shown, ("POST", "submit"): submit,
                      ("POST", "event"): client_event, ("POST", "autosave"): autosave}
READER_ROUTES = [
    Route("/api/image/{case_ref}/{ordinal:int}", case_image, methods=["GET"]),
    Route("/api/image/{case_ref}/{ordinal:int}/{kind:str}", case_image, methods=["GET"]),
    *(Route(f"/api/reading/{{case_ref}}/{action}", endpoint, methods=[method])
      for (method, action), endpoint in _READING_ENDPOINTS.items()),
]
# Only well-formed addresses of those routes take the short way; anything else (another shape of case_ref, a
# path with dots or slashes) goes through Streamlit's whole stack and its path checks, and its router.
READER_PATHS = re.compile(r"/api/(?:image/(?P<image_ref>[0-9a-f]{16,64})/(?P<ordinal>[0-9]{1,6})"
                          r"(?:/(?P<kind>[a-z]{1,16}))?"
                          rf"|reading/(?P<case_ref>[0-9a-f]{{16,64}})/(?P<action>"
                          rf"{'|'.join(sorted({action for _, action in _READING_ENDPOINTS}))}))")


class ReaderRoutes:
    """The short way's ASGI app: a well-formed reader address (READER_PATHS) goes to its endpoint with the path
    parameters its Route would give, without matching the routes one by one (the router and its wrappers were a
    tenth of an autosave's CPU: P8). Another method goes to the routes' own router, which answers 405."""

    def __init__(self, handlers: dict) -> None:
        from starlette.middleware.exceptions import ExceptionMiddleware
        from starlette.routing import Router

        self.router = ExceptionMiddleware(Router(routes=READER_ROUTES), handlers=handlers)

    async def __call__(self, scope, receive, send) -> None:
        found = READER_PATHS.fullmatch(scope["path"])
        method = scope.get("method")
        if found is None:
            await self.router(scope, receive, send)
            return
        if found["image_ref"] is not None:
            endpoint = case_image if method == "GET" else None
            params = {"case_ref": found["image_ref"], "ordinal": int(found["ordinal"])}
            if found["kind"] is not None:
                params["kind"] = found["kind"]
        else:
            endpoint = _READING_ENDPOINTS.get((method, found["action"]))
            params = {"case_ref": found["case_ref"]}
        if endpoint is None:
            await self.router(scope, receive, send)
            return
        scope = {**scope, "path_params": params}
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except ServiceError as error:
            response = await service_error(request, error)
        await response(scope, receive, send)

ROUTES = [
    Route("/signin", signin_form, methods=["GET"]),
    Route("/signin", signin, methods=["POST"]),
    Route("/signout", signout_form, methods=["GET"]),
    Route("/signout", signout, methods=["POST"]),
    Route("/console/signin", console_signin, methods=["GET", "POST"]),
    Route("/ready", ready, methods=["GET"]),
    *UPLOAD_ROUTES,
    *REPORT_ROUTES,
    *READER_ROUTES,
]


async def service_error(request: Request, error: ServiceError) -> Response:
    """A ServiceError no route caught (the database failing while the session cookie is checked, say): the same
    plain sentence, JSON for the browser's scripts (/api/...) and a page for people, never a 500."""
    if isinstance(error, DatabaseUnavailable) and request.method not in ("GET", "HEAD"):
        # The fault met a read on the way (the cookie's session), but what the person did was a save.
        from study_app.services.database import fault_message

        error = DatabaseUnavailable(fault_message(error.reason, write=True), reason=error.reason)
    if request.scope["path"].startswith("/api/"):  # the routed path (request.url is rebuilt from Host)
        headers = {"Retry-After": "60"} if isinstance(error, DatabaseUnavailable) else None
        return JSONResponse({"error": str(error), "kind": type(error).__name__}, status_code=_status_of(error),
                            headers=headers)
    return fault_page(error)


def build_app(guard: Guard | None = None):
    """The ASGI app: the Streamlit entry script plus the routes above, behind the security middleware.

    Parameters
    ----------
    guard : Guard, optional
        The public origins and host names (``readerstudy serve`` builds it from ``--public-origin``);
        default: the loopback address on port 8501.
    """
    import streamlit as st
    from starlette.middleware import Middleware

    from study_app.web.errors import show_script_error

    guard = guard or Guard.for_serving("127.0.0.1", 8501)
    handlers = {ServiceError: service_error}
    app = st.App(
        str(ENTRY_SCRIPT), routes=ROUTES, on_script_error=show_script_error, exception_handlers=handlers,
        middleware=[Middleware(SecurityMiddleware, guard=guard, body_limits=UPLOAD_BODY_LIMITS,
                               direct=(READER_PATHS, ReaderRoutes(handlers)))],
    )
    return app
