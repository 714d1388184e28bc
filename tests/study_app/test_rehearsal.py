"""The dress rehearsal (issue #14): a copy of a draft study is launched, read by seeded simulated readers through
the reading services, exported, analysed and reported; the study itself is untouched."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
from click.testing import CliRunner
from sqlalchemy import func, select

from study_app.cli import main
from study_app.designs import shipped_design_path
from study_app.services.actors import SYSTEM
from study_app.services.creation import create_study
from study_app.services.database import open_database
from study_app.services.drafting import import_recorded_drafts, needed_drafts
from study_app.store.models import Assignment, Draft, Event, Response, utcnow



def rehearse(out, *extra):
    result = CliRunner().invoke(main, ["study", "rehearse", "pilot", "--out", str(out), *extra],
                                catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def test_a_rehearsal_runs_the_whole_pipeline_on_a_copy_and_leaves_the_study_untouched(draft_study, tmp_path):
    db = draft_study
    missing = len(needed_drafts(db, "pilot"))
    with db.read() as s:
        drafts_before = s.scalar(select(func.count()).select_from(Draft))
    result = rehearse(tmp_path / "r", "--json", str(tmp_path / "summary.json"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    # What the real launch would refuse comes first, then what the rehearsal made up to go on.
    assert out.index("the real launch would refuse the study now:") < out.index("made up for the rehearsal")
    assert f"{missing} missing draft(s) were made up for the rehearsal" in out
    assert "68 of 68 assignments read by 8 simulated readers" in out
    assert "primary endpoint on the fake data: resident_drafting_time: " in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_reads"] == 68 and (tmp_path / "r" / "report" / "report.html").is_file()

    with db.read() as s:  # the study: still a draft, nothing read, no draft made
        assert s.scalar(select(func.count()).select_from(Response)) == 0
        assert s.scalar(select(func.count()).select_from(Draft)) == drafts_before
        assert {a.status for a in s.scalars(select(Assignment))} <= {"pending", "ready"}
    scratch = open_database(f"sqlite:///{tmp_path / 'r' / 'rehearsal.sqlite'}")
    try:
        with scratch.read() as s:
            assert {a.status for a in s.scalars(select(Assignment))} == {"completed"}
            kinds = dict(s.execute(select(Event.kind, func.count()).group_by(Event.kind)).all())
            # The reading services wrote what a browser's reads write.
            assert kinds["opened"] == kinds["image_shown"] == kinds["submitted"] == kinds["completed"] == 68
            assert kinds["round_opened"] >= 8 and kinds["launched"] == 1
    finally:
        scratch.dispose()
    reads = pd.read_csv(tmp_path / "r" / "export" / "assignments.csv")
    # Plausible times: minutes per case, writing slower than editing; a simulated clock, not the wall clock.
    assert reads["duration_s"].between(10, 1200).all()
    assert reads.loc[reads["task"].eq("write"), "duration_s"].median() > reads.loc[
        reads["task"].eq("edit"), "duration_s"].median()
    assert reads["unchanged"].eq(True).any() and reads["unchanged"].eq(False).any()
    # The simulated clock is gone once the rehearsal is done.
    assert abs((utcnow() - datetime.now(timezone.utc)).total_seconds()) < 5


def test_the_same_seed_gives_the_same_rehearsal(draft_study, tmp_path):
    assert rehearse(tmp_path / "a").exit_code == 0
    assert rehearse(tmp_path / "b").exit_code == 0
    assert rehearse(tmp_path / "c", "--seed", "99").exit_code == 0

    def reads(name):
        frame = pd.read_csv(tmp_path / name / "export" / "assignments.csv")
        return frame.sort_values(["reader_id", "position"])[["reader_id", "case_id", "duration_s", "final_text"]]

    pd.testing.assert_frame_equal(reads("a").reset_index(drop=True), reads("b").reset_index(drop=True))
    assert not reads("a")["duration_s"].reset_index(drop=True).equals(reads("c")["duration_s"].reset_index(drop=True))


def test_custom_questions_reach_the_rehearsals_analysis(fresh_db, demo_cohort_dir, tmp_path, monkeypatch):
    readers = tmp_path / "readers.csv"
    readers.write_text("reader_id,role,label\n" + "".join(f"rad{i},radiologist,R{i}\n" for i in range(4))
                       + "res1,resident,Res1\nres2,resident,Res2\n", encoding="utf-8")
    create_study(fresh_db, SYSTEM, study_id="crossed", design_path=shipped_design_path("crossed"),
                 manifest_path=demo_cohort_dir / "manifest.csv", readers_path=readers, seed=9)
    import_recorded_drafts(fresh_db, SYSTEM, "crossed")
    monkeypatch.setenv("READERSTUDY_DB", fresh_db.url)
    result = CliRunner().invoke(main, ["study", "rehearse", "crossed", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "the real launch would refuse" not in result.stdout and "made up" not in result.stdout
    results = json.loads((tmp_path / "r" / "report" / "results.json").read_text())
    assert results["questions"]["confidence"]["scale"] == "7-point Likert, 1 to 7, neutral 4"
    assert results["questions"]["image_quality"]["n_answers"] > 0
    assert set(results["likert"]) >= {"confidence", "image_quality"} and "urgency" in results["choices"]
    answers = pd.read_csv(tmp_path / "r" / "export" / "answers.csv")
    marks = pd.to_numeric(answers.loc[answers["question_key"].eq("image_quality"), "value"])
    assert marks.between(0, 100).all() and marks.nunique() > 3
    quality = next(e for e in results["endpoints"] if e["name"] == "resident_image_quality")
    assert quality["null"] == 50.0 and quality["estimate"] is not None


def test_a_launched_study_is_not_rehearsed(fresh_db, demo_cohort_dir, tmp_path, monkeypatch):
    from study_app.demo import build_demo_study

    build_demo_study(fresh_db, cohort_dir=tmp_path / "cohort")
    monkeypatch.setenv("READERSTUDY_DB", fresh_db.url)
    result = CliRunner().invoke(main, ["study", "rehearse", "demo", "--out", str(tmp_path / "r")])
    assert result.exit_code == 4 and "a dress rehearsal is for a study before launch" in result.stderr


def test_the_shipped_draft_errors_design_goes_from_design_file_to_a_report_with_the_errors_section(
        fresh_db, demo_cohort_dir, tmp_path, monkeypatch):
    """`study create --design draft_errors`, `drafts import`, `study rehearse`: the simulated attendings mark
    every edit of every draft they edit, the export carries the marks and the report compares the sources."""
    from study_app.demo import write_demo_readers

    monkeypatch.setenv("READERSTUDY_DB", fresh_db.url)
    readers = write_demo_readers(tmp_path / "readers.csv")
    for args in (["study", "create", "errs", "--design", "draft_errors", "--cohort",
                  str(demo_cohort_dir / "manifest.csv"), "--readers", str(readers)],
                 ["drafts", "import", "errs"],
                 ["study", "rehearse", "errs", "--out", str(tmp_path / "r")]):
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    export = tmp_path / "r" / "export"
    reads = pd.read_csv(export / "assignments.csv")
    annotated = reads.loc[reads["errors_annotated"].fillna(False).astype(bool)]
    assert len(annotated) == reads["arm"].str.startswith("attending_edit").sum() > 0
    errors = pd.read_csv(export / "draft_errors.csv")
    assert set(errors["assignment_id"]) <= set(annotated["assignment_id"]) and len(errors) > 0
    # Every edit of every annotated read is marked, numbered as the one segmentation numbers it.
    from analysis.draft_errors import edit_segments

    for row in annotated.itertuples():
        n = len(edit_segments(row.shown_text if isinstance(row.shown_text, str) else "", row.final_text))
        assert sorted(errors.loc[errors["assignment_id"] == row.assignment_id, "segment"]) == list(range(1, n + 1))
    counts = pd.read_csv(export / "draft_error_counts.csv")
    assert len(counts) == 12 * len(annotated)
    results = json.loads((tmp_path / "r" / "report" / "results.json").read_text())
    comparison = results["draft_errors"]["comparisons"][0]
    assert comparison["role"] == "attending" and comparison["comparison"] == "edit_model - edit_reader"
    assert "id='draft-errors'" in (tmp_path / "r" / "report" / "report.html").read_text()
