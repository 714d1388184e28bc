"""Creating, describing and launching studies through the services, on a real SQLite file."""

import re

import pytest
from sqlalchemy import func, select

from study_app.designs import shipped_design_path
from study_app.demo import write_demo_readers
from study_app.services.actors import SYSTEM, reader_actor
from study_app.services.errors import Conflict, InvalidInput, PermissionDenied
from study_app.services.balance import describe_study
from study_app.services.creation import create_study
from study_app.services.launch import launch_study
from study_app.services.studies import list_studies
from study_app.store.models import Arm, Assignment, Case, Draft, Event, Reader, Study


def count(db, model):
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def create(db, cohort_dir, tmp_path, **overrides):
    readers = write_demo_readers(tmp_path / "readers.csv")
    args = dict(study_id="pilot", design_path=shipped_design_path(), manifest_path=cohort_dir / "manifest.csv",
                readers_path=readers, seed=5)
    args.update(overrides)
    return create_study(db, SYSTEM, **args)


def test_create_study_stores_cohort_readers_and_allocation(fresh_db, demo_cohort_dir, tmp_path):
    summary = create(fresh_db, demo_cohort_dir, tmp_path)
    assert summary.n_cases == 12 and summary.n_readers == 8
    assert summary.status == "draft"
    # Before launch every round waits: each of the CheXOne rounds needs a model draft or a reader's report.
    assert set(summary.by_status) == {"pending"}
    with fresh_db.read() as s:
        assert s.scalar(select(func.count()).select_from(Event).where(Event.kind == "study_created")) == 1
        study = s.get(Study, "pilot")
        assert study.seed == 5 and len(study.design_sha256) == 64


def test_bad_manifest_changes_nothing(fresh_db, cohort_copy, tmp_path):
    (cohort_copy / "manifest.csv").write_text(
        (cohort_copy / "manifest.csv").read_text().replace("PA:", "OBLIQUE:", 1)
    )
    with pytest.raises(InvalidInput, match="OBLIQUE"):
        create(fresh_db, cohort_copy, tmp_path)
    assert count(fresh_db, Study) == 0 and count(fresh_db, Case) == 0


def test_bad_reader_list_names_row_and_column(fresh_db, demo_cohort_dir, tmp_path):
    readers = tmp_path / "bad.csv"
    readers.write_text("reader_id,role\nres1,resident\nres1,attending\n,fellow\n")
    with pytest.raises(InvalidInput) as error:
        create(fresh_db, demo_cohort_dir, tmp_path, readers_path=readers)
    message = str(error.value)
    assert "row 2, column reader_id: 'res1' already on row 1" in message
    assert "row 3, column reader_id: empty" in message
    assert "row 3, column role: 'fellow' is not a role of the design" in message
    assert count(fresh_db, Study) == 0 and count(fresh_db, Reader) == 0


def test_unsatisfiable_design_fails_before_writing(fresh_db, demo_cohort_dir, tmp_path):
    readers = tmp_path / "few.csv"
    readers.write_text("reader_id,role\nres1,resident\nres2,resident\natt1,attending\nrad1,radiologist\nrad2,radiologist\n")
    with pytest.raises(InvalidInput, match="the design cannot be satisfied: constraint distinct_case_per_reader"):
        create(fresh_db, demo_cohort_dir, tmp_path, readers_path=readers)
    assert count(fresh_db, Study) == 0


def test_duplicate_study_id_and_bad_ids_refused(fresh_db, demo_cohort_dir, tmp_path):
    create(fresh_db, demo_cohort_dir, tmp_path)
    with pytest.raises(Conflict, match="already exists"):
        create(fresh_db, demo_cohort_dir, tmp_path)
    with pytest.raises(InvalidInput, match="study id 'Bad Id'"):
        create(fresh_db, demo_cohort_dir, tmp_path, study_id="Bad Id")


def test_readers_cannot_create_or_list_studies(fresh_db, demo_cohort_dir, tmp_path):
    with pytest.raises(PermissionDenied):
        create_study(fresh_db, reader_actor(1), study_id="x", design_path="d", manifest_path="m",
                     readers_path="r", seed=1)
    with pytest.raises(PermissionDenied):
        list_studies(fresh_db, reader_actor(1))


def test_describe_reports_the_balance(fresh_db, demo_cohort_dir, tmp_path):
    create(fresh_db, demo_cohort_dir, tmp_path)
    balance = describe_study(fresh_db, SYSTEM, "pilot")
    per_case = balance.reads_per_case
    assert (per_case["resident_scratch"] == 1).all() and (per_case["attending_compare"] == 1).all()
    assert set(per_case["reasoning_review"]) <= {0, 2}
    per_reader = balance.reads_per_reader
    assert per_reader.loc[["res1", "res2"], "resident_scratch"].sum() == 12
    for _, row in balance.ab_balance.iterrows():
        assert abs(row.model_as_a - row.reader_as_a) <= 1
        assert row.first_half + row.second_half == row.model_as_a + row.reader_as_a
        assert abs(row.model_as_a_first_half - row.first_half / 2) <= 1
    rounds = balance.rounds.set_index("arm")
    assert rounds.loc["attending_edit_model", "round"] == rounds.loc["attending_edit_resident", "round"] == 2
    assert "with attending_edit_resident" in rounds.loc["attending_edit_model", "opens"]
    assert rounds.loc["resident_scratch", "opens"] == "at launch"
    # Before launch nothing is open; every attending's round waits on resident reports and model drafts.
    att = balance.reader_rounds.set_index("reader").loc["att1"]
    assert att["round"] == 2 and att["open"] == 0 and set(att["waits_on"].split(", ")) == {"arm:resident_scratch", "model"}
    # No reader meets a case twice, so the diagonal is each reader's case count.
    assert balance.overlap.loc["res1", "res1"] == per_reader.loc["res1"].sum()


def test_launch_waits_for_drafts_then_freezes(fresh_db, demo_cohort_dir, tmp_path):
    from study_app.services.drafting import import_recorded_drafts

    create(fresh_db, demo_cohort_dir, tmp_path)
    with pytest.raises(Conflict, match="no draft yet"):
        launch_study(fresh_db, SYSTEM, "pilot")
    summary = import_recorded_drafts(fresh_db, SYSTEM, "pilot")
    assert summary.failed == 0 and summary.succeeded > 0
    again = import_recorded_drafts(fresh_db, SYSTEM, "pilot")
    assert again.succeeded == 0 and again.skipped == summary.succeeded  # resumable, no duplicates
    launched = launch_study(fresh_db, SYSTEM, "pilot")
    assert launched.status == "open"
    # Round 1 (residents, reasoning review) is open; every attending arm waits for round 2 together,
    # the model-draft edits included: they open with the resident-draft edits, not before them.
    with fresh_db.read() as s:
        by_arm: dict[str, set] = {}
        for key, status in s.execute(select(Arm.key, Assignment.status).join(Arm, Assignment.arm_id == Arm.id)):
            by_arm.setdefault(key, set()).add(status)
        drafts = s.scalars(select(Draft).where(Draft.source_kind == "model")).all()
    assert by_arm == {"resident_scratch": {"ready"}, "resident_edit_model": {"ready"}, "reasoning_review": {"ready"},
                      "attending_edit_resident": {"pending"}, "attending_edit_model": {"pending"},
                      "attending_compare": {"pending"}}
    assert all(d.model_id and d.input_hash and d.raw_output and d.prompt for d in drafts)
    with pytest.raises(Conflict, match="already open"):
        launch_study(fresh_db, SYSTEM, "pilot")
    with pytest.raises(Conflict, match="drafts are frozen at launch"):
        import_recorded_drafts(fresh_db, SYSTEM, "pilot")


def split_manifest(cohort_dir, first: int):
    import csv

    with open(cohort_dir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    paths = []
    for name, part in (("first.csv", rows[:first]), ("second.csv", rows[first:])):
        with open(cohort_dir / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(part)
        paths.append(cohort_dir / name)
    return paths


def test_cohort_import_adds_cases_and_equals_creating_with_all_at_once(fresh_db, cohort_copy, tmp_path):
    from study_app.services.database import open_database
    from study_app.services.creation import import_cohort

    first, second = split_manifest(cohort_copy, 8)
    create(fresh_db, cohort_copy, tmp_path, manifest_path=first)
    summary = import_cohort(fresh_db, SYSTEM, "pilot", second)
    assert summary.n_cases == 12
    # A second import of the same cases is refused, naming each clash, and changes nothing.
    with pytest.raises(InvalidInput, match="row 1, column case_id: 'demo-009' is already in the study"):
        import_cohort(fresh_db, SYSTEM, "pilot", second)
    assert study_count(fresh_db) == (12, summary.n_assignments)
    # Same allocation as a study created with the whole cohort at once.
    whole = open_database(f"sqlite:///{tmp_path / 'whole.sqlite'}")
    create(whole, cohort_copy, tmp_path)
    a = describe_study(fresh_db, SYSTEM, "pilot").reads_per_reader
    b = describe_study(whole, SYSTEM, "pilot").reads_per_reader
    assert a.equals(b)
    whole.dispose()


def study_count(db):
    with db.read() as s:
        return (s.scalar(select(func.count()).select_from(Case)), s.scalar(select(func.count()).select_from(Assignment)))


def test_cohort_import_refused_after_launch_and_for_a_bad_manifest(demo_study, cohort_copy):
    from study_app.services.creation import import_cohort

    db, _ = demo_study
    before = study_count(db)
    manifest = cohort_copy / "manifest.csv"
    manifest.write_text(re.sub(r"^demo-001,", "extra-001,", manifest.read_text(), flags=re.M))
    with pytest.raises(Conflict, match="frozen at launch"):
        import_cohort(db, SYSTEM, "demo", manifest)
    (cohort_copy / "images" / "demo-002_pa.png").write_bytes(b"")
    with pytest.raises(InvalidInput, match="demo-002"):
        import_cohort(db, SYSTEM, "demo", manifest)
    assert study_count(db) == before
