"""Coordinator actions through the services: status, readers, progress, reset with reason, backup; and who may act."""

import re
import threading

import pytest
from sqlalchemy import func, select

from study_app.services import reading
from study_app.services.actors import SYSTEM, Actor, reader_actor
from study_app.services.backup import backup_database
from study_app.services.database import open_database
from study_app.services.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from study_app.services.export import build_tables
from study_app.services.interventions import reset_assignment
from study_app.services.lifecycle import change_status
from study_app.services.progress import study_progress
from study_app.services.readers import add_reader, revoke_reader
from study_app.store.models import Answer, Assignment, Event, Invite, Reader, Response
from tests.case_refs import assignment_id_of


def complete_residents(db) -> None:
    """Every resident case read and submitted through the services."""
    for key in ("res1", "res2"):
        actor = reader(db, key)
        for item in reading.worklist(db, actor).items:
            if item.status in ("submitted", "completed"):
                continue
            view = reading.open_case(db, actor, item.case_ref)
            reading.mark_image_shown(db, actor, item.case_ref)
            result = reading.submit(db, actor, item.case_ref, f"Findings by {key}.")
            if result.status == "submitted":
                reading.save_answers(db, actor, item.case_ref, {q.key: q.options[0]["value"] for q in view.questions})


def reader(db, key):
    with db.read() as s:
        r = s.scalars(select(Reader).where(Reader.reader_key == key)).one()
    return reader_actor(r.id, key)


def complete_first_edit(db, key="res1"):
    actor = reader(db, key)
    item = next(i for i in reading.worklist(db, actor).items if i.task == "edit")
    reading.open_case(db, actor, item.case_ref)
    reading.mark_image_shown(db, actor, item.case_ref)
    reading.autosave(db, actor, item.case_ref, "draft words")
    reading.submit(db, actor, item.case_ref, "Original final text.", active_s=2.0)
    reading.save_answers(db, actor, item.case_ref, {"edit_reason": "none", "indication_applicability": "10",
                                                         "writing_efficiency": "10", "interpretation_efficiency": "5"})
    return actor, item


def test_pause_resume_close_and_reading_follows(demo_study):
    db, _ = demo_study
    res1 = reader(db, "res1")
    assert change_status(db, SYSTEM, "demo", "pause", reason="maintenance").status == "paused"
    with pytest.raises(Conflict, match="the study is paused"):
        reading.open_case(db, res1, reading.worklist(db, res1).items[0].case_ref)
    with pytest.raises(Conflict, match="it cannot pause \\(possible: resume, close\\)"):
        change_status(db, SYSTEM, "demo", "pause")
    assert change_status(db, SYSTEM, "demo", "resume").status == "open"
    assert change_status(db, SYSTEM, "demo", "close").status == "closed"
    with pytest.raises(Conflict, match="possible: nothing"):
        change_status(db, SYSTEM, "demo", "resume")


def test_readers_are_added_only_before_launch(demo_study, fresh_db):
    db, _ = demo_study
    with pytest.raises(Conflict, match="frozen at launch"):
        add_reader(db, SYSTEM, "demo", "att9", "attending")


def test_revoke_cuts_every_link(demo_study):
    db, _ = demo_study
    assert revoke_reader(db, SYSTEM, "demo", "res1") >= 1
    with db.read() as s:
        r = s.scalars(select(Reader).where(Reader.reader_key == "res1")).one()
        assert s.scalar(select(func.count()).select_from(Invite).where(Invite.reader_id == r.id,
                                                                        Invite.revoked_at.is_(None))) == 0
    with pytest.raises(NotFound, match="no reader 'ghost'"):
        revoke_reader(db, SYSTEM, "demo", "ghost")


def test_progress_counts_and_stalled_readers(demo_study):
    db, _ = demo_study
    complete_first_edit(db)
    progress = study_progress(db, SYSTEM, "demo")
    assert progress.completed == 1 and progress.total > 1
    row = progress.by_arm.set_index("arm").loc["resident_edit_model"]
    assert row["completed"] == 1
    assert len(progress.durations) == 1
    # Readers who never came are stalled; res1 just worked and is not.
    assert "res1" not in set(progress.stalled.reader) and "res2" in set(progress.stalled.reader)
    # Counts are whole numbers (the CLI printed 3.0), in the tables and on the command line.
    assert all(str(progress.by_reader[s].dtype).startswith("int") for s in ("completed", "pending", "ready"))
    from click.testing import CliRunner

    from study_app.cli import main

    printed = CliRunner().invoke(main, ["progress", "demo", "--db", db.url]).stdout
    by_arm = printed[printed.index("by arm:"):printed.index("by reader:")]
    assert "resident_edit_model" in by_arm and not re.search(r"\d\.0\b", by_arm)


def test_time_per_case_is_summarised_per_arm_with_tukey_whiskers():
    import pandas as pd

    from study_app.services.progress import StudyProgress

    seconds = [10.0, 20.0, 30.0, 40.0, 50.0, 400.0]
    progress = StudyProgress(by_reader=pd.DataFrame(), by_arm=pd.DataFrame(), stalled=pd.DataFrame(), total=6,
                             completed=6, durations=pd.DataFrame({"reader": "r1", "arm": "a", "duration_s": seconds}))
    [row] = progress.duration_summary.to_dict(orient="records")
    # Quartiles of R's type 7 (numpy's default): 22.5, 35, 47.5; 1.5 IQR above Q3 is 85, so 400 is an outlier.
    assert (row["n"], row["q1"], row["median"], row["q3"]) == (6, 22.5, 35.0, 47.5)
    assert (row["lower"], row["upper"], row["max"]) == (10.0, 50.0, 400.0)


def test_reset_keeps_the_original_in_the_event_log(demo_study):
    db, _ = demo_study
    actor, item = complete_first_edit(db)
    with pytest.raises(InvalidInput, match="needs a reason"):
        reset_assignment(db, SYSTEM, "demo", "res1", item.position, reason="")
    reset_assignment(db, SYSTEM, "demo", "res1", item.position, reason="reader opened the wrong study")
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Response)) == 0
        assert s.scalar(select(func.count()).select_from(Answer)) == 0
        event = s.scalars(select(Event).where(Event.kind == "reset")).one()
    assert event.payload["reason"] == "reader opened the wrong study"
    assert event.payload["response"]["final_text"] == "Original final text."
    assert event.payload["answers"]["edit_reason"] == "none"
    assert event.payload["last_autosave"] == "draft words"
    # The reader reads the case again from the draft, and the clock starts afresh.
    view = reading.open_case(db, actor, item.case_ref)
    assert view.status == "in_progress" and view.first_shown_at is None and view.editor_text != "draft words"
    with pytest.raises(Conflict, match="nothing to reset"):
        reset_assignment(db, SYSTEM, "demo", "res2", 1, reason="no reason at all")


def test_reset_refused_when_the_report_is_already_read_as_a_draft(demo_study):
    db, _ = demo_study
    res = reader(db, "res1")
    item = next(i for i in reading.worklist(db, res).items if i.arm_key == "resident_scratch")
    supplier_id = assignment_id_of(db, item.case_ref)
    complete_residents(db)  # the attendings' round opens when every report it needs is in
    with db.read() as s:
        dependent = s.scalars(select(Assignment).where(
            (Assignment.source_assignment_id == supplier_id) | (Assignment.source_b_assignment_id == supplier_id)
        )).first()
        owner = s.get(Reader, dependent.reader_id)
    reading.open_case(db, reader_actor(owner.id, owner.reader_key), dependent.case_ref)
    with pytest.raises(Conflict, match="already being read by another reader"):
        reset_assignment(db, SYSTEM, "demo", "res1", item.position, reason="typo in the report")


def test_reset_of_a_released_report_holds_the_readers_round_again(demo_study):
    db, _ = demo_study
    res = reader(db, "res1")
    item = next(i for i in reading.worklist(db, res).items if i.arm_key == "resident_scratch")
    supplier_id = assignment_id_of(db, item.case_ref)
    complete_residents(db)
    with db.read() as s:
        dependent = s.scalars(select(Assignment).where(Assignment.source_assignment_id == supplier_id)).first()
        owner = s.get(Reader, dependent.reader_id)
    attending = reader_actor(owner.id, owner.reader_key)
    assert {i.status for i in reading.worklist(db, attending).items} == {"ready"}
    reset_assignment(db, SYSTEM, "demo", "res1", item.position, reason="report written for the wrong case")
    # The whole round is held again, not just the case that lost its draft: holding one case would name it.
    assert {i.status for i in reading.worklist(db, attending).items} == {"pending"}
    rewritten = next(i for i in reading.worklist(db, res).items if i.case_ref == item.case_ref)
    assert rewritten.status == "ready"
    reading.open_case(db, res, item.case_ref)
    reading.mark_image_shown(db, res, item.case_ref)
    reading.submit(db, res, item.case_ref, "Rewritten report.")
    assert {i.status for i in reading.worklist(db, attending).items} == {"ready"}


def test_backup_while_readers_write_restores_to_an_identical_export(sqlite_demo_study, tmp_path):
    db, _ = sqlite_demo_study
    stop = threading.Event()
    actor = reader(db, "res2")
    items = [i for i in reading.worklist(db, actor).items if i.task == "write"]

    def keep_writing():
        reading.open_case(db, actor, items[0].case_ref)
        n = 0
        while not stop.is_set() and n < 500:
            reading.autosave(db, actor, items[0].case_ref, f"typing {n}")
            n += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        result = backup_database(db, SYSTEM, tmp_path / "copy.sqlite")
    finally:
        stop.set()
        writer.join()
    assert result.integrity == "ok" and result.size_bytes > 0
    with pytest.raises(Conflict, match="never overwrites"):
        backup_database(db, SYSTEM, tmp_path / "copy.sqlite")
    restored = open_database(f"sqlite:///{tmp_path / 'copy.sqlite'}")
    copy = build_tables(restored, SYSTEM, "demo")
    # The copy is one moment of the live database: identical except for what was written after it.
    live = build_tables(db, SYSTEM, "demo")
    for name in ("readers", "cases", "drafts"):
        assert copy[name].equals(live[name]), name
    assert len(copy["events"]) <= len(live["events"])
    restored.dispose()


COORDINATOR_ACTIONS = {
    "change_status": lambda db, actor: change_status(db, actor, "demo", "pause"),
    "add_reader": lambda db, actor: add_reader(db, actor, "demo", "x1", "resident"),
    "revoke_reader": lambda db, actor: revoke_reader(db, actor, "demo", "res2"),
    "study_progress": lambda db, actor: study_progress(db, actor, "demo"),
    "reset_assignment": lambda db, actor: reset_assignment(db, actor, "demo", "res2", 1, reason="because I can"),
    "backup_database": lambda db, actor: backup_database(db, actor, "/tmp/never.sqlite"),
    "build_tables": lambda db, actor: build_tables(db, actor, "demo"),
    "rehearse_study": lambda db, actor: _rehearsal().rehearse_study(db, actor, "demo", "/tmp/never-rehearsed"),
    "accept_draft_problems": lambda db, actor: _draft_review().accept_draft_problems(db, actor, "demo", ["demo-001"],
                                                                                     reason="because"),
    "draft_issues": lambda db, actor: _draft_review().draft_issues(db, actor, "demo"),
    "regenerate_drafts": lambda db, actor: _drafting().regenerate_drafts(db, actor, "demo", None, sampling=None,
                                                                         problems_only=True),
    "study_model_revision": lambda db, actor: _drafting().study_model_revision(db, actor, "demo"),
}


def _rehearsal():
    from study_app.services import rehearsal

    return rehearsal


def _draft_review():
    from study_app.services import draft_review

    return draft_review


def _drafting():
    from study_app.services import drafting

    return drafting


@pytest.mark.parametrize("action", sorted(COORDINATOR_ACTIONS))
def test_readers_are_refused_every_coordinator_action(demo_study, action):
    db, _ = demo_study
    with pytest.raises(PermissionDenied, match="only a coordinator"):
        COORDINATOR_ACTIONS[action](db, reader(db, "res1"))


def test_a_coordinator_signed_in_to_the_console_may_act(demo_study):
    db, _ = demo_study
    coordinator = Actor(kind="coordinator", name="alice", coordinator_id=1)
    assert study_progress(db, coordinator, "demo").total > 0
