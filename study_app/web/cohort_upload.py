"""The cohort zip upload: a plain page for coordinators and the route that streams the zip to disk.

Streamlit's own uploader keeps every file in the server's memory (and lets any websocket session send one),
so a cohort of hundreds of megabytes goes here instead: ``PUT /console/upload/<study id>`` with the zip as the
raw body, from a signed-in coordinator's page only (the guard checks the origin, this route the client header
and the coordinator), bounded by its declared length, written chunk by chunk to the cohorts folder.
"""

from __future__ import annotations

import html
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from study_app.services import auth
from study_app.services.errors import Conflict, InvalidInput, PermissionDenied, ServiceError
from study_app.services.uploads import MAX_UPLOAD_BYTES, MAX_UPLOAD_MB, DiskFull, begin_upload
from study_app.web.database import shared_database

UPLOAD_PREFIX = "/console/upload/"
# The guard refuses any other body above 1 MB; this route declares its own bound.
UPLOAD_BODY_LIMITS = {UPLOAD_PREFIX: MAX_UPLOAD_BYTES}
CLIENT_HEADER = "X-Readerstudy-Client"
# Chunks from the network are gathered to this size before a write, so a 1 GB zip costs ~1000 thread hops.
WRITE_BYTES = 1024**2
_SCRIPT = (Path(__file__).parent / "console" / "upload_page.js").read_text(encoding="utf-8")


async def _coordinator(request: Request):
    actor = await run_in_threadpool(auth.actor_for_session, shared_database(), request.cookies.get(auth.SESSION_COOKIE))
    return actor if actor is not None and actor.is_coordinator else None


async def upload_page(request: Request) -> Response:
    """GET /console/upload: choose the study id and the zip; the page's script sends it and shows progress."""
    from study_app.web.server import plain_page

    try:
        actor = await _coordinator(request)
    except ServiceError as error:
        from study_app.web.server import fault_page

        return fault_page(error)
    if actor is None:
        return RedirectResponse("/console/signin", status_code=303)
    study = html.escape(request.query_params.get("study", "")[:32], quote=True)
    return plain_page(
        "Upload a cohort",
        "<h1>Upload a cohort zip</h1>"
        f"<p>The zip holds the manifest and its images (up to {MAX_UPLOAD_MB} MB; copy a larger cohort to the "
        "server and give its folder on the Studies page instead). It is kept on the server for the study id "
        "below until you create that study on the Studies page.</p>"
        "<form id='upload'><label>Study id<input name='study' required pattern='[a-z0-9][a-z0-9_-]{0,31}' "
        f"value='{study}' autocomplete='off'></label>"
        "<label>Cohort zip<input name='file' type='file' accept='.zip,application/zip' required></label>"
        "<button type='submit'>Upload</button></form>"
        "<p><progress id='progress' max='1' value='0' hidden></progress></p><p id='status' role='status'></p>"
        "<p><a href='/'>Back to the Studies page</a></p>"
        "<script src='/console/upload.js'></script>",
        form=True,
    )


async def upload_script(request: Request) -> Response:
    """GET /console/upload.js: the page's script (a file of our own: the CSP allows no inline script)."""
    return Response(_SCRIPT, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


def _refusal(error: ServiceError) -> JSONResponse:
    status = (507 if isinstance(error, DiskFull) else 403 if isinstance(error, PermissionDenied)
              else 409 if isinstance(error, Conflict) else 422 if isinstance(error, InvalidInput)
              else 503)
    return JSONResponse({"error": str(error), "kind": type(error).__name__}, status_code=status)


async def upload(request: Request) -> Response:
    """PUT /console/upload/{study_id}: the zip as the raw body, streamed to the study's staged upload."""
    if request.headers.get(CLIENT_HEADER) != "1":
        return JSONResponse({"error": "send the upload from the upload page"}, status_code=403)
    try:
        actor = await _coordinator(request)
        if actor is None:
            return JSONResponse({"error": "only a signed-in coordinator may upload a cohort"}, status_code=403)
        declared = int(request.headers.get("content-length") or 0)
        writer = await run_in_threadpool(begin_upload, shared_database(), actor, request.path_params["study_id"],
                                         declared)
    except ServiceError as error:
        return _refusal(error)
    pending = bytearray()
    try:
        async for chunk in request.stream():
            pending += chunk
            if len(pending) >= WRITE_BYTES:
                await run_in_threadpool(writer.write, bytes(pending))
                pending.clear()
        if pending:
            await run_in_threadpool(writer.write, bytes(pending))
        staged = await run_in_threadpool(writer.finish)
    except ClientDisconnect:
        writer.abort()
        return Response(status_code=400)
    except ServiceError as error:
        writer.abort()
        return _refusal(error)
    except BaseException:
        writer.abort()
        raise
    return JSONResponse({"study_id": staged.study_id, "size_bytes": staged.size_bytes})


UPLOAD_ROUTES = [
    Route("/console/upload", upload_page, methods=["GET"]),
    Route("/console/upload.js", upload_script, methods=["GET"]),
    Route(UPLOAD_PREFIX + "{study_id}", upload, methods=["PUT"]),
]
