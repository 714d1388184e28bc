"""Password sign-in throttling: a backoff that doubles per failure, per username and per client address, then a
lockout that only a coordinator (console or CLI) lifts; each lock and unlock is in the audit log.

An attempt is counted as a failure *before* the password is checked, in the same transaction that checks the
waits, so fifty guesses sent at once are counted one after the other: the first few are checked, the rest are
refused without costing an argon2 verification. A correct password clears both counts.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import InvalidInput, NotFound, PermissionDenied
from study_app.services.events import record_event
from study_app.store.models import SignInThrottle, utcnow

# Failures without any wait: a coordinator who mistypes twice is not slowed down.
FREE_FAILURES = 3
# After that, each failure doubles the wait before the next attempt: 1 s, 2 s, 4 s ... up to five minutes.
BACKOFF_BASE_S = 1.0
MAX_BACKOFF_S = 300.0
# Then the account (or the address) is locked until lifted. An address is shared by every browser behind a NAT
# or an untrusted proxy, so it gets more rope than one account (configure trusted proxies: docs/deployment.md).
LOCK_AFTER = {"user": 10, "address": 30}
# Failures older than this are forgotten: a mistyped password last month does not count towards a lock today.
FORGET_AFTER = timedelta(hours=24)
MAX_KEY_CHARS = 128
THROTTLE_ACTOR = Actor(kind="system", name="sign-in throttle")


class SignInThrottled(PermissionDenied):
    """Too many recent failures: wait ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SignInLocked(PermissionDenied):
    """Locked after too many failures, until a coordinator lifts it."""


LOCKED_MESSAGE = ("sign-in is locked after too many failed attempts; another coordinator can unlock it on the "
                  "console's Interventions page, or run `readerstudy coordinator unlock` on the server")


# Waits already decided, kept in this process: a guess that arrives during one is refused without touching the
# database (the database stays the truth; this only saves it from a flood of doomed attempts).
_waits: dict[tuple[str, str], float] = {}
_waits_lock = threading.Lock()
MAX_REMEMBERED_WAITS = 10_000


def _remember_wait(keys, seconds: float) -> None:
    until = time.monotonic() + seconds
    with _waits_lock:
        if len(_waits) > MAX_REMEMBERED_WAITS:
            now = time.monotonic()
            for key in [k for k, t in _waits.items() if t <= now]:
                del _waits[key]
        for key in keys:
            _waits[key] = max(_waits.get(key, 0.0), until)


def refused_now(username: str, address: str) -> SignInThrottled | None:
    """The refusal of an attempt that arrives while a wait already decided for its username or address runs
    (no database work: cheap enough to call for every request before anything else), else None."""
    now = time.monotonic()
    with _waits_lock:
        until = max(_waits.get(("user", _key("user", username)), 0.0),
                    _waits.get(("address", _key("address", address)), 0.0))
    if until <= now:
        return None
    seconds = max(1, math.ceil(until - now))
    return SignInThrottled(f"too many failed sign-ins; wait {seconds} s and try again", seconds)


def forget_waits() -> None:
    """Drop the remembered waits (tests that move the database's clock; the database alone decides then)."""
    with _waits_lock:
        _waits.clear()


def backoff_s(failures: int) -> float:
    """The wait before the next attempt after ``failures`` failures (0 while within the free ones)."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(BACKOFF_BASE_S * 2 ** (failures - FREE_FAILURES), MAX_BACKOFF_S)


def _key(kind: str, value: str) -> str:
    value = (value or "").strip()
    return (value.lower() if kind == "user" else value)[:MAX_KEY_CHARS] or "(empty)"


def _row(session, kind: str, key: str) -> SignInThrottle:
    row = session.scalars(
        select(SignInThrottle).where(SignInThrottle.kind == kind, SignInThrottle.key == key).with_for_update()
    ).first()
    if row is None:
        row = SignInThrottle(kind=kind, key=key, failures=0)
        session.add(row)
        session.flush()
    return row


def begin_attempt(db: Database, username: str, address: str) -> None:
    """Count one password attempt for the username and the address, or refuse it without counting.

    Raises
    ------
    SignInLocked
        The username or the address is locked (the lock is set, and audited, when the count reaches
        ``LOCK_AFTER``).
    SignInThrottled
        The last failure is too recent for the count so far; ``retry_after_s`` says how long to wait.
    """
    refused = refused_now(username, address)
    if refused is not None:
        raise refused
    for attempt in range(2):
        try:
            return _begin_attempt_once(db, username, address)
        except IntegrityError:
            # Two first failures for one key at once (PostgreSQL): the row exists now, count again.
            if attempt:
                raise


def _begin_attempt_once(db: Database, username: str, address: str) -> None:
    waiting: list[tuple[tuple[str, str], float]] = []
    with db.transaction() as session:
        rows = [_row(session, "user", _key("user", username)), _row(session, "address", _key("address", address))]
        # The time once the rows are ours: read before waiting for another attempt's lock, it could precede that
        # attempt's failure and invent a wait.
        now = utcnow()
        wait = 0.0
        for row in rows:
            if row.locked_at is not None:
                raise SignInLocked(LOCKED_MESSAGE)
            if row.last_failure_at is not None and now - row.last_failure_at > FORGET_AFTER:
                row.failures = 0
        for row in rows:
            if row.failures >= LOCK_AFTER[row.kind]:
                row.locked_at = now
                record_event(session, study_id=None, actor=THROTTLE_ACTOR, kind="sign_in_locked",
                             payload={"kind": row.kind, "key": row.key, "failures": row.failures})
        if any(row.locked_at is not None for row in rows):
            # Committed on purpose: the lock must hold even though this attempt is refused.
            locked = True
        else:
            locked = False
            for row in rows:
                if row.last_failure_at is not None and backoff_s(row.failures) > 0:
                    due = row.last_failure_at + timedelta(seconds=backoff_s(row.failures))
                    own_wait = (due - now).total_seconds()
                    if own_wait > 0:
                        waiting.append(((row.kind, row.key), own_wait))
                    wait = max(wait, own_wait)
            if wait <= 0:
                for row in rows:
                    row.failures += 1
                    row.last_failure_at = now
    if locked:
        raise SignInLocked(LOCKED_MESSAGE)
    if wait > 0:
        for key, own_wait in waiting:  # only the count that imposes a wait: the other key stays free
            _remember_wait([key], own_wait)
        seconds = max(1, math.ceil(wait))
        raise SignInThrottled(f"too many failed sign-ins; wait {seconds} s and try again", seconds)


def clear_failures(session, username: str, address: str) -> None:
    """A correct password: both counts start again (inside the sign-in's own transaction)."""
    for kind, value in (("user", username), ("address", address)):
        row = session.scalars(
            select(SignInThrottle).where(SignInThrottle.kind == kind, SignInThrottle.key == _key(kind, value))
        ).first()
        if row is not None and row.locked_at is None:
            row.failures = 0
            row.last_failure_at = None


@dataclass(frozen=True)
class LockedSignIn:
    kind: str  # "user" or "address"
    key: str
    failures: int
    locked_at: datetime


def locked_sign_ins(db: Database, actor: Actor) -> list[LockedSignIn]:
    """Every username and address locked now, oldest first."""
    require_coordinator(actor, "see locked sign-ins")
    with db.read() as session:
        rows = session.scalars(
            select(SignInThrottle).where(SignInThrottle.locked_at.is_not(None)).order_by(SignInThrottle.locked_at)
        ).all()
        return [LockedSignIn(r.kind, r.key, r.failures, r.locked_at) for r in rows]


def unlock_sign_in(db: Database, actor: Actor, *, username: str | None = None, address: str | None = None,
                   reason: str = "") -> LockedSignIn:
    """Lift the lock of a username or of a client address; its failure count starts again. Audited.

    Raises
    ------
    InvalidInput
        Neither or both of ``username`` and ``address`` given.
    NotFound
        That username or address is not locked.
    """
    require_coordinator(actor, "unlock a sign-in")
    if (username is None) == (address is None):
        raise InvalidInput("name either a username or a client address to unlock")
    kind, value = ("user", username) if username is not None else ("address", address)
    key = _key(kind, value)
    with db.transaction() as session:
        row = session.scalars(
            select(SignInThrottle).where(SignInThrottle.kind == kind, SignInThrottle.key == key).with_for_update()
        ).first()
        if row is None or row.locked_at is None:
            raise NotFound(f"{'username' if kind == 'user' else 'address'} '{value}' is not locked")
        lifted = LockedSignIn(row.kind, row.key, row.failures, row.locked_at)
        with _waits_lock:
            _waits.pop((kind, key), None)
        row.locked_at = None
        row.failures = 0
        row.last_failure_at = None
        record_event(session, study_id=None, actor=actor, kind="sign_in_unlocked",
                     payload={"kind": kind, "key": key, "failures": lifted.failures, "reason": reason[:500]})
    return lifted
