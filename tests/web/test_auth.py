"""Sign-in rules: single-use invite links, hashed and revocable sessions, coordinator passwords."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from study_app.services import auth
from study_app.services.actors import SYSTEM, reader_actor
from study_app.services.errors import Conflict, InvalidInput, PermissionDenied
from study_app.services.invites import hash_token, issue_invites
from study_app.store.models import Coordinator, Invite, WebSession, utcnow


def test_invite_becomes_a_session_once(web_study):
    token, actor = web_study.sign_in("res1")
    assert actor.kind == "reader" and actor.name == "res1"
    assert auth.actor_for_session(web_study.db, token) == actor
    with pytest.raises(PermissionDenied, match="not valid"):
        web_study.sign_in("res1")


def test_only_hashes_are_stored(web_study):
    token, _ = web_study.sign_in("res1")
    with web_study.db.read() as session:
        stored = session.scalars(select(WebSession.token_hash)).all()
        invites = session.scalars(select(Invite.token_hash)).all()
    assert hash_token(token) in stored and token not in stored
    assert web_study.invites["res1"] not in invites and hash_token(web_study.invites["res1"]) in invites


@pytest.mark.parametrize("token", ["", "x" * 500, "unknown-token"])
def test_bad_tokens_are_refused_alike(web_study, token):
    with pytest.raises(PermissionDenied, match="sign-in link is not valid"):
        auth.exchange_invite(web_study.db, token)


def test_expired_and_replaced_invites_are_refused(web_study):
    with web_study.db.transaction() as session:
        session.execute(
            update(Invite).where(Invite.token_hash == hash_token(web_study.invites["res1"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(PermissionDenied):
        web_study.sign_in("res1")
    old = web_study.invites["res2"]
    fresh = issue_invites(web_study.db, SYSTEM, "demo", ["res2"])[0].token
    with pytest.raises(PermissionDenied):
        auth.exchange_invite(web_study.db, old)
    assert auth.exchange_invite(web_study.db, fresh)[1].name == "res2"


def test_sessions_expire_and_can_be_revoked(web_study):
    token, actor = web_study.sign_in("res1")
    other, _ = web_study.sign_in("res2")
    assert auth.revoke_session(web_study.db, token) is True
    assert auth.revoke_session(web_study.db, token) is False
    assert auth.actor_for_session(web_study.db, token) is None
    assert auth.actor_for_session(web_study.db, other) is not None
    with web_study.db.transaction() as session:
        session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert auth.actor_for_session(web_study.db, other) is None
    assert auth.actor_for_session(web_study.db, None) is None


def test_coordinator_revokes_all_of_a_readers_sessions(web_study):
    token, actor = web_study.sign_in("res1")
    with pytest.raises(PermissionDenied):
        auth.revoke_reader_sessions(web_study.db, actor, actor.reader_id)
    assert auth.revoke_reader_sessions(web_study.db, SYSTEM, actor.reader_id) == 1
    assert auth.actor_for_session(web_study.db, token) is None


def test_coordinator_password_sign_in(web_study):
    with pytest.raises(InvalidInput, match="at least 12"):
        auth.create_coordinator(web_study.db, SYSTEM, "alice", "short")
    with pytest.raises(PermissionDenied):
        auth.create_coordinator(web_study.db, reader_actor(1, "res1"), "mallory", "a long enough password")
    auth.create_coordinator(web_study.db, SYSTEM, "alice", "correct horse battery")
    with pytest.raises(Conflict):
        auth.create_coordinator(web_study.db, SYSTEM, "alice", "another long password")
    with web_study.db.read() as session:
        stored = session.scalars(select(Coordinator.password_hash).where(Coordinator.username == "alice")).one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert auth.verify_coordinator_password(web_study.db, "alice", "wrong password!!") is None
    assert auth.verify_coordinator_password(web_study.db, "bob", "correct horse battery") is None
    token, actor = auth.coordinator_sign_in(web_study.db, "alice", "correct horse battery")
    assert actor.kind == "coordinator" and actor.is_coordinator
    assert auth.actor_for_session(web_study.db, token) == actor
    with pytest.raises(PermissionDenied, match="unknown username or wrong password"):
        auth.coordinator_sign_in(web_study.db, "alice", "nope")
