"""Sign-in rules: invite links become browser sessions, coordinators use passwords; only hashes are stored."""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, select, update

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services import throttle
from study_app.services.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unavailable
from study_app.services.events import record_event
from study_app.services.invites import hash_token
from study_app.store.models import Coordinator, Invite, Reader, WebSession, utcnow

SESSION_COOKIE = "readerstudy_session"
# A reader works through a study over weeks; a session outlives a browser restart but not the study.
READER_SESSION_DAYS = 30
# A coordinator session can change a study, so it lasts a working day.
COORDINATOR_SESSION_HOURS = 12
MIN_PASSWORD_CHARS = 12
MAX_TOKEN_CHARS = 200

_hasher = PasswordHasher()
# Each argon2 verification takes 64 MiB and a core for ~0.1 s. However many sign-ins arrive, at most this many
# run at once, so guessing cannot take the memory or the CPU that readers' pages need.
MAX_CONCURRENT_VERIFICATIONS = 2
VERIFICATION_WAIT_S = 10.0
_verification_slots = threading.BoundedSemaphore(MAX_CONCURRENT_VERIFICATIONS)
# Verifying against this when the user is unknown costs the same as a real check: timing reveals no usernames.
_DUMMY_HASH = _hasher.hash("not a real password, only a timing equaliser")


def _new_session(session, *, reader_id: int | None = None, coordinator_id: int | None = None,
                 lifetime: timedelta) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(token_hash=hash_token(token), reader_id=reader_id, coordinator_id=coordinator_id,
                   created_at=now, expires_at=now + lifetime)
    )
    return token


def invite_holder(db: Database, token: str) -> str | None:
    """The reader key a still-usable invite belongs to, without spending it (None for any unusable token).

    The sign-in page names the link's reader when the browser is signed in as someone else, so that a
    swap of identities is never silent.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    with db.read() as session:
        invite = session.scalars(select(Invite).where(Invite.token_hash == hash_token(token))).first()
        if invite is None or invite.used_at is not None or invite.revoked_at is not None or invite.expires_at <= utcnow():
            return None
        return session.get(Reader, invite.reader_id).reader_key


def invite_is_for(db: Database, token: str, actor: Actor | None) -> bool:
    """Whether a personal link (usable, spent or expired) is the signed-in reader's own.

    Opening one's own link again while signed in is not a failed sign-in: the browser already is that reader.
    Only ever compared with the caller's own session, so it tells nobody whose another link is.
    """
    if actor is None or actor.kind != "reader" or not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        return False
    with db.read() as session:
        invite = session.scalars(select(Invite).where(Invite.token_hash == hash_token(token))).first()
        return invite is not None and invite.reader_id == actor.reader_id


def exchange_invite(db: Database, token: str, *, previous_session: str | None = None) -> tuple[str, Actor]:
    """Trade a reader's invite token for a new browser session; the invite cannot be used again.

    Parameters
    ----------
    db : Database
        The study database.
    token : str
        The ``token`` of the personal link ``{base}/signin?token=...``.
    previous_session : str, optional
        The browser's current session cookie, revoked in the same transaction (the reader confirmed the swap).

    Returns
    -------
    session_token : str
        The value of the session cookie (only its hash is stored).
    actor : Actor
        The signed-in reader.

    Raises
    ------
    PermissionDenied
        When the token is unknown, already used, revoked or expired; the message does not say which,
        so a guessed token learns nothing.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise PermissionDenied("this sign-in link is not valid; ask your study coordinator for a new one")
    with db.transaction() as session:
        invite = session.scalars(
            select(Invite).where(Invite.token_hash == hash_token(token)).with_for_update()
        ).first()
        now = utcnow()
        if invite is None or invite.used_at is not None or invite.revoked_at is not None or invite.expires_at <= now:
            raise PermissionDenied(
                "this sign-in link is not valid (already used, replaced or expired); ask your study coordinator "
                "for a new one"
            )
        # Conditional update: two browsers racing on one link, only one gets a session.
        claimed = session.execute(
            update(Invite).where(Invite.id == invite.id, Invite.used_at.is_(None)).values(used_at=now)
        ).rowcount
        if claimed != 1:
            raise PermissionDenied("this sign-in link has already been used; ask your study coordinator for a new one")
        reader = session.get(Reader, invite.reader_id)
        if previous_session and len(previous_session) <= MAX_TOKEN_CHARS:
            session.execute(
                update(WebSession)
                .where(WebSession.token_hash == hash_token(previous_session), WebSession.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        session_token = _new_session(session, reader_id=reader.id, lifetime=timedelta(days=READER_SESSION_DAYS))
        actor = Actor(kind="reader", name=reader.reader_key, reader_id=reader.id)
        record_event(session, study_id=reader.study_id, actor=actor, kind="signed_in", reader_id=reader.id)
    return session_token, actor


# Built once: constructing the statement cost as much as running it (P8).
_SESSION_OF_TOKEN = (
    select(WebSession.revoked_at, WebSession.expires_at, WebSession.reader_id, Reader.reader_key,
           WebSession.coordinator_id, Coordinator.username)
    .outerjoin(Reader, Reader.id == WebSession.reader_id)
    .outerjoin(Coordinator, Coordinator.id == WebSession.coordinator_id)
    .where(WebSession.token_hash == bindparam("token_hash"))
)


def actor_for_session(db: Database, session_token: str | None) -> Actor | None:
    """The reader or coordinator a session cookie belongs to, or None when it is missing, revoked or expired.

    Parameters
    ----------
    db : Database
        The study database.
    session_token : str or None
        The cookie value.

    Returns
    -------
    Actor or None
    """
    if not session_token or not isinstance(session_token, str) or len(session_token) > MAX_TOKEN_CHARS:
        return None
    # One prepared query on a Core connection: it runs on every rerun of every page and every reader request.
    with db.core(write=False) as connection:
        row = connection.execute(_SESSION_OF_TOKEN, {"token_hash": hash_token(session_token)}).first()
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    if row.reader_id is not None:
        return Actor(kind="reader", name=row.reader_key, reader_id=row.reader_id)
    return Actor(kind="coordinator", name=row.username, coordinator_id=row.coordinator_id)


def revoke_session(db: Database, session_token: str) -> bool:
    """Sign a browser out: its session stops working at once. Returns False when there was nothing to revoke."""
    if not session_token or len(session_token) > MAX_TOKEN_CHARS:
        return False
    with db.transaction() as session:
        done = session.execute(
            update(WebSession)
            .where(WebSession.token_hash == hash_token(session_token), WebSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ).rowcount
    return done == 1


def revoke_reader_sessions(db: Database, actor: Actor, reader_id: int) -> int:
    """A coordinator signs a reader out everywhere (lost laptop, wrong person). Returns how many were revoked."""
    require_coordinator(actor, "revoke a reader's sessions")
    with db.transaction() as session:
        return session.execute(
            update(WebSession)
            .where(WebSession.reader_id == reader_id, WebSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ).rowcount


def create_coordinator(db: Database, actor: Actor, username: str, password: str) -> int:
    """Register a coordinator account with an argon2id password hash. Returns its id.

    Raises
    ------
    InvalidInput
        Empty username, or a password shorter than ``MIN_PASSWORD_CHARS``.
    Conflict
        The username is taken.
    """
    require_coordinator(actor, "create a coordinator account")
    username = (username or "").strip()
    if not username or len(username) > 64:
        raise InvalidInput("the username must be 1 to 64 characters")
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"the password must be at least {MIN_PASSWORD_CHARS} characters")
    with db.transaction() as session:
        if session.scalars(select(Coordinator.id).where(Coordinator.username == username)).first() is not None:
            raise Conflict(f"a coordinator '{username}' already exists")
        coordinator = Coordinator(username=username, password_hash=_hasher.hash(password))
        session.add(coordinator)
        session.flush()
        return coordinator.id


def set_coordinator_password(db: Database, actor: Actor, username: str, password: str) -> None:
    """Replace a coordinator's password; their open console sessions are signed out."""
    require_coordinator(actor, "set a coordinator's password")
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"the password must be at least {MIN_PASSWORD_CHARS} characters")
    with db.transaction() as session:
        coordinator = session.scalars(select(Coordinator).where(Coordinator.username == username)).first()
        if coordinator is None:
            raise NotFound(f"no coordinator '{username}'")
        coordinator.password_hash = _hasher.hash(password)
        session.execute(
            update(WebSession)
            .where(WebSession.coordinator_id == coordinator.id, WebSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


def verify_coordinator_password(db: Database, username: str, password: str) -> Actor | None:
    """Check a coordinator's password; the Actor when it matches, else None (unknown user or wrong password)."""
    with db.read() as session:
        coordinator = session.scalars(select(Coordinator).where(Coordinator.username == (username or ""))).first()
    stored = coordinator.password_hash if coordinator is not None else _DUMMY_HASH
    if not _verification_slots.acquire(timeout=VERIFICATION_WAIT_S):
        raise Unavailable("the server is busy checking other sign-ins; try again in a minute")
    try:
        _hasher.verify(stored, password or "")
    except (VerificationError, InvalidHashError):
        return None
    finally:
        _verification_slots.release()
    if coordinator is None:
        return None
    if _hasher.check_needs_rehash(stored):
        with db.transaction() as session:
            session.get(Coordinator, coordinator.id).password_hash = _hasher.hash(password)
    return Actor(kind="coordinator", name=coordinator.username, coordinator_id=coordinator.id)


def coordinator_sign_in(db: Database, username: str, password: str, *, address: str = "unknown",
                        previous_session: str | None = None) -> tuple[str, Actor]:
    """Password sign-in for the console: a new session token, or PermissionDenied with one neutral message.

    Parameters
    ----------
    db : Database
    username, password : str
        As typed.
    address : str
        The client's address (after trusted proxies), throttled like the username.
    previous_session : str, optional
        The browser's current session cookie, revoked with the sign-in (its user confirmed the swap).

    Raises
    ------
    PermissionDenied
        Unknown username or wrong password (one message for both).
    throttle.SignInThrottled, throttle.SignInLocked
        Too many recent failures for the username or the address (see ``study_app.services.throttle``);
        the password was not checked.
    Unavailable
        Too many sign-ins are being checked at once; the password was not checked.
    """
    if not isinstance(password, str) or len(password) > 1024:
        raise PermissionDenied("unknown username or wrong password")
    throttle.begin_attempt(db, username, address)
    actor = verify_coordinator_password(db, username, password)
    if actor is None:
        raise PermissionDenied("unknown username or wrong password")
    with db.transaction() as session:
        throttle.clear_failures(session, username, address)
        if previous_session and len(previous_session) <= MAX_TOKEN_CHARS:
            session.execute(
                update(WebSession)
                .where(WebSession.token_hash == hash_token(previous_session), WebSession.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        token = _new_session(
            session, coordinator_id=actor.coordinator_id, lifetime=timedelta(hours=COORDINATOR_SESSION_HOURS)
        )
        record_event(session, study_id=None, actor=actor, kind="signed_in")
    return token, actor
