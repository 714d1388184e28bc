"""Races and crashes through the services: one winner, a clear message for the other, nothing acknowledged lost."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

from sqlalchemy import select, text

from study_app.services import reading
from study_app.services.actors import SYSTEM, reader_actor
from study_app.services.database import open_database
from study_app.services.errors import AlreadySubmitted, Conflict
from study_app.store.models import Assignment, Reader, Response
from tests.case_refs import assignment_of


def actor(db, key):
    with db.read() as s:
        r = s.scalars(select(Reader).where(Reader.reader_key == key)).one()
    return reader_actor(r.id, key)


def run_together(*calls):
    """Start the calls at the same instant in threads; return (results, errors)."""
    barrier = threading.Barrier(len(calls))
    results, errors = [], []

    def run(call):
        barrier.wait()
        try:
            results.append(call())
        except Exception as error:  # noqa: BLE001 - the test inspects every outcome
            errors.append(error)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_two_tabs_submitting_one_case_store_one_response(demo_study):
    db, _ = demo_study
    res1 = actor(db, "res1")
    item = next(i for i in reading.worklist(db, res1).items if i.task == "write")
    reading.open_case(db, res1, item.case_ref)
    reading.mark_image_shown(db, res1, item.case_ref)
    # A second tab is a second engine, as a second server process would be.
    other = open_database(db.url)
    try:
        results, errors = run_together(
            lambda: reading.submit(db, res1, item.case_ref, "Tab one."),
            lambda: reading.submit(other, res1, item.case_ref, "Tab two."),
        )
    finally:
        other.dispose()
    assert len(results) == 1 and len(errors) == 1
    assert isinstance(errors[0], AlreadySubmitted) and "already submitted" in str(errors[0])
    with db.read() as s:
        responses = s.scalars(select(Response).where(Response.assignment_id == assignment_of(s, item.case_ref).id)).all()
    assert len(responses) == 1 and responses[0].final_text in ("Tab one.", "Tab two.")


def test_two_coordinators_launching_at_once_one_wins(fresh_db, demo_cohort_dir, tmp_path):
    from study_app.demo import write_demo_readers
    from study_app.designs import shipped_design_path
    from study_app.services.drafting import import_recorded_drafts
    from study_app.services.creation import create_study
    from study_app.services.launch import launch_study

    create_study(fresh_db, SYSTEM, study_id="pilot", design_path=shipped_design_path(),
                 manifest_path=demo_cohort_dir / "manifest.csv",
                 readers_path=write_demo_readers(tmp_path / "r.csv"), seed=1)
    import_recorded_drafts(fresh_db, SYSTEM, "pilot")
    other = open_database(fresh_db.url)
    try:
        results, errors = run_together(lambda: launch_study(fresh_db, SYSTEM, "pilot"),
                                       lambda: launch_study(other, SYSTEM, "pilot"))
    finally:
        other.dispose()
    assert len(results) == 1 and len(errors) == 1
    assert isinstance(errors[0], Conflict) and "already open" in str(errors[0])


SUBMITTER = textwrap.dedent("""
    import sys
    from sqlalchemy import select
    from study_app.services import reading
    from study_app.services.actors import reader_actor
    from study_app.services.database import open_database
    from study_app.store.models import Reader

    db = open_database(sys.argv[1])
    with db.read() as s:
        readers = [(r.id, r.reader_key) for r in s.scalars(select(Reader).where(Reader.role == "attending"))]
    print("READY", flush=True)
    busy = True
    while busy:  # until the test kills it, or there is nothing left to submit
        busy = False
        for rid, key in readers:
            actor = reader_actor(rid, key)
            for item in reading.worklist(db, actor).items:
                if item.status not in ("ready", "in_progress"):
                    continue
                reading.open_case(db, actor, item.case_ref)
                reading.mark_image_shown(db, actor, item.case_ref)
                reading.autosave(db, actor, item.case_ref, "typing")
                reading.submit(db, actor, item.case_ref, None if item.task == "compare" else "Report.")
                print("ACK", item.case_ref, flush=True)
                busy = True
""")


def test_sigkill_during_submits_loses_nothing_acknowledged(demo_study, tmp_path):
    db, _ = demo_study
    # Give the attendings ready work: residents submit, releasing the cases that wait on them.
    for key in ("res1", "res2"):
        a = actor(db, key)
        for item in reading.worklist(db, a).items:
            if item.task == "write":
                reading.open_case(db, a, item.case_ref)
                reading.mark_image_shown(db, a, item.case_ref)
                reading.submit(db, a, item.case_ref, "Resident report.")
    script = tmp_path / "submitter.py"
    script.write_text(SUBMITTER)
    process = subprocess.Popen([sys.executable, str(script), db.url], stdout=subprocess.PIPE, text=True,
                               cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    acknowledged = []
    try:
        assert process.stdout.readline().strip() == "READY"
        deadline = time.monotonic() + 60
        while len(acknowledged) < 6 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("ACK"):
                acknowledged.append(line.split()[1])
        # Kill it mid-stream: the next submit is somewhere between its first statement and its commit.
        time.sleep(0.05)
    finally:  # on every path: a submitter left running would outlive the suite
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert len(acknowledged) >= 6
    with db.read() as s:
        acknowledged = [assignment_of(s, ref).id for ref in acknowledged]
        stored = set(s.scalars(select(Response.assignment_id)))
        submitted = set(s.scalars(select(Assignment.id).where(Assignment.status.in_(("submitted", "completed")))))
        if db.engine.dialect.name == "sqlite":
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    assert set(acknowledged) <= stored
    # Nothing half-written: a response exists exactly for the assignments marked submitted.
    assert stored == submitted
    # The store keeps working after the crash.
    res1 = actor(db, "res1")
    assert reading.worklist(db, res1).done >= 1


def test_two_drafting_runs_while_the_console_reads_store_each_draft_once(fresh_db, demo_cohort_dir, tmp_path):
    """Console and CLI drafting the same study at once, while the Drafts page polls: no duplicate, no error."""
    from study_app.demo import write_demo_readers
    from study_app.designs import shipped_design_path
    from study_app.services.console import vllm_server_backend
    from study_app.services.drafting import drafts_status, generate_drafts, needed_drafts
    from study_app.services.creation import create_study
    from study_app.store.models import Draft
    from tests.fakes.openai_server import serve_openai

    create_study(fresh_db, SYSTEM, study_id="pilot", design_path=shipped_design_path(),
                 manifest_path=demo_cohort_dir / "manifest.csv",
                 readers_path=write_demo_readers(tmp_path / "r.csv"), seed=1)
    needed = len(needed_drafts(fresh_db, "pilot"))
    other = open_database(fresh_db.url)
    done = threading.Event()
    polls: list[int] = []

    def console_reads():
        while not done.is_set():
            polls.append(sum(r.stored for r in drafts_status(other, SYSTEM, "pilot")))
            time.sleep(0.02)

    reader = threading.Thread(target=console_reads)
    try:
        # Slow answers keep both runs in flight over the same cases at the same time.
        with serve_openai(latency_s=0.05) as server:
            reader.start()
            results, errors = run_together(
                lambda: generate_drafts(fresh_db, SYSTEM, "pilot", vllm_server_backend(server.url), concurrency=4),
                lambda: generate_drafts(other, SYSTEM, "pilot", vllm_server_backend(server.url), concurrency=4),
            )
            done.set()
            reader.join()
    finally:
        done.set()
        other.dispose()
    assert errors == []
    assert all(r.failed == 0 for r in results)
    with fresh_db.read() as s:
        keys = s.execute(select(Draft.request_key, Draft.choice_index).where(Draft.source_kind == "model")).all()
    assert len(keys) == needed == len(set(keys))
    assert polls and polls == sorted(polls) and polls[-1] <= needed  # the page only ever sees drafts arrive
    assert all(r.stored for r in drafts_status(fresh_db, SYSTEM, "pilot"))
