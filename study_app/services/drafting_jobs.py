"""Drafting runs as jobs in the database: queued by the CLI or the console, run by whichever worker claims them.

A job survives the process that started it. A worker (``readerstudy worker``, and a thread of every
``readerstudy serve`` unless it is told not to) claims a queued job, or a running one whose lease has
expired, by writing its own name and a lease into the job's row in one transaction; it renews the lease
while it works (every heartbeat also records progress) and gives the job up the moment a renewal finds
the row no longer its own. So one worker at a time runs a job, even with several replicas on one database:
claiming is a row lock (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's single writer serialises
``BEGIN IMMEDIATE`` transactions), and a worker that dies simply stops renewing, so another takes the job
over once the lease runs out. Drafting itself is resumable and stores each request once
(``drafting.generate_drafts``), so a job taken over goes on where the dead worker stopped.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import Conflict, InvalidInput, NotFound, ServiceError
from study_app.services.events import record_event
from study_app.services.studies import get_study
from study_app.store.models import DraftingJob, utcnow

# A worker renews its lease every HEARTBEAT_S while it works; a lease not renewed for LEASE_S is dead.
LEASE_S = 60.0
HEARTBEAT_S = 5.0
ACTIVE = ("queued", "running")
PARAMETERS = ("backend", "urls", "served_model_name", "model_id", "model_revision", "mode", "max_tokens",
              "temperature", "concurrency", "ready_timeout_s", "first_response_timeout_s", "api_key_env",
              "regenerate")
# A job's API key is never stored: only the name of the environment variable the worker reads it from.


class LeaseLost(RuntimeError):
    """The job's row is no longer this worker's (its lease expired and another took it, or it was cancelled)."""


@dataclass(frozen=True)
class DraftingJobView:
    """A drafting job as the console and the CLI show it."""

    job_id: int
    study_id: str
    status: str
    parameters: dict
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    lease_expires_at: datetime | None
    attempts: int
    done: int
    total: int | None
    succeeded: int
    skipped: int
    failed: int
    error: str | None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def describe(self) -> str:
        if self.status == "queued":
            return f"drafting job {self.job_id} is queued (since {self.created_at:%Y-%m-%d %H:%M} UTC), waiting for a worker"
        if self.status == "running":
            return (f"drafting job {self.job_id} is running on {self.worker}: {self.done} of "
                    f"{self.total if self.total is not None else '?'} (attempt {self.attempts})")
        if self.status == "succeeded":
            return (f"drafting job {self.job_id} finished: {self.succeeded} generated, {self.skipped} already stored, "
                    f"{self.failed} failed")
        return f"drafting job {self.job_id} {self.status}: {self.error or 'no message'}"


def _view(job: DraftingJob) -> DraftingJobView:
    return DraftingJobView(
        job_id=job.id, study_id=job.study_id, status=job.status, parameters=dict(job.parameters),
        requested_by=job.requested_by, created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at, worker=job.lease_owner, lease_expires_at=job.lease_expires_at,
        attempts=job.attempts, done=job.done, total=job.total, succeeded=job.succeeded, skipped=job.skipped,
        failed=job.failed, error=job.error,
    )


def worker_name() -> str:
    """This process's name as a worker: host, process id and a random part (two threads differ too)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def check_parameters(parameters: dict) -> dict:
    """The job's parameters, complete and checked by building the backend once (no request is sent)."""
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise InvalidInput(f"unknown drafting parameter(s): {', '.join(unknown)}")
    checked = {"backend": "vllm-server", "urls": [], "served_model_name": None, "model_id": None,
               "model_revision": None, "mode": "reasoning", "max_tokens": 1024, "temperature": 0.0,
               "concurrency": 16, "ready_timeout_s": None, "first_response_timeout_s": None, "api_key_env": None,
               "regenerate": None, **parameters}
    if checked["mode"] not in ("reasoning", "instruction"):
        raise InvalidInput(f"mode must be reasoning or instruction, not '{checked['mode']}'")
    regenerate = checked["regenerate"]
    if regenerate is not None:
        # What `drafting.regenerate_drafts` replaces: named cases, and/or every draft with a problem.
        if not isinstance(regenerate, dict) or set(regenerate) - {"case_keys", "problems_only"}:
            raise InvalidInput("regenerate must be {case_keys: [...], problems_only: true|false}")
        checked["regenerate"] = {"case_keys": [str(c) for c in regenerate.get("case_keys") or []],
                                 "problems_only": bool(regenerate.get("problems_only"))}
    if isinstance(checked["urls"], str):
        checked["urls"] = [checked["urls"]]
    backend = backend_of(checked)
    checked["model_id"], checked["model_revision"] = backend.model_id, backend.model_revision
    return checked


def backend_of(parameters: dict):
    """The backend a job's parameters describe (built where every drafting backend is built)."""
    from study_app.services.drafting import drafting_backend

    key_env = parameters.get("api_key_env")
    return drafting_backend(
        parameters["backend"], urls=parameters.get("urls") or None, served_model_name=parameters.get("served_model_name"),
        model_id=parameters.get("model_id"), model_revision=parameters.get("model_revision"),
        concurrency=int(parameters.get("concurrency") or 16), ready_timeout_s=parameters.get("ready_timeout_s"),
        first_response_timeout_s=parameters.get("first_response_timeout_s"),
        api_key=(os.environ.get(key_env) or "") if key_env else None,
    )


def enqueue_drafting(db: Database, actor: Actor, study_id: str, parameters: dict, *,
                     claim_as: str | None = None) -> DraftingJobView:
    """Record a drafting job for the study; with ``claim_as``, the caller (the CLI) also claims it at once.

    One job per study at a time: while one is queued or running, another is refused (Conflict), naming it.
    """
    require_coordinator(actor, "generate drafts")
    checked = check_parameters(parameters)
    with db.transaction() as session:
        study = get_study(session, study_id, for_update=True)
        if study.status != "draft":
            raise Conflict(f"study '{study_id}' is {study.status}: drafts are frozen at launch")
        active = session.scalars(select(DraftingJob).where(DraftingJob.study_id == study_id,
                                                           DraftingJob.status.in_(ACTIVE))).first()
        if active is not None:
            raise Conflict(f"study '{study_id}' already has drafting job {active.id} ({active.status}); it resumes "
                           "by itself on a worker, or cancel it first")
        now = utcnow()
        job = DraftingJob(study_id=study_id, status="queued", parameters=checked, requested_by=actor.audit_name(),
                          created_at=now, attempts=0, done=0, succeeded=0, skipped=0, failed=0)
        if claim_as is not None:
            _take(job, claim_as, now)
        session.add(job)
        session.flush()
        record_event(session, study_id=study_id, actor=actor, kind="drafting_job_queued",
                     payload={"job_id": job.id, "backend": checked["backend"], "model_revision": checked["model_revision"]})
        return _view(job)


def _take(job: DraftingJob, worker: str, now: datetime, lease_s: float = LEASE_S) -> None:
    job.status = "running"
    job.lease_owner = worker
    job.lease_expires_at = now + timedelta(seconds=lease_s)
    job.heartbeat_at = now
    job.started_at = job.started_at or now
    job.attempts += 1


def claim_job(db: Database, worker: str, *, job_id: int | None = None, lease_s: float = LEASE_S) -> DraftingJobView | None:
    """Claim the oldest job that is queued or whose lease expired (or the named one), for ``worker``; None when
    there is none. One transaction with the row locked, so two workers never claim the same job."""
    now = utcnow()
    with db.transaction() as session:
        query = select(DraftingJob).where(
            or_(DraftingJob.status == "queued",
                (DraftingJob.status == "running") & (DraftingJob.lease_expires_at < now))
        ).order_by(DraftingJob.id).limit(1)
        if job_id is not None:
            query = query.where(DraftingJob.id == job_id)
        if db.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        job = session.scalars(query).first()
        if job is None:
            return None
        taken_over = job.status == "running"
        previous = job.lease_owner
        _take(job, worker, now, lease_s)
        record_event(session, study_id=job.study_id, actor=_worker_actor(worker), kind="drafting_job_claimed",
                     payload={"job_id": job.id, "attempt": job.attempts,
                              **({"taken_over_from": previous} if taken_over else {})})
        return _view(job)


def heartbeat(db: Database, job_id: int, worker: str, *, done: int, total: int | None,
              lease_s: float = LEASE_S) -> None:
    """Renew the lease and record progress; raises LeaseLost when the row is no longer this worker's."""
    now = utcnow()
    with db.transaction() as session:
        job = session.get(DraftingJob, job_id, with_for_update=True)
        if job is None or job.status != "running" or job.lease_owner != worker:
            raise LeaseLost(f"drafting job {job_id} is no longer run by {worker}")
        job.lease_expires_at = now + timedelta(seconds=lease_s)
        job.heartbeat_at = now
        job.done, job.total = done, total


def _finish(db: Database, job_id: int, worker: str, *, status: str, summary=None, error: str | None = None) -> None:
    with db.transaction() as session:
        job = session.get(DraftingJob, job_id, with_for_update=True)
        if job is None or job.lease_owner != worker or job.status != "running":
            return  # taken over or cancelled meanwhile: the new owner (or the cancel) says how it ends
        job.status = status
        job.finished_at = utcnow()
        job.lease_expires_at = None
        if summary is not None:
            job.total, job.succeeded, job.skipped, job.failed = (summary.total, summary.succeeded, summary.skipped,
                                                                 summary.failed)
            job.done = summary.total
        job.error = (error or None) and error[:2000]
        record_event(session, study_id=job.study_id, actor=_worker_actor(worker), kind=f"drafting_job_{status}",
                     payload={"job_id": job.id, **({"error": job.error} if job.error else {})})


def _worker_actor(worker: str) -> Actor:
    return Actor(kind="system", name=f"worker:{worker}")


def run_job(db: Database, job: DraftingJobView, worker: str, *, progress=None, lease_s: float = LEASE_S,
            heartbeat_s: float = HEARTBEAT_S) -> DraftingJobView:
    """Run a claimed job to its end (or until its lease is lost), renewing the lease as it goes."""
    from model_runtime import SamplingParams

    from study_app.services.drafting import generate_drafts, regenerate_drafts

    parameters = job.parameters
    last = [0.0]

    def on_progress(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        now = time.monotonic()
        if now - last[0] >= heartbeat_s or done == total:
            last[0] = now
            heartbeat(db, job.job_id, worker, done=done, total=total, lease_s=lease_s)

    # The lease is renewed between results too: a slow first answer must not let the lease run out.
    stop = threading.Event()

    def keep_alive() -> None:
        while not stop.wait(heartbeat_s):
            try:
                with db.read() as session:
                    row = session.get(DraftingJob, job.job_id)
                    done, total = (row.done, row.total) if row is not None else (0, None)
                heartbeat(db, job.job_id, worker, done=done, total=total, lease_s=lease_s)
            except (LeaseLost, ServiceError):
                return

    keeper = threading.Thread(target=keep_alive, name=f"drafting-job-{job.job_id}-lease", daemon=True)
    keeper.start()
    try:
        with db.read() as session:
            seed = get_study(session, job.study_id).seed
        backend = backend_of(parameters)
        sampling = SamplingParams(temperature=float(parameters["temperature"]), max_tokens=int(parameters["max_tokens"]),
                                  seed=seed)
        regenerate = parameters.get("regenerate")
        if regenerate:
            summary = regenerate_drafts(db, _worker_actor(worker), job.study_id, backend, sampling=sampling,
                                        case_keys=regenerate["case_keys"], problems_only=regenerate["problems_only"],
                                        mode=parameters["mode"], concurrency=int(parameters["concurrency"]),
                                        progress=on_progress)
        else:
            summary = generate_drafts(db, _worker_actor(worker), job.study_id, backend, mode=parameters["mode"],
                                      sampling=sampling, concurrency=int(parameters["concurrency"]),
                                      progress=on_progress)
    except LeaseLost:
        stop.set()
        raise
    except ServiceError as error:
        stop.set()
        _finish(db, job.job_id, worker, status="failed", error=str(error))
        raise
    except BaseException as error:  # a crash the process survives; a kill leaves the lease to run out
        stop.set()
        _finish(db, job.job_id, worker, status="failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        stop.set()
        keeper.join(timeout=heartbeat_s + 1)
    _finish(db, job.job_id, worker, status="succeeded", summary=summary)
    return job_status(db, job.job_id)


def job_status(db: Database, job_id: int) -> DraftingJobView:
    with db.read() as session:
        job = session.get(DraftingJob, job_id)
        if job is None:
            raise NotFound(f"no drafting job {job_id}")
        return _view(job)


def study_jobs(db: Database, actor: Actor, study_id: str, *, limit: int = 20) -> list[DraftingJobView]:
    """The study's drafting jobs, newest first."""
    require_coordinator(actor, "see drafting jobs")
    with db.read() as session:
        get_study(session, study_id)
        return [_view(j) for j in session.scalars(select(DraftingJob).where(DraftingJob.study_id == study_id)
                                                  .order_by(DraftingJob.id.desc()).limit(limit))]


def cancel_job(db: Database, actor: Actor, job_id: int) -> DraftingJobView:
    """Cancel a queued or running job; a worker running it stops at its next heartbeat (what it stored stays)."""
    require_coordinator(actor, "cancel a drafting job")
    with db.transaction() as session:
        job = session.get(DraftingJob, job_id, with_for_update=True)
        if job is None:
            raise NotFound(f"no drafting job {job_id}")
        if job.status not in ACTIVE:
            raise Conflict(f"drafting job {job_id} is {job.status}; only a queued or running job can be cancelled")
        job.status = "cancelled"
        job.finished_at = utcnow()
        job.lease_expires_at = None
        record_event(session, study_id=job.study_id, actor=actor, kind="drafting_job_cancelled",
                     payload={"job_id": job.id})
        return _view(job)


def work(db: Database, *, worker: str | None = None, once: bool = False, poll_s: float = 2.0,
         stop: threading.Event | None = None, lease_s: float = LEASE_S, heartbeat_s: float = HEARTBEAT_S,
         log=None) -> int:
    """The worker loop: claim a job, run it, repeat; returns the number of jobs run (``once``: at most one).

    A job that fails is recorded as failed and the loop goes on; a lost lease (taken over, cancelled) leaves the
    job to its new state.
    """
    worker = worker or worker_name()
    stop = stop or threading.Event()
    ran = 0
    while not stop.is_set():
        try:
            job = claim_job(db, worker, lease_s=lease_s)
        except ServiceError as error:  # the database is busy or away: try again later
            if log:
                log(f"worker {worker}: cannot claim a job now ({error})")
            job = None
        if job is None:
            if once:
                return ran
            stop.wait(poll_s)
            continue
        if log:
            log(f"worker {worker}: running drafting job {job.job_id} of study {job.study_id}")
        try:
            run_job(db, job, worker, lease_s=lease_s, heartbeat_s=heartbeat_s)
        except LeaseLost as error:
            if log:
                log(f"worker {worker}: {error}")
        except Exception as error:  # noqa: BLE001 - recorded on the job by run_job; the worker goes on
            if log:
                log(f"worker {worker}: job {job.job_id} failed: {error}")
        ran += 1
        if once:
            return ran
    return ran


def start_worker_thread(db: Database, *, log=None) -> tuple[threading.Thread, threading.Event]:
    """A worker in a daemon thread of this process (``readerstudy serve`` starts one); set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(db,), kwargs={"stop": stop, "log": log}, name="drafting-worker",
                              daemon=True)
    thread.start()
    return thread, stop
