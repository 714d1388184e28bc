"""Error annotation of drafts (issue #15): the design key, the service's rule (marks checked against the read's
edits, saved with the answers or not at all) and the export's draft_errors tables, round trip."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import func, select

from study_app.demo import write_demo_readers
from study_app.designs import DesignError, load_design, parse_design, shipped_design_path
from study_app.services import reading
from study_app.services.actors import SYSTEM, reader_actor
from study_app.services.creation import create_study
from study_app.services.drafting import import_recorded_drafts
from study_app.services.errors import InvalidInput
from study_app.services.launch import launch_study
from study_app.store.models import Answer, Assignment, ErrorAnnotation, Event, Reader

DESIGN = """
[study]
name = "Tiny"
[roles.resident]
[roles.attending]
[questions.edit_reason]
kind = "choice"
label = "Why?"
options = [{ value = "none", label = "None" }, { value = "content", label = "Content" }]
[[arms]]
key = "scratch"
task = "write"
role = "resident"
[[arms]]
key = "edit_resident"
task = "edit"
role = "attending"
draft = "arm:scratch"
questions = ["edit_reason"]
annotate_errors = true
[[arms]]
key = "edit_model"
task = "edit"
role = "attending"
draft = "model"
questions = ["edit_reason"]
annotate_errors = true
"""


def test_the_shipped_design_annotates_both_attending_edit_arms():
    design = load_design(shipped_design_path("draft_errors"))
    assert {a.key: a.annotate_errors for a in design.arms} == {
        "resident_scratch": False, "attending_edit_resident": True, "attending_edit_model": True}
    assert parse_design(DESIGN).arm("edit_model").annotate_errors


@pytest.mark.parametrize("change, message", [
    (('key = "scratch"\ntask = "write"\nrole = "resident"',
      'key = "scratch"\ntask = "write"\nrole = "resident"\nannotate_errors = true'),
     "arms[1] (scratch).annotate_errors: only an 'edit' arm has edits of a draft to annotate; this is a 'write' arm"),
    (('questions = ["edit_reason"]\nannotate_errors = true\n[[arms]]\nkey = "edit_model"',
      'questions = ["edit_reason"]\nannotate_errors = "yes"\n[[arms]]\nkey = "edit_model"'),
     "arms[2] (edit_resident).annotate_errors"),
    # Only the model drafts annotated: the annotation would name the draft's source.
    (('questions = ["edit_reason"]\nannotate_errors = true\n[[arms]]\nkey = "edit_model"',
      'questions = ["edit_reason"]\n[[arms]]\nkey = "edit_model"'),
     "arms (edit_resident, edit_model): both are 'edit' arms of role 'attending' with drafts from different "
     "sources, but their annotate_errors differ"),
])
def test_the_parser_refuses_annotate_errors_where_it_cannot_hold(change, message):
    old, new = change
    assert old in DESIGN
    with pytest.raises(DesignError) as error:
        parse_design(DESIGN.replace(old, new, 1))
    assert message in str(error.value)


@pytest.fixture
def launched(sqlite_db, demo_cohort_dir, tmp_path):
    """The shipped draft_errors design on the demo cohort, launched, every resident case written."""
    db = sqlite_db
    create_study(db, SYSTEM, study_id="de", design_path=shipped_design_path("draft_errors"),
                 manifest_path=demo_cohort_dir / "manifest.csv",
                 readers_path=write_demo_readers(tmp_path / "readers.csv"), seed=3)
    import_recorded_drafts(db, SYSTEM, "de")
    launch_study(db, SYSTEM, "de")
    for key in ("res1", "res2"):
        actor = _actor(db, key)
        for item in reading.worklist(db, actor).items:
            _submit(db, actor, item.case_ref, "Heart size is normal. Small left effusion.")
    return db


def _actor(db, key):
    with db.read() as s:
        return reader_actor(s.scalars(select(Reader).where(Reader.reader_key == key)).one().id, key)


def _submit(db, actor, case_ref, text):
    reading.open_case(db, actor, case_ref)
    reading.mark_image_shown(db, actor, case_ref)
    return reading.submit(db, actor, case_ref, text)


def _edit_item(db, actor, arm_key):
    return next(i for i in reading.worklist(db, actor).items if i.arm_key == arm_key and i.status == "ready")


def _submitted_edit(db, arm_key="attending_edit_model"):
    """An attending's edit with two edits of the draft: a changed word and an added sentence."""
    actor = _actor(db, "att1")
    item = _edit_item(db, actor, arm_key)
    draft = reading.open_case(db, actor, item.case_ref).editor_text
    sentences = draft.split(". ")
    words = sentences[0].split()
    words[-1] = "XYZ" + words[-1]  # one word of the first sentence changed
    text = ". ".join([" ".join(words)] + sentences[1:]).rstrip(".") + ". Heart size is normal."
    result = _submit(db, actor, item.case_ref, text)
    assert result.status == "submitted", "an annotating arm stays open for its marks after SUBMIT"
    return actor, item


def _written(db, item):
    with db.read() as s:
        assignment = s.scalars(select(Assignment).where(Assignment.case_ref == item.case_ref)).one()
        n = s.scalar(select(func.count()).select_from(ErrorAnnotation)
                     .where(ErrorAnnotation.assignment_id == assignment.id))
        answers = s.scalar(select(func.count()).select_from(Answer).where(Answer.assignment_id == assignment.id))
        return assignment.status, n, answers


@pytest.mark.parametrize("marks, message", [
    ({1: {"category": "bad_category", "significant": True}, 2: {"category": "not_an_error"}},
     "edit 1: 'bad_category' is not an error category (expected one of false_finding, omitted_finding"),
    ({1: {"category": "wrong_severity", "significant": True}, 2: {"category": "not_an_error"},
      7: {"category": "not_an_error"}},
     "there is no edit 7 to annotate (this draft has 2 edits)"),
    ({1: {"category": "wrong_severity", "significant": True}}, "please mark edit 2"),
    ({1: {"category": "wrong_severity"}, 2: {"category": "not_an_error"}},
     "edit 1: say whether the error is clinically significant"),
    ({1: {"category": "wrong_severity", "significant": "yes"}, 2: {"category": "not_an_error"}},
     "edit 1: say whether the error is clinically significant"),
    (None, "please mark edit 1: an error category, or not an error; please mark edit 2"),
])
def test_bad_marks_are_refused_with_a_clear_message_and_nothing_is_written(launched, marks, message):
    actor, item = _submitted_edit(launched)
    with pytest.raises(InvalidInput) as error:
        reading.save_answers(launched, actor, item.case_ref, {"edit_reason": "content", "writing_efficiency": "5"},
                             marks)
    assert message in str(error.value)
    assert _written(launched, item) == ("submitted", 0, 0)


def test_marks_and_answers_are_saved_together_and_the_audit_log_records_them(launched):
    actor, item = _submitted_edit(launched)
    view = reading.case_view(launched, actor, item.case_ref)
    assert view.annotate_errors and [(s["segment"], s["kind"]) for s in view.error_segments] == [
        (1, "replace"), (2, "insert")]
    assert view.error_segments[1]["final"] == "Heart size is normal."
    # Missing answers refuse the marks too: one save, all or nothing.
    with pytest.raises(InvalidInput, match="please answer"):
        reading.save_answers(launched, actor, item.case_ref, {},
                             {1: {"category": "wrong_location", "significant": True},
                              "2": {"category": "not_an_error", "significant": True}})
    assert _written(launched, item) == ("submitted", 0, 0)
    reading.save_answers(launched, actor, item.case_ref, {"edit_reason": "content", "writing_efficiency": "5"},
                         {1: {"category": "wrong_location", "significant": True},
                          "2": {"category": "not_an_error", "significant": True}})
    assert _written(launched, item) == ("completed", 2, 2)
    with launched.read() as s:
        rows = s.scalars(select(ErrorAnnotation).order_by(ErrorAnnotation.segment)).all()
        event = s.scalars(select(Event).where(Event.kind == "answers_saved").order_by(Event.id.desc())).first()
    assert [(r.category, r.significant) for r in rows] == [("wrong_location", True), ("not_an_error", None)]
    assert event.payload["errors"] == {"1": "wrong_location/significant", "2": "not_an_error"}


def test_an_arm_without_annotation_refuses_marks(launched):
    from study_app.store.models import Arm

    att = _actor(launched, "att2")
    item = _edit_item(launched, att, "attending_edit_resident")
    with launched.transaction() as s:
        s.scalars(select(Arm).where(Arm.key == "attending_edit_resident")).one().annotate_errors = False
    draft = reading.open_case(launched, att, item.case_ref).editor_text
    result = _submit(launched, att, item.case_ref, draft + " More.")
    assert result.status == "submitted"
    with pytest.raises(InvalidInput, match="this case asks for no error annotation"):
        reading.save_answers(launched, att, item.case_ref, {"edit_reason": "content", "writing_efficiency": "5"},
                             {1: {"category": "not_an_error"}})


def test_the_export_carries_every_mark_and_the_counts_and_the_analysis_reads_them_back(launched, tmp_path):
    from analysis import load_tables
    from analysis.draft_errors import draft_error_counts
    from study_app.services.export import write_export

    actor, item = _submitted_edit(launched)
    reading.save_answers(launched, actor, item.case_ref, {"edit_reason": "content", "writing_efficiency": "5"},
                         {1: {"category": "wrong_severity", "significant": False},
                          2: {"category": "omitted_finding", "significant": True}})
    for fmt in ("csv", "sqlite"):
        out = write_export(launched, SYSTEM, "de", tmp_path / fmt, fmt=fmt)
        tables = load_tables(out)
        errors = tables.draft_errors
        assert errors[["segment", "edit_kind", "category"]].values.tolist() == [
            [1, "replace", "wrong_severity"], [2, "insert", "omitted_finding"]]
        assert errors["significant"].tolist() == [False, True]
        assert errors["final_text"].iloc[1] == "Heart size is normal."
        a = tables.assignments
        annotated = a.loc[a["errors_annotated"].fillna(False).astype(bool)]
        assert annotated["assignment_id"].tolist() == [str(errors["assignment_id"].iloc[0])]
        # Not finished yet: an annotating arm's other reads say False, the resident reads nothing.
        assert a.loc[a["arm"].eq("resident_scratch"), "errors_annotated"].isna().all()
    counts = pd.read_csv(tmp_path / "csv" / "draft_error_counts.csv")
    assert len(counts) == 12 and counts["n_errors"].sum() == 2
    assert counts.set_index(["category", "significant"]).loc[("omitted_finding", True), "n_errors"] == 1
    recomputed = draft_error_counts(tables.assignments, tables.draft_errors)
    assert recomputed["n_errors"].tolist() == counts["n_errors"].tolist()
