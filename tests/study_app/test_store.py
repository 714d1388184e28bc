"""The store on a real SQLite file: migrations from empty, pragmas, and the invariants the database enforces."""

import sqlite3
from datetime import datetime, timezone

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from study_app.store import current_revision, head_revision, make_engine, upgrade
from study_app.store.models import (
    Answer, Arm, Assignment, Case, Event, Question, Reader, Response, Study, utcnow,
)


@pytest.fixture
def one_assignment(fresh_db):
    """A study with one reader, one case, one arm with one question, and one assignment."""
    with fresh_db.transaction() as s:
        s.add(Study(id="s1", name="S", seed=1, design_name="d", design_toml="", design_sha256="0" * 64,
                    cohort_manifest="m.csv", cohort_root=".", cohort_sha256="0" * 64, settings={}))
        s.flush()
        reader = Reader(study_id="s1", reader_key="r1", role="resident", label="R1")
        case = Case(study_id="s1", case_key="c1", manifest_row=2)
        arm = Arm(study_id="s1", key="scratch", ordinal=0, task="write", role="resident", draft_sources=[],
                  readers_per_case=1)
        s.add_all([reader, case, arm])
        s.flush()
        question = Question(arm_id=arm.id, ordinal=0, key="q", kind="likert", label="Q", options=[])
        assignment = Assignment(study_id="s1", reader_id=reader.id, case_id=case.id, arm_id=arm.id,
                                position=1, status="ready", sessions=0)
        s.add_all([question, assignment])
        s.flush()
        ids = {"reader": reader.id, "case": case.id, "arm": arm.id, "question": question.id,
               "assignment": assignment.id}
    return fresh_db, ids


def test_migrations_from_empty_reach_head_and_match_the_models(database_url):
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    upgrade(engine)  # idempotent
    tables = set(inspect(engine).get_table_names())
    from study_app.store.models import Base
    assert set(Base.metadata.tables) <= tables
    for name, table in Base.metadata.tables.items():
        columns = {c["name"] for c in inspect(engine).get_columns(name)}
        assert columns == {c.name for c in table.columns}, name
    engine.dispose()


def test_sqlite_runs_with_wal_foreign_keys_and_busy_timeout(sqlite_db):
    with sqlite_db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_one_assignment_per_reader_case_arm(one_assignment):
    db, ids = one_assignment
    with pytest.raises(IntegrityError):
        with db.transaction() as s:
            s.add(Assignment(study_id="s1", reader_id=ids["reader"], case_id=ids["case"], arm_id=ids["arm"],
                             position=2, status="ready", sessions=0))


def test_one_response_per_assignment(one_assignment):
    db, ids = one_assignment
    with db.transaction() as s:
        s.add(Response(assignment_id=ids["assignment"], final_text="a", submitted_at=utcnow()))
    with pytest.raises(IntegrityError):
        with db.transaction() as s:
            s.add(Response(assignment_id=ids["assignment"], final_text="b", submitted_at=utcnow()))
    with db.read() as s:
        assert [r.final_text for r in s.query(Response).all()] == ["a"]


def test_one_answer_per_assignment_and_question(one_assignment):
    db, ids = one_assignment
    with db.transaction() as s:
        s.add(Answer(assignment_id=ids["assignment"], question_id=ids["question"], label="Agree", value="5"))
    with pytest.raises(IntegrityError):
        with db.transaction() as s:
            s.add(Answer(assignment_id=ids["assignment"], question_id=ids["question"], label="Agree", value="10"))


def test_orphans_are_refused_by_foreign_keys(one_assignment):
    db, ids = one_assignment
    with pytest.raises(IntegrityError):
        with db.transaction() as s:
            s.add(Response(assignment_id=99999, final_text="x", submitted_at=utcnow()))
    with pytest.raises(IntegrityError):
        with db.transaction() as s:
            s.execute(text("DELETE FROM reader WHERE id = :id"), {"id": ids["reader"]})


def test_status_vocabularies_are_checked(one_assignment):
    db, ids = one_assignment
    with pytest.raises(IntegrityError):
        with db.transaction() as s:
            s.execute(text("UPDATE assignment SET status = 'lost' WHERE id = :id"), {"id": ids["assignment"]})
    with pytest.raises(IntegrityError):
        with db.transaction() as s:
            s.execute(text("UPDATE study SET status = 'whatever'"))


def test_event_log_is_append_only(fresh_db):
    with fresh_db.transaction() as s:
        s.add(Event(actor="system:test", kind="login", payload={"a": 1}))
    for statement in ("UPDATE event SET kind = 'x'", "DELETE FROM event"):
        with pytest.raises(DBAPIError, match="append-only"):
            with fresh_db.transaction() as s:
                s.execute(text(statement))


def test_event_log_is_append_only_even_outside_the_app(sqlite_db, tmp_path):
    with sqlite_db.transaction() as s:
        s.add(Event(actor="system:test", kind="login", payload={"a": 1}))
    raw = sqlite3.connect(tmp_path / "study.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM event")
    raw.close()


def test_times_come_back_as_aware_utc_and_naive_times_are_refused(one_assignment):
    db, ids = one_assignment
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    with db.transaction() as s:
        s.get(Assignment, ids["assignment"]).opened_at = moment
    with db.read() as s:
        assert s.get(Assignment, ids["assignment"]).opened_at == moment
    with pytest.raises(Exception, match="naive datetime"):
        with db.transaction() as s:
            s.get(Assignment, ids["assignment"]).opened_at = datetime(2026, 1, 1)


def _one_study_reader_and_case(connection, role: str) -> None:
    """A study 's1' with one reader 'r1' of ``role`` and one case 'c1', written as raw SQL: a migration test
    fills a schema older than the models."""
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    connection.execute(text(
        "INSERT INTO study (id, name, seed, status, design_name, design_toml, design_sha256, cohort_manifest, "
        "cohort_root, cohort_sha256, settings, created_at) VALUES ('s1', 'S', 1, 'open', 'd', '', :h, 'm.csv', "
        "'.', :h, '{}', :at)"), {"h": "0" * 64, "at": at})
    connection.execute(text("INSERT INTO reader (study_id, reader_key, role, label, created_at) "
                            "VALUES ('s1', 'r1', :role, 'R', :at)"), {"role": role, "at": at})
    connection.execute(text("INSERT INTO \"case\" (study_id, case_key, manifest_row, indication, comparison) "
                            "VALUES ('s1', 'c1', 2, '', '')"))


def test_reading_sessions_migration_puts_every_existing_assignment_in_session_1(database_url):
    """0006_reading_sessions follows 0005 in one line of migrations, and an assignment allocated before it (no
    [sessions]) is in reading session 1 afterwards."""
    from alembic.script import ScriptDirectory

    from study_app.store.migrate import alembic_config

    engine = make_engine(database_url)
    script = ScriptDirectory.from_config(alembic_config(engine))
    assert script.get_revision("0007_sites").down_revision == "0006_reading_sessions"
    assert script.get_revision("0006_reading_sessions").down_revision == "0005_draft_review_scales"
    upgrade(engine, "0005_draft_review_scales")
    assert "reading_session" not in {c["name"] for c in inspect(engine).get_columns("assignment")}
    with engine.begin() as connection:
        _one_study_reader_and_case(connection, "resident")
        connection.execute(text(
            "INSERT INTO arm (study_id, key, ordinal, task, role, draft_sources, timed, readers_per_case, "
            "instructions, reading_round) VALUES ('s1', 'scratch', 0, 'write', 'resident', '[]', true, 1, '', 1)"))
        connection.execute(text(
            "INSERT INTO assignment (study_id, reader_id, case_id, arm_id, case_ref, position, status, sessions) "
            "SELECT 's1', reader.id, \"case\".id, arm.id, 'ref1', 1, 'ready', 0 FROM reader, \"case\", arm"))
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT reading_session FROM assignment")).scalars().all() == [1]
    engine.dispose()


def test_sites_migration_leaves_existing_readers_and_cases_without_a_site(database_url):
    """0007_sites follows 0006 and adds a site to readers and cases; the readers and cases of a study
    created before it have none (a study without sites is one site)."""
    from alembic.script import ScriptDirectory

    from study_app.store.migrate import alembic_config

    engine = make_engine(database_url)
    script = ScriptDirectory.from_config(alembic_config(engine))
    assert script.get_revision("0007_sites").down_revision == "0006_reading_sessions"
    upgrade(engine, "0006_reading_sessions")
    assert "site" not in {c["name"] for c in inspect(engine).get_columns("reader")}
    assert "site" not in {c["name"] for c in inspect(engine).get_columns("case")}
    with engine.begin() as connection:
        _one_study_reader_and_case(connection, "resident")
    upgrade(engine, "0007_sites")
    assert current_revision(engine) == "0007_sites"
    with engine.begin() as connection:
        assert connection.execute(text("SELECT site FROM reader")).scalars().all() == [None]
        assert connection.execute(text("SELECT site FROM \"case\"")).scalars().all() == [None]
        connection.execute(text("UPDATE reader SET site = 'site_a'"))
        assert connection.execute(text("SELECT site FROM reader")).scalars().all() == ["site_a"]
    engine.dispose()


def test_error_annotation_migration_leaves_existing_arms_unannotated_and_the_database_checks_marks(database_url):
    """0008_draft_error_annotation follows 0007_sites: existing arms ask for no annotation,
    and the database refuses a mark with an unknown category or an error without its significance."""
    from alembic.script import ScriptDirectory

    from study_app.store.migrate import alembic_config

    engine = make_engine(database_url)
    script = ScriptDirectory.from_config(alembic_config(engine))
    assert script.get_revision("0008_draft_error_annotation").down_revision == "0007_sites"
    upgrade(engine, "0007_sites")
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with engine.begin() as connection:
        _one_study_reader_and_case(connection, "attending")
        connection.execute(text(
            "INSERT INTO arm (study_id, key, ordinal, task, role, draft_sources, timed, readers_per_case, "
            "instructions, reading_round) VALUES ('s1', 'edit', 0, 'edit', 'attending', '[]', true, 1, '', 1)"))
        connection.execute(text(
            "INSERT INTO assignment (study_id, reader_id, case_id, arm_id, case_ref, position, status, sessions) "
            "SELECT 's1', reader.id, \"case\".id, arm.id, 'ref1', 1, 'submitted', 1 FROM reader, \"case\", arm"))
    upgrade(engine)
    insert = text("INSERT INTO error_annotation (assignment_id, segment, edit_kind, draft_text, final_text, category, "
                  "significant, annotated_at) SELECT id, :segment, 'insert', '', 'x', :category, :significant, :at "
                  "FROM assignment")
    with engine.begin() as connection:
        assert connection.execute(text("SELECT annotate_errors FROM arm")).scalars().all() == [False]
        connection.execute(insert, {"segment": 1, "category": "omitted_finding", "significant": True, "at": at})
        connection.execute(insert, {"segment": 2, "category": "not_an_error", "significant": None, "at": at})
    for segment, category, significant in ((3, "typo", True), (3, "wrong_severity", None),
                                           (3, "not_an_error", False), (1, "wrong_severity", True)):
        with pytest.raises((IntegrityError, DBAPIError)), engine.begin() as connection:
            connection.execute(insert, {"segment": segment, "category": category, "significant": significant,
                                        "at": at})
    engine.dispose()


def test_detection_migration_keeps_every_arm_and_its_references_and_the_database_checks_labels(database_url):
    """0009_detection is the head and follows 0008: the arm table is rebuilt (its task constraint widens to
    'detect') with the assignments that refer to it intact and no foreign key broken; existing arms show no AI
    output; the database refuses a label outside 0/1, a probability outside [0, 1], an unknown task, a second
    mark of one finding."""
    from alembic.script import ScriptDirectory

    from study_app.store.migrate import alembic_config

    engine = make_engine(database_url)
    script = ScriptDirectory.from_config(alembic_config(engine))
    assert script.get_heads() == ["0009_detection"]
    assert script.get_revision("0009_detection").down_revision == "0008_draft_error_annotation"
    upgrade(engine, "0008_draft_error_annotation")
    with engine.begin() as connection:
        _one_study_reader_and_case(connection, "reader")
        connection.execute(text(
            "INSERT INTO arm (study_id, key, ordinal, task, role, draft_sources, timed, readers_per_case, "
            "instructions, reading_round, annotate_errors) "
            "VALUES ('s1', 'edit', 0, 'edit', 'reader', '[]', true, 1, 'Edit it', 1, true)"))
        connection.execute(text(
            "INSERT INTO assignment (study_id, reader_id, case_id, arm_id, case_ref, position, status, sessions) "
            "SELECT 's1', reader.id, \"case\".id, arm.id, 'ref1', 1, 'ready', 1 FROM reader, \"case\", arm"))
        before = connection.execute(text("SELECT id, key, task, instructions, annotate_errors FROM arm")).all()
    upgrade(engine)
    with engine.begin() as connection:
        assert connection.execute(text("SELECT id, key, task, instructions, annotate_errors FROM arm")).all() == before
        assert connection.execute(text("SELECT ai_shown FROM arm")).scalars().all() == ["none"]
        assert connection.execute(text("SELECT arm_id FROM assignment")).scalars().all() == [before[0][0]]
        if engine.dialect.name == "sqlite":
            assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
        connection.execute(text(
            "INSERT INTO arm (study_id, key, ordinal, task, role, draft_sources, timed, readers_per_case, "
            "instructions, reading_round, ai_shown) "
            "VALUES ('s1', 'aided', 1, 'detect', 'reader', '[]', true, 1, '', 1, 'labels')"))
        connection.execute(text("INSERT INTO case_label (case_id, finding, reference, model_probability) "
                                "SELECT id, 'Edema', 1, 0.25 FROM \"case\""))
        connection.execute(text("INSERT INTO finding_mark (assignment_id, finding, present, confidence, marked_at) "
                                "SELECT id, 'Edema', true, 4, :at FROM assignment"),
                           {"at": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    refused = [
        ("INSERT INTO case_label (case_id, finding, reference) SELECT id, 'Fracture', 2 FROM \"case\"", {}),
        ("INSERT INTO case_label (case_id, finding, model_probability) SELECT id, 'Fracture', 1.5 FROM \"case\"", {}),
        ("INSERT INTO case_label (case_id, finding, reference) SELECT id, 'Edema', 0 FROM \"case\"", {}),
        ("UPDATE arm SET task = 'segment' WHERE key = 'edit'", {}),
        ("UPDATE arm SET ai_shown = 'everything' WHERE key = 'edit'", {}),
        ("INSERT INTO finding_mark (assignment_id, finding, present, confidence, marked_at) "
         "SELECT id, 'Edema', false, 1, :at FROM assignment", {"at": datetime(2026, 1, 1, tzinfo=timezone.utc)}),
    ]
    for statement, parameters in refused:
        with pytest.raises((IntegrityError, DBAPIError)), engine.begin() as connection:
            connection.execute(text(statement), parameters)
    engine.dispose()
