"""Drafting runs as durable jobs: queued in the database, run by one worker at a time, taken over after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from study_app.services.actors import SYSTEM
from study_app.services.drafting import needed_drafts
from study_app.services.drafting_jobs import (
    LeaseLost,
    cancel_job,
    claim_job,
    enqueue_drafting,
    job_status,
    run_job,
    study_jobs,
    work,
)
from study_app.services.errors import Conflict, InvalidInput
from study_app.store.models import Draft, Event
from tests.fakes.openai_server import serve_openai



def parameters(server, **more) -> dict:
    return {"backend": "vllm-server", "urls": [server.url], "model_revision": "a" * 40, "concurrency": 2, **more}


def stored_drafts(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Draft).where(Draft.source_kind == "model"))


def test_a_queued_job_is_run_by_a_worker_and_one_job_runs_per_study(draft_study):
    db = draft_study
    needed = len(needed_drafts(db, "pilot"))
    with serve_openai() as server:
        job = enqueue_drafting(db, SYSTEM, "pilot", parameters(server))
        assert job.status == "queued" and job.parameters["urls"] == [server.url]
        with pytest.raises(Conflict, match=f"already has drafting job {job.job_id} \\(queued\\)"):
            enqueue_drafting(db, SYSTEM, "pilot", parameters(server))
        assert work(db, once=True) == 1
    done = job_status(db, job.job_id)
    assert done.status == "succeeded" and done.succeeded == needed and done.total == needed == stored_drafts(db)
    assert done.attempts == 1 and done.worker and done.finished_at is not None
    assert work(db, once=True) == 0  # nothing left to claim


def test_bad_parameters_are_refused_before_anything_is_queued(draft_study):
    db = draft_study
    with pytest.raises(InvalidInput, match="not an http\\(s\\) URL"):
        enqueue_drafting(db, SYSTEM, "pilot", {"backend": "vllm-server", "urls": ["gpu:8000"]})
    with pytest.raises(InvalidInput, match="unknown drafting backend 'gpt'"):
        enqueue_drafting(db, SYSTEM, "pilot", {"backend": "gpt"})
    with pytest.raises(InvalidInput, match="unknown drafting parameter"):
        enqueue_drafting(db, SYSTEM, "pilot", {"backend": "vllm-server", "urls": ["http://x:1"], "colour": 1})
    assert study_jobs(db, SYSTEM, "pilot") == []


def test_two_workers_one_job_only_one_runs_it(draft_study):
    db = draft_study
    needed = len(needed_drafts(db, "pilot"))
    with serve_openai(latency_s=0.05) as server:
        job = enqueue_drafting(db, SYSTEM, "pilot", parameters(server))
        ran = []
        workers = [threading.Thread(target=lambda n=n: ran.append(work(db, worker=f"w{n}", once=True, poll_s=0.05)))
                   for n in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        chat_calls = server.chat_calls
    assert sorted(ran) == [0, 1], "one worker ran the job, the other found nothing to claim"
    assert job_status(db, job.job_id).status == "succeeded"
    assert chat_calls == needed == stored_drafts(db), "no request was sent twice"
    with db.read() as s:
        claims = s.scalars(select(Event).where(Event.kind == "drafting_job_claimed")).all()
    assert len(claims) == 1


def test_a_killed_worker_is_taken_over_after_its_lease_and_nothing_is_drafted_twice(draft_study, tmp_path):
    db = draft_study
    needed = len(needed_drafts(db, "pilot"))
    with serve_openai(latency_s=0.3) as server:
        job = enqueue_drafting(db, SYSTEM, "pilot", parameters(server, concurrency=1))
        process = subprocess.Popen(
            [sys.executable, "-c", "from study_app.cli import main; main()", "worker", "--once", "--lease-s", "3",
             "--db", db.url], cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while stored_drafts(db) < 2 and time.monotonic() < deadline:  # mid-run: some drafts stored
                time.sleep(0.1)
        finally:  # SIGKILL: no handler, no goodbye; the lease simply stops being renewed
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        killed_at = stored_drafts(db)
        assert 2 <= killed_at < needed
        running = job_status(db, job.job_id)
        assert running.status == "running" and running.attempts == 1
        # Within the dead worker's lease nobody may take the job; after it, the next worker does.
        assert claim_job(db, "early-bird") is None
        time.sleep(3.5)
        assert work(db, worker="survivor", once=True, lease_s=5, heartbeat_s=0.5) == 1
    done = job_status(db, job.job_id)
    assert done.status == "succeeded" and done.attempts == 2 and done.worker == "survivor"
    assert stored_drafts(db) == needed
    assert done.skipped == killed_at and done.succeeded == needed - killed_at  # it went on where the dead one stopped
    with db.read() as s:
        takeover = s.scalars(select(Event).where(Event.kind == "drafting_job_claimed").order_by(Event.id)).all()[-1]
    assert takeover.payload["taken_over_from"] and takeover.payload["attempt"] == 2


def test_a_cancelled_job_stops_its_worker_at_the_next_heartbeat(draft_study):
    db = draft_study
    with serve_openai(latency_s=0.2) as server:
        job = enqueue_drafting(db, SYSTEM, "pilot", parameters(server, concurrency=1))
        claimed = claim_job(db, "w1", lease_s=30)
        outcome = []

        def run() -> None:
            try:
                run_job(db, claimed, "w1", lease_s=30, heartbeat_s=0.2)
                outcome.append("finished")
            except LeaseLost:
                outcome.append("stopped")

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 30
        while stored_drafts(db) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        cancel_job(db, SYSTEM, job.job_id)
        thread.join(timeout=60)
    assert outcome == ["stopped"]
    assert job_status(db, job.job_id).status == "cancelled"
    with pytest.raises(Conflict, match="only a queued or running job can be cancelled"):
        cancel_job(db, SYSTEM, job.job_id)
