"""Password sign-in throttling: doubling backoff per username and per address, lockout, audited unlock, and the
bound on concurrent argon2 verifications."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from study_app.services import auth, throttle
from study_app.services.actors import SYSTEM, Actor, reader_actor
from study_app.services.errors import NotFound, PermissionDenied, Unavailable
from study_app.services.throttle import SignInLocked, SignInThrottled, backoff_s
from study_app.store.models import Event, SignInThrottle, utcnow

PASSWORD = "correct horse battery staple"
COORDINATOR = Actor(kind="coordinator", name="alice", coordinator_id=1)


@pytest.fixture
def accounts(fresh_db):
    auth.create_coordinator(fresh_db, SYSTEM, "alice", PASSWORD)
    auth.create_coordinator(fresh_db, SYSTEM, "bob", PASSWORD)
    return fresh_db


@pytest.fixture(autouse=True)
def no_remembered_waits():
    throttle.forget_waits()
    yield
    throttle.forget_waits()


def age_failures(db, seconds: float) -> None:
    """Move every recorded failure into the past, as if the attacker had waited that long (the waits this
    process remembers are real time, so they go too)."""
    throttle.forget_waits()
    with db.transaction() as session:
        for row in session.scalars(select(SignInThrottle)):
            if row.last_failure_at is not None:
                row.last_failure_at -= timedelta(seconds=seconds)


def fail(db, username="alice", address="10.0.0.9"):
    with pytest.raises(PermissionDenied) as refused:
        auth.coordinator_sign_in(db, username, "wrong password!!", address=address)
    return refused.value


def test_backoff_doubles_after_the_free_failures():
    assert [backoff_s(n) for n in range(throttle.FREE_FAILURES)] == [0.0] * throttle.FREE_FAILURES
    waits = [backoff_s(n) for n in range(throttle.FREE_FAILURES, throttle.FREE_FAILURES + 5)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert backoff_s(100) == throttle.MAX_BACKOFF_S


def test_failures_are_slowed_down_then_locked_and_the_right_password_waits_too(accounts):
    db = accounts
    for _ in range(throttle.FREE_FAILURES):
        assert type(fail(db)) is PermissionDenied  # checked: a plain wrong password
    throttled = fail(db)
    assert isinstance(throttled, SignInThrottled) and throttled.retry_after_s == 1
    with pytest.raises(SignInThrottled):  # the right password is not even checked while the wait runs
        auth.coordinator_sign_in(db, "alice", PASSWORD, address="10.0.0.9")
    for _ in range(throttle.LOCK_AFTER["user"] - throttle.FREE_FAILURES):
        age_failures(db, throttle.MAX_BACKOFF_S)
        assert type(fail(db, address=f"10.0.1.{_}")) is PermissionDenied  # new addresses: the user count locks
    age_failures(db, throttle.MAX_BACKOFF_S)
    assert isinstance(fail(db, address="10.9.9.9"), SignInLocked)
    with pytest.raises(SignInLocked):
        auth.coordinator_sign_in(db, "alice", PASSWORD, address="10.9.9.9")
    # Another account from a clean address is not affected.
    token, actor = auth.coordinator_sign_in(db, "bob", PASSWORD, address="10.8.8.8")
    assert actor.name == "bob" and auth.actor_for_session(db, token) == actor
    with db.read() as session:
        locked = session.scalars(select(Event).where(Event.kind == "sign_in_locked")).all()
    assert [(e.payload["kind"], e.payload["key"]) for e in locked] == [("user", "alice")]
    assert locked[0].actor == "system:sign-in throttle"


def test_an_address_guessing_many_names_is_locked_too(accounts):
    db = accounts
    for n in range(throttle.LOCK_AFTER["address"]):
        age_failures(db, throttle.MAX_BACKOFF_S)
        assert type(fail(db, username=f"guess{n}", address="192.0.2.1")) is PermissionDenied
    age_failures(db, throttle.MAX_BACKOFF_S)
    assert isinstance(fail(db, username="alice", address="192.0.2.1"), SignInLocked)
    assert auth.coordinator_sign_in(db, "alice", PASSWORD, address="192.0.2.2")[1].name == "alice"


def test_a_correct_password_clears_the_counts_and_old_failures_are_forgotten(accounts):
    db = accounts
    for _ in range(throttle.FREE_FAILURES):
        fail(db)
    age_failures(db, 5)
    auth.coordinator_sign_in(db, "alice", PASSWORD, address="10.0.0.9")
    for _ in range(throttle.FREE_FAILURES):
        assert type(fail(db)) is PermissionDenied  # the free failures are free again
    age_failures(db, throttle.FORGET_AFTER.total_seconds() + 1)
    assert type(fail(db)) is PermissionDenied  # a day later the count starts over


def test_unlock_by_a_coordinator_or_the_cli_is_audited(accounts, monkeypatch):
    db = accounts
    with db.transaction() as session:
        session.add(SignInThrottle(kind="user", key="alice", failures=12, locked_at=utcnow()))
        session.add(SignInThrottle(kind="address", key="10.0.0.9", failures=40, locked_at=utcnow()))
    assert {(x.kind, x.key) for x in throttle.locked_sign_ins(db, COORDINATOR)} == {("user", "alice"),
                                                                                  ("address", "10.0.0.9")}
    lifted = throttle.unlock_sign_in(db, COORDINATOR, username="Alice", reason="called me")
    assert (lifted.kind, lifted.key, lifted.failures) == ("user", "alice", 12)
    with pytest.raises(NotFound, match="is not locked"):
        throttle.unlock_sign_in(db, COORDINATOR, username="alice")
    from study_app.cli import main

    monkeypatch.setenv("READERSTUDY_DB", db.url)
    runner = CliRunner()
    listed = runner.invoke(main, ["coordinator", "locked"])
    assert listed.exit_code == 0 and "address\t10.0.0.9\t40 failures" in listed.output
    done = runner.invoke(main, ["coordinator", "unlock", "--address", "10.0.0.9", "--reason", "our proxy"])
    assert done.exit_code == 0 and done.output == "address '10.0.0.9' unlocked (it had 40 failed sign-ins)\n"
    again = runner.invoke(main, ["coordinator", "unlock", "--address", "10.0.0.9"])
    assert again.exit_code == 2 and again.output == "error: address '10.0.0.9' is not locked\n"
    assert auth.coordinator_sign_in(db, "alice", PASSWORD, address="10.0.0.9")[1].name == "alice"
    with db.read() as session:
        events = session.scalars(select(Event).where(Event.kind == "sign_in_unlocked").order_by(Event.id)).all()
    assert [(e.actor, e.payload["key"], e.payload["reason"]) for e in events] == [
        ("coordinator:alice", "alice", "called me"), ("system:cli", "10.0.0.9", "our proxy")]


@pytest.mark.parametrize("call", ["locked_sign_ins", "unlock_sign_in"])
@pytest.mark.parametrize(("actor", "allowed"), [(COORDINATOR, True), (SYSTEM, True), (reader_actor(1, "res1"), False)],
                         ids=["coordinator", "system", "reader"])
def test_permission_table(accounts, call, actor, allowed):
    with accounts.transaction() as session:
        session.add(SignInThrottle(kind="user", key="bob", failures=12, locked_at=utcnow()))
    run = {"locked_sign_ins": lambda: throttle.locked_sign_ins(accounts, actor),
           "unlock_sign_in": lambda: throttle.unlock_sign_in(accounts, actor, username="bob")}[call]
    if allowed:
        run()
    else:
        with pytest.raises(PermissionDenied):
            run()


def test_fifty_parallel_guesses_cost_a_few_verifications_and_at_most_two_at_once(accounts, monkeypatch):
    db = accounts
    running = peak = calls = 0
    lock = threading.Lock()
    real = auth._hasher

    def counting_verify(stored, password):
        nonlocal running, peak, calls
        with lock:
            running += 1
            calls += 1
            peak = max(peak, running)
        try:
            return real.verify(stored, password)
        finally:
            with lock:
                running -= 1

    class CountingHasher:  # PasswordHasher has slots: wrap it rather than patch it
        verify = staticmethod(counting_verify)
        check_needs_rehash = staticmethod(real.check_needs_rehash)

    monkeypatch.setattr(auth, "_hasher", CountingHasher())

    def guess(n):
        try:
            auth.coordinator_sign_in(db, "alice", f"guess number {n}", address="203.0.113.5")
        except PermissionDenied as error:
            return type(error).__name__
        return "signed in"

    with ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(guess, range(50)))
    assert outcomes.count("PermissionDenied") == throttle.FREE_FAILURES
    assert outcomes.count("SignInThrottled") == 50 - throttle.FREE_FAILURES
    assert calls == throttle.FREE_FAILURES and peak <= auth.MAX_CONCURRENT_VERIFICATIONS
    # From many addresses and usernames at once the throttle lets them through; the bound still holds.
    calls = peak = 0
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda n: pytest.raises(PermissionDenied, auth.coordinator_sign_in, db, f"u{n}", "x" * 12,
                                              address=f"198.51.100.{n}"), range(12)))
    assert calls == 12 and peak <= auth.MAX_CONCURRENT_VERIFICATIONS


def test_verifications_beyond_the_wait_are_refused_as_busy(accounts, monkeypatch):
    monkeypatch.setattr(auth, "VERIFICATION_WAIT_S", 0.01)
    taken = [auth._verification_slots.acquire() for _ in range(auth.MAX_CONCURRENT_VERIFICATIONS)]
    try:
        with pytest.raises(Unavailable, match="busy checking other sign-ins"):
            auth.coordinator_sign_in(accounts, "alice", PASSWORD, address="10.0.0.1")
    finally:
        for _ in taken:
            auth._verification_slots.release()
    assert auth.coordinator_sign_in(accounts, "alice", PASSWORD, address="10.0.0.1")[1].name == "alice"


def test_a_wait_already_decided_is_refused_without_the_database_and_only_for_its_key(accounts, monkeypatch):
    db = accounts
    for n in range(throttle.FREE_FAILURES):  # alice fails from three addresses: only her own count waits
        fail(db, address=f"10.1.0.{n}")
    assert isinstance(fail(db, address="10.1.0.9"), SignInThrottled)

    def no_database():
        raise AssertionError("the database was used for a guess already refused")

    monkeypatch.setattr(db, "transaction", no_database)
    with pytest.raises(SignInThrottled):
        auth.coordinator_sign_in(db, "alice", PASSWORD, address="10.1.0.50")
    assert throttle.refused_now("alice", "anywhere") is not None
    assert throttle.refused_now("bob", "10.1.0.9") is None, "the address imposed no wait"
