"""Who may do what on the reader side, as a table: (own or another reader's case) x (study open, paused,
closed) x every reader service and HTTP route. One rule (``reading.reader_case``) decides them all."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from study_app.services import images, reading
from study_app.services.actors import SYSTEM
from study_app.services.auth import SESSION_COOKIE
from study_app.services.errors import Conflict, NotFound
from study_app.services.lifecycle import change_status
from study_app.web.server import CLIENT_HEADER, ROUTES

EDIT_ANSWERS = {"edit_reason": "none", "indication_applicability": "0", "writing_efficiency": "0",
                "interpretation_efficiency": "0"}

# action -> a call on (db, actor, cases), where cases has "open" (in progress, image shown) and "submitted"
SERVICES = {
    "open_case": lambda db, a, c: reading.open_case(db, a, c["open"]),
    "case_view": lambda db, a, c: reading.case_view(db, a, c["open"]),
    "mark_image_shown": lambda db, a, c: reading.mark_image_shown(db, a, c["open"]),
    "autosave": lambda db, a, c: reading.autosave(db, a, c["open"], "typing"),
    "client_event": lambda db, a, c: reading.record_client_event(db, a, c["open"], "hidden"),
    "case_display_images": lambda db, a, c: images.case_display_images(db, a, c["open"]),
    "case_image_bytes": lambda db, a, c: images.case_image_bytes(db, a, c["open"], 0),
    "case_image_preview": lambda db, a, c: images.case_image_bytes(db, a, c["open"], 0, "preview"),
    "save_answers": lambda db, a, c: reading.save_answers(db, a, c["submitted"], EDIT_ANSWERS),
    "submit": lambda db, a, c: reading.submit(db, a, c["open"], "Final."),  # last: it changes the case
}
ROUTE_CALLS = {
    "GET image": lambda client, c: client.get(f"/api/image/{c['open2']}/0"),
    "GET preview": lambda client, c: client.get(f"/api/image/{c['open2']}/0/preview"),
    "GET text": lambda client, c: client.get(f"/api/reading/{c['open2']}/text", headers=BEACON),
    "POST shown": lambda client, c: client.post(f"/api/reading/{c['open2']}/shown", headers=BEACON, json={}),
    "POST event": lambda client, c: client.post(f"/api/reading/{c['open2']}/event", headers=BEACON,
                                                json={"kind": "hidden"}),
    "POST autosave": lambda client, c: client.post(f"/api/reading/{c['open2']}/autosave", headers=BEACON,
                                                   json={"text": "typing"}),
    "POST submit": lambda client, c: client.post(f"/api/reading/{c['open2']}/submit", headers=BEACON,
                                                 json={"text": "Final.", "press_id": "p1"}),
}
BEACON = {CLIENT_HEADER: "1"}
STATUSES = {"open": None, "paused": "pause", "closed": "close"}


def prepare(study, actor) -> dict:
    """A reader's cases in each state the actions need: two in progress with the image shown, one submitted."""
    edits = [i.case_ref for i in study.items(actor, task="edit", status="ready")]
    cases = {"open": edits[0], "open2": edits[1], "submitted": edits[2]}
    for name in ("open", "open2", "submitted"):
        reading.open_case(study.db, actor, cases[name])
        reading.mark_image_shown(study.db, actor, cases[name])
    reading.submit(study.db, actor, cases["submitted"], "Submitted before the status changed.")
    return cases


@pytest.mark.parametrize("status", list(STATUSES))
def test_reader_permission_table(web_study, status):
    study = web_study
    own_token, own = study.sign_in("res1")
    mine, theirs = prepare(study, own), prepare(study, study.sign_in("res2")[1])
    if STATUSES[status]:
        change_status(study.db, SYSTEM, "demo", STATUSES[status], reason="permission table")
    outcomes = {}
    for action, call in SERVICES.items():
        for whose, cases in (("foreign", theirs), ("own", mine)):
            try:
                call(study.db, own, cases)
                outcomes[(action, whose)] = "allowed"
            except NotFound as error:
                assert str(error) == "no such case in your worklist"  # the same words for every foreign case
                outcomes[(action, whose)] = "not found"
            except Conflict as error:
                assert f"the study is {status}" in str(error)
                outcomes[(action, whose)] = "refused: not open"
    with TestClient(Starlette(routes=ROUTES), base_url="http://testserver") as client:
        client.cookies.set(SESSION_COOKIE, own_token)
        for action, call in ROUTE_CALLS.items():
            for whose, cases in (("foreign", theirs), ("own", mine)):
                outcomes[(action, whose)] = call(client, cases).status_code
    expected_own_service = "allowed" if status == "open" else "refused: not open"
    expected = {**{(a, "foreign"): "not found" for a in SERVICES}, **{(a, "own"): expected_own_service for a in SERVICES},
                **{(a, "foreign"): 404 for a in ROUTE_CALLS},
                **{(a, "own"): 200 if status == "open" else 409 for a in ROUTE_CALLS}}
    assert outcomes == expected
