"""The HTTP routes beside Streamlit: sign-in cookie, images only for their reader, the viewer's beacons."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from study_app.services import reading
from study_app.services.auth import SESSION_COOKIE
from study_app.store.models import Event
from study_app.services.errors import ServiceError
from study_app.web.server import CLIENT_HEADER, READER_PATHS, ROUTES, ReaderRoutes, service_error
from tests.case_refs import assignment_id_of

BEACON = {CLIENT_HEADER: "1"}


def _short_way(app):
    """The reader addresses as the server sends them, past the routes straight to ReaderRoutes (READER_PATHS)."""
    readers = ReaderRoutes({ServiceError: service_error})

    async def asgi(scope, receive, send):
        if scope["type"] == "http" and READER_PATHS.fullmatch(scope["path"]):
            await readers(scope, receive, send)
        else:
            await app(scope, receive, send)

    return asgi


@pytest.fixture(params=["routes", "short way"])
def client(request, web_study):
    # Every test below runs twice: through the routes, and as the server answers a well-formed reader address.
    app = Starlette(routes=ROUTES)
    with TestClient(app if request.param == "routes" else _short_way(app), base_url="http://testserver",
                    follow_redirects=False) as c:
        yield c




def signed_in(client, web_study, reader_key: str):
    # replace=1: the reader confirmed signing out whoever this client was signed in as (asked first otherwise).
    response = client.post("/signin", data={"token": web_study.invites[reader_key], "replace": "1"})
    assert response.status_code == 303 and response.headers["location"] == "/"
    return response


def test_signin_link_shows_a_button_and_does_not_spend_the_invite(client, web_study):
    page = client.get(f"/signin?token={web_study.invites['res1']}")
    assert page.status_code == 200 and "Sign in and start reading" in page.text
    assert SESSION_COOKIE not in page.cookies
    assert page.headers["cache-control"] == "no-store"
    signed_in(client, web_study, "res1")  # still usable after the GET


def test_signin_sets_an_httponly_samesite_cookie_and_the_link_dies(client, web_study):
    response = signed_in(client, web_study, "res1")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/" in cookie and "Max-Age=" in cookie
    client.cookies.clear()  # another browser (this one is signed in: it goes to the worklist, tested below)
    again = client.post("/signin", data={"token": web_study.invites["res1"]})
    assert again.status_code == 403 and "already used" in again.text


def test_signing_in_over_another_reader_asks_first_and_swaps_only_when_confirmed(client, web_study):
    from study_app.services.auth import actor_for_session

    signed_in(client, web_study, "res1")
    res1_cookie = client.cookies.get(SESSION_COOKIE)
    token = web_study.invites["res2"]
    page = client.get(f"/signin?token={token}")
    assert "signed in as <b>reader res1</b>" in page.text and "signs in reader res2" in page.text
    asked = client.post("/signin", data={"token": token})  # a post that did not confirm: asked again
    assert asked.status_code == 200 and "id='swap'" in asked.text and "set-cookie" not in asked.headers
    assert actor_for_session(web_study.db, client.cookies.get(SESSION_COOKIE)).name == "res1"
    swapped = client.post("/signin", data={"token": token, "replace": "1"})
    assert swapped.status_code == 303
    assert actor_for_session(web_study.db, client.cookies.get(SESSION_COOKIE)).name == "res2"
    assert actor_for_session(web_study.db, res1_cookie) is None, "the replaced session is signed out"


def test_signin_without_token_or_with_markup_is_escaped(client):
    assert client.get("/signin").status_code == 400
    page = client.get("/signin?token=%22%3E%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert" not in page.text


def test_signout_revokes_the_session(client, web_study):
    signed_in(client, web_study, "res1")
    token = client.cookies.get(SESSION_COOKIE)
    from study_app.services.auth import actor_for_session

    assert actor_for_session(web_study.db, token) is not None
    confirm = client.get("/signout")  # a link, from anywhere, only asks
    assert confirm.status_code == 200 and "<form method='post' action='/signout'>" in confirm.text
    assert "set-cookie" not in confirm.headers and actor_for_session(web_study.db, token) is not None
    out = client.post("/signout")
    assert out.status_code == 200 and 'readerstudy_session=""' in out.headers["set-cookie"]
    assert actor_for_session(web_study.db, token) is None


def _first_case(web_study, client, reader_key: str):
    signed_in(client, web_study, reader_key)
    from study_app.services.auth import actor_for_session

    actor = actor_for_session(web_study.db, client.cookies.get(SESSION_COOKIE))
    item = web_study.items(actor)[0]
    view = reading.open_case(web_study.db, actor, item.case_ref)
    return actor, view


def test_another_method_is_refused_both_ways(client, web_study):
    _actor, view = _first_case(web_study, client, "res1")
    assert client.get(f"/api/reading/{view.case_ref}/autosave", headers=BEACON).status_code == 405
    assert client.post(f"/api/image/{view.case_ref}/0", headers=BEACON).status_code == 405
    assert client.post(f"/api/reading/{view.case_ref}/autosave", headers=BEACON,
                       json={"text": "saved"}).status_code == 200


def test_images_only_for_their_reader(client, web_study):
    actor, view = _first_case(web_study, client, "res1")
    image = view.images[0]
    response = client.get(f"/api/image/{view.case_ref}/{image.ordinal}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    assert PILImage.open(io.BytesIO(response.content)).mode == "RGB"
    assert "private" in response.headers["cache-control"]
    preview = client.get(f"/api/image/{view.case_ref}/{image.ordinal}/preview")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    assert PILImage.open(io.BytesIO(preview.content)).mode == "L" and "private" in preview.headers["cache-control"]
    assert client.get(f"/api/image/{view.case_ref}/{image.ordinal}/original").status_code == 404
    assert client.get(f"/api/image/{view.case_ref}/999999").status_code == 404
    client.cookies.clear()
    for suffix in ("", "/preview"):
        assert client.get(f"/api/image/{view.case_ref}/{image.ordinal}{suffix}").status_code == 401
    signed_in(client, web_study, "res2")
    for suffix in ("", "/preview"):
        assert client.get(f"/api/image/{view.case_ref}/{image.ordinal}{suffix}").status_code == 404


def test_beacons_need_the_client_header_and_a_same_origin(client, web_study):
    _, view = _first_case(web_study, client, "res1")
    url = f"/api/reading/{view.case_ref}/shown"
    assert client.post(url).status_code == 403
    assert client.post(url, headers={**BEACON, "Origin": "http://evil.example"}).status_code == 403
    first = client.post(url, headers={**BEACON, "Origin": "http://testserver"})
    assert first.status_code == 200
    again = client.post(url, headers=BEACON)
    assert again.json() == first.json(), "the clock starts once"


def test_autosave_and_client_events_are_recorded_then_locked_after_submit(client, web_study):
    actor, view = _first_case(web_study, client, "res1")
    aid = view.case_ref
    client.post(f"/api/reading/{aid}/shown", headers=BEACON)
    assert client.post(f"/api/reading/{aid}/autosave", headers=BEACON, json={"text": "Draft one."}).status_code == 200
    assert reading.case_view(web_study.db, actor, aid).editor_text == "Draft one."
    assert client.post(f"/api/reading/{aid}/autosave", headers=BEACON, json={"text": "a\x00b"}).status_code == 422
    assert client.post(f"/api/reading/{aid}/autosave", headers=BEACON, content=b"not json").status_code == 422
    ok = client.post(f"/api/reading/{aid}/event", headers=BEACON, json={"kind": "visible", "duration_s": 4.5})
    assert ok.status_code == 200
    assert client.post(f"/api/reading/{aid}/event", headers=BEACON, json={"kind": "nap"}).status_code == 422
    assert client.post(f"/api/reading/{aid}/event", headers=BEACON,
                       json={"kind": "idle", "duration_s": -3}).status_code == 422
    reading.submit(web_study.db, actor, aid, "Final.")
    locked = client.post(f"/api/reading/{aid}/autosave", headers=BEACON, json={"text": "late"})
    assert locked.status_code == 409 and locked.json()["kind"] == "AlreadySubmitted"
    row_id = assignment_id_of(web_study.db, aid)
    with web_study.db.read() as session:
        kinds = session.scalars(select(Event.kind).where(Event.assignment_id == row_id).order_by(Event.id)).all()
        payloads = session.scalars(select(Event.payload).where(Event.assignment_id == row_id, Event.kind == "visible")).all()
    assert kinds[:4] == ["opened", "image_shown", "autosave", "visible"]
    assert payloads[0]["duration_s"] == 4.5


def test_beacons_for_another_readers_case_are_not_found(client, web_study):
    _, view = _first_case(web_study, client, "res1")
    signed_in(client, web_study, "res2")
    response = client.post(f"/api/reading/{view.case_ref}/autosave", headers=BEACON, json={"text": "x"})
    assert response.status_code == 404


def test_coordinator_console_sign_in(client, web_study):
    from study_app.services.actors import SYSTEM
    from study_app.services.auth import create_coordinator

    create_coordinator(web_study.db, SYSTEM, "alice", "correct horse battery")
    assert client.get("/console/signin").status_code == 200
    bad = client.post("/console/signin", data={"username": "alice", "password": "wrong"})
    assert bad.status_code == 403 and "wrong password" in bad.text
    good = client.post("/console/signin", data={"username": "alice", "password": "correct horse battery"})
    assert good.status_code == 303 and "HttpOnly" in good.headers["set-cookie"]


def test_the_served_full_copy_round_trips_the_displayed_values(client, web_study):
    from study_app.services.images import case_display_images, unpack_display_image

    actor, view = _first_case(web_study, client, "res1")
    for image, display in case_display_images(web_study.db, actor, view.case_ref):
        served = client.get(f"/api/image/{view.case_ref}/{image.ordinal}").content
        values = unpack_display_image(served, display.meta.offset, display.meta.gain)
        assert values.shape == (display.meta.height, display.meta.width)
        np.testing.assert_array_equal(values, unpack_display_image(display.full, display.meta.offset,
                                                                   display.meta.gain))


def test_a_tab_taking_over_a_case_reads_the_text_the_server_has(client, web_study):
    actor, view = _first_case(web_study, client, "res1")
    url = f"/api/reading/{view.case_ref}/text"
    assert client.get(url).status_code == 403, "the client header is required"
    assert client.get(url, headers=BEACON).json() == {"text": view.editor_text, "status": "in_progress"}
    client.post(f"/api/reading/{view.case_ref}/shown", headers=BEACON)
    client.post(f"/api/reading/{view.case_ref}/autosave", headers=BEACON, json={"text": "typed in the other tab"})
    answer = client.get(url, headers=BEACON)
    assert answer.json()["text"] == "typed in the other tab" and answer.headers["cache-control"] == "no-store"
    signed_in(client, web_study, "res2")
    assert client.get(url, headers=BEACON).status_code == 404


def test_submit_is_the_press_dated_back_by_its_age_and_a_retry_is_not_a_second_submit(client, web_study):
    from datetime import datetime

    actor, view = _first_case(web_study, client, "res1")
    ref = view.case_ref
    client.post(f"/api/reading/{ref}/shown", headers=BEACON)
    with web_study.db.transaction() as session:  # the image has been on screen for 5 s
        from tests.case_refs import assignment_of

        row = assignment_of(session, ref)
        row.first_shown_at = row.first_shown_at - timedelta(seconds=5)
        shown = row.first_shown_at
    url = f"/api/reading/{ref}/submit"
    assert client.post(url, json={"text": "x", "press_id": "p1"}).status_code == 403, "the client header is required"
    refused = client.post(url, headers=BEACON, json={"text": "   ", "press_id": "p1", "age_s": 0})
    assert refused.status_code == 422 and "empty" in refused.json()["error"]
    assert reading.case_view(web_study.db, actor, ref).status == "in_progress", "a refused submit stores nothing"
    bad_age = client.post(url, headers=BEACON, json={"text": "Lungs clear.", "press_id": "p1", "age_s": 5000})
    assert bad_age.status_code == 422
    # The press happened 0.4 s before its request was sent (the browser had to retry).
    first = client.post(url, headers=BEACON, json={"text": "Lungs clear.", "press_id": "p1", "age_s": 0.4,
                                                   "active_s": 1.5})
    answered = datetime.now(shown.tzinfo)
    assert first.status_code == 200
    submitted = datetime.fromisoformat(first.json()["submitted_at"])
    assert shown < submitted <= answered - timedelta(seconds=0.4)
    # The same press again (its first answer lost on the way): the first submission's answer, not a refusal.
    again = client.post(url, headers=BEACON, json={"text": "Lungs clear.", "press_id": "p1", "age_s": 3})
    assert again.status_code == 200 and again.json() == first.json()
    # Another press (a second tab): refused, the first stands.
    other = client.post(url, headers=BEACON, json={"text": "Other tab.", "press_id": "p2"})
    assert other.status_code == 409 and other.json()["kind"] == "AlreadySubmitted"
    row_id = assignment_id_of(web_study.db, ref)
    with web_study.db.read() as session:
        from study_app.store.models import Response

        response = session.scalars(select(Response).where(Response.assignment_id == row_id)).one()
    assert response.final_text == "Lungs clear." and response.active_s == 1.5
    assert response.duration_s == pytest.approx((submitted - shown).total_seconds())


def test_an_invite_opened_again_while_signed_in_as_its_reader_goes_to_the_worklist(client, web_study):
    token = web_study.invites["res1"]
    signed_in(client, web_study, "res1")  # the link is spent now
    for response in (client.get(f"/signin?token={token}"), client.post("/signin", data={"token": token})):
        assert response.status_code == 303 and response.headers["location"] == "/worklist"
    # Another reader's link, or a made-up one, is not waved through: the usual page and refusal.
    other = client.get(f"/signin?token={web_study.invites['res2']}")
    assert other.status_code == 200 and "Sign out reader res1 and sign in" in other.text
    assert client.post("/signin", data={"token": "made-up"}).status_code == 403
    client.cookies.clear()  # signed out: the spent link fails as before
    assert client.post("/signin", data={"token": token}).status_code == 403
