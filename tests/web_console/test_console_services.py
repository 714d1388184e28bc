"""The services behind the console: reader links, launch readiness, audit log, background drafting, and who may call them."""

from __future__ import annotations

import pytest

from study_app.services import console, drafting_jobs, throttle, uploads
from study_app.services.actors import SYSTEM, reader_actor
from study_app.services.drafting import drafts_status
from study_app.services.errors import InvalidInput, PermissionDenied
from study_app.services.invites import issue_invites
from tests.web_console.conftest import COORDINATOR

READER = reader_actor(1, "res1")

# (service call, needs a study id) for the permission table: a reader is refused by every one.
CALLS = {
    "reader_links": lambda db, actor: console.reader_links(db, actor, "demo"),
    "launch_readiness": lambda db, actor: console.launch_readiness(db, actor, "demo"),
    "audit_log": lambda db, actor: console.audit_log(db, actor, "demo"),
    "export_zip": lambda db, actor: console.export_zip(db, actor, "demo"),
    "design_roles": lambda db, actor: console.design_roles(db, actor, "demo"),
    "dress_rehearsal": lambda db, actor: console.dress_rehearsal(db, actor, "pilot"),
    "change_study_status": lambda db, actor: console.change_study_status(db, actor, "demo", "pause", reason="why not"),
    "enqueue_drafting": lambda db, actor: drafting_jobs.cancel_job(db, actor, drafting_jobs.enqueue_drafting(
        db, actor, "pilot", {"backend": "vllm-server", "urls": ["http://127.0.0.1:9"]}).job_id),
    "study_jobs": lambda db, actor: drafting_jobs.study_jobs(db, actor, "pilot"),
    # Issue 13: the locked sign-ins (unlocking them: tests/study_app/test_throttle.py) and the cohort upload.
    "locked_sign_ins": lambda db, actor: throttle.locked_sign_ins(db, actor),
    "staged_uploads": lambda db, actor: uploads.staged_uploads(db, actor),
    "begin_upload": lambda db, actor: uploads.begin_upload(db, actor, "fresh-upload", 10).abort(),
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(("actor", "allowed"), [(COORDINATOR, True), (SYSTEM, True), (READER, False)],
                         ids=["coordinator", "system", "reader"])
def test_permission_table(console_study, call, actor, allowed):
    if allowed:
        CALLS[call](console_study.db, actor)
    else:
        with pytest.raises(PermissionDenied):
            CALLS[call](console_study.db, actor)


def test_reader_links_follow_issue_use_and_revoke(console_study):
    from study_app.services import auth
    from study_app.services.readers import revoke_reader

    db = console_study.db
    assert set(console.reader_links(db, COORDINATOR, "pilot")["link"]) == {"none"}
    token = issue_invites(db, COORDINATOR, "pilot", ["res1"])[0].token
    auth.exchange_invite(db, token)
    issue_invites(db, COORDINATOR, "pilot", ["res2"])
    revoke_reader(db, COORDINATOR, "pilot", "res2")
    links = console.reader_links(db, COORDINATOR, "pilot").set_index("reader")
    assert links.loc["res1", "link"] == "used" and links.loc["res1", "signed_in_at"]
    assert links.loc["res2", "link"] == "revoked"
    assert links.loc["att1", "link"] == "none"


def test_launch_readiness_names_what_is_missing(console_study):
    db = console_study.db
    before = console.launch_readiness(db, COORDINATOR, "pilot")
    assert not before.ok
    assert any("no draft yet" in p for p in before.draft_problems)
    assert len(before.readers_without_link) == 8
    assert before.balance.summary.n_assignments == 68
    launched = console.launch_readiness(db, COORDINATOR, "demo")
    assert launched.status == "open" and not launched.ok and launched.draft_problems == []


def test_status_change_needs_a_reason(console_study):
    with pytest.raises(InvalidInput, match="say why"):
        console.change_study_status(console_study.db, COORDINATOR, "demo", "pause", reason="  ")
    assert console.change_study_status(console_study.db, COORDINATOR, "demo", "pause", reason="holiday").status == \
        "paused"


def test_vllm_backend_needs_an_http_url():
    with pytest.raises(InvalidInput):
        console.vllm_server_backend("gpu-host:8000")
    assert console.vllm_server_backend("http://gpu-host:8000", ready_timeout_s=3).ready_timeout_s == 3
