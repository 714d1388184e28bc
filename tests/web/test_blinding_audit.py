"""The blinding audit: no leak on the demo and on random designs, and it does find the leaks it is there to find.

The suite runs the audit at a family-wise alpha of 0.001: a clean study then fails a test at most one run in a
thousand by chance, while the leaks below (perfect separation within each of four readers) give exact
p-values near 1e-5 and are caught whatever the Holm family's size.
"""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from study_app.services import reading
from study_app.services.actors import SYSTEM
from study_app.services.blinding import blinded_cases, snapshot_database
from study_app.store.models import Arm, Assignment, Draft
from study_app.web.blinding_audit import audit_blinding
from tests.web.conftest import complete_case

ALPHA = 0.001

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.slow]


def finish_fraction(study, reader_keys, fraction: float, seed: int = 0) -> None:
    rng = random.Random(seed)
    for key in reader_keys:
        _, actor = study.sign_in(key)
        items = [i for i in reading.worklist(study.db, actor).items if i.status == "ready"]
        for item in rng.sample(items, int(len(items) * fraction)):
            complete_case(study, actor, item.case_ref, text=f"Findings by {key}:\n\tlungs clear.")


def leak_features(report) -> set[str]:
    return {v.feature for v in report.leaks}


def test_residents_halfway_the_attendings_are_sent_nothing_that_names_a_source(web_study):
    finish_fraction(web_study, ("res1", "res2"), 0.5)
    report = audit_blinding(web_study.db, SYSTEM, "demo", alpha=ALPHA)
    assert not report.leaks, report.table()
    # Every attending case is held, and says so in one same way.
    assert report.n_cases == 36 and report.n_held == 36
    states = [v.values_by_label for v in report.verdicts if v.feature == "worklist.state"]
    assert len(states) == 2 and all(set(map(tuple, by_label.values())) == {("opens with your next reading round",)}
                                    for by_label in states)
    tested = {v.feature for v in report.verdicts}
    assert {"worklist.state", "worklist.position", "worklist.release_after_launch_s", "id.case_ref.rank",
            "http.image.status", "http.image.message"} <= tested


def test_open_cases_pages_routes_and_ids_do_not_name_the_source(residents_done):
    study = residents_done
    with study.db.read() as session:
        before = [(a.id, a.status, a.sessions) for a in session.scalars(select(Assignment).order_by(Assignment.id))]
    report = audit_blinding(study.db, SYSTEM, "demo", alpha=ALPHA)
    assert not report.leaks, report.table()
    tested = {v.feature for v in report.verdicts}
    assert {"page.structure", "page.elements", "page.keys", "page.messages", "component:readerstudy_editor.data",
            "component:readerstudy_viewer.data", "size.page_bytes_without_content", "size.image_bytes",
            "timing.page_ms"} <= tested
    # Content differs (model drafts and resident reports are not alike): described, not a leak.
    assert set(report.content["label"]) == {"model", "reader", "model_as_a", "reader_as_a"}
    # The audit opened every case in a snapshot: the study itself is untouched.
    with study.db.read() as session:
        after = [(a.id, a.status, a.sessions) for a in session.scalars(select(Assignment).order_by(Assignment.id))]
    assert after == before


def _hold_reader_drafts_only(study) -> None:
    """The old release rule: model-draft edits open at launch, resident-draft edits wait."""
    with study.db.transaction() as session:
        for assignment, arm in session.execute(select(Assignment, Arm).join(Arm, Assignment.arm_id == Arm.id)):
            if arm.key == "attending_edit_model":
                assignment.status = "ready"


def test_the_audit_finds_a_release_that_depends_on_the_source(web_study):
    _hold_reader_drafts_only(web_study)
    report = audit_blinding(web_study.db, SYSTEM, "demo", alpha=ALPHA, pages=False)
    assert {"worklist.state", "http.image.status"} <= leak_features(report)
    leak = next(v for v in report.leaks if v.feature == "worklist.state")
    # Four readers, three cases of each source: the exact p cannot go below 1e-4; the separation names it anyway.
    assert leak.group == "attending/edit" and leak.separates and leak.exact and leak.p_val == pytest.approx(1e-4)
    assert leak.values_by_label == {"model": ["to do"], "reader": ["opens with your next reading round"]}


def test_the_audit_finds_identifiers_ordered_by_source(residents_done):
    study = residents_done
    with study.db.transaction() as session:
        for assignment, arm in session.execute(select(Assignment, Arm).join(Arm, Assignment.arm_id == Arm.id)):
            if arm.key in ("attending_edit_model", "attending_edit_resident"):
                first = "A" if arm.key == "attending_edit_model" else "B"
                assignment.case_ref = first + assignment.case_ref[1:]
    report = audit_blinding(study.db, SYSTEM, "demo", alpha=ALPHA, pages=False)
    assert "id.case_ref.rank" in leak_features(report)


def test_the_audit_finds_a_page_that_differs_by_source(residents_done):
    study = residents_done
    with study.db.transaction() as session:
        arm = session.scalars(select(Arm).where(Arm.key == "attending_edit_model")).one()
        arm.instructions = arm.instructions + "\n\nThis draft was written by the model."
    report = audit_blinding(study.db, SYSTEM, "demo", alpha=ALPHA)
    assert "page.elements" in leak_features(report)


def random_design(rng: random.Random) -> str:
    """A design with a writer role and a second role editing model drafts and the writers' reports (and maybe
    comparing them), in random proportions."""
    lines = ['[study]\nname = "random blinded"\n', f'worklist_order = "{rng.choice(["random", "blocked"])}"\n',
             "[roles.writer]\n[roles.editor]\n",
             '[questions.q]\nkind = "likert"\nlabel = "Q"\n',
             '[questions.preference]\nkind = "choice"\nlabel = "p"\n'
             'options = [{value="A", label="A"}, {value="B", label="B"}, {value="equivalent", label="="}]\n',
             '[[arms]]\nkey = "scratch"\ntask = "write"\nrole = "writer"\n']
    n_cases = rng.choice([6, 8, 12])
    for key, draft in (("edit_reader", '"arm:scratch"'), ("edit_model", '"model"')):
        lines.append(f'[[arms]]\nkey = "{key}"\ntask = "edit"\nrole = "editor"\ndraft = {draft}\n'
                     f'questions = ["q"]\ninstructions = "Edit it."\ncases = {n_cases}\n')
    if rng.random() < 0.7:
        lines.append('[[arms]]\nkey = "compare"\ntask = "compare"\nrole = "editor"\n'
                     f'drafts = ["model", "arm:scratch"]\nquestions = ["preference"]\ncases = {n_cases}\n')
    lines.append("[constraints]\ndistinct_case_per_reader = false\n")
    return "".join(lines)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_designs_send_nothing_that_names_a_source(fresh_db, demo_cohort_dir, tmp_path, seed):
    import shutil

    from study_app.services.drafting import import_recorded_drafts
    from study_app.services.creation import create_study
    from study_app.services.launch import launch_study
    from study_app.web.database import close_shared_databases

    rng = random.Random(seed)
    design = tmp_path / "design.toml"
    design.write_text(random_design(rng))
    n_writers, n_editors = rng.choice([2, 3]), rng.choice([2, 3, 4])
    readers = tmp_path / "readers.csv"
    readers.write_text("reader_id,role\n" + "".join(f"w{i},writer\n" for i in range(n_writers))
                       + "".join(f"e{i},editor\n" for i in range(n_editors)))
    cohort = tmp_path / "cohort"
    shutil.copytree(demo_cohort_dir, cohort)
    create_study(fresh_db, SYSTEM, study_id="rnd", design_path=design, manifest_path=cohort / "manifest.csv",
                 readers_path=readers, seed=seed)
    import_recorded_drafts(fresh_db, SYSTEM, "rnd")
    launch_study(fresh_db, SYSTEM, "rnd")
    # Writers part-way or done; sometimes the editors have started too.
    from study_app.services import auth
    from study_app.services.invites import issue_invites

    for invite in issue_invites(fresh_db, SYSTEM, "rnd"):
        _, actor = auth.exchange_invite(fresh_db, invite.token)
        items = [i for i in reading.worklist(fresh_db, actor).items if i.status == "ready"]
        share = rng.choice([0.3, 1.0]) if invite.reader_key.startswith("w") else rng.choice([0.0, 0.4])
        for item in items[: int(len(items) * share)]:
            view = reading.open_case(fresh_db, actor, item.case_ref)
            reading.mark_image_shown(fresh_db, actor, item.case_ref)
            result = reading.submit(fresh_db, actor, item.case_ref,
                                    f"Report {rng.random():.3f}" if view.task in ("write", "edit") else None)
            if result.status == "submitted":
                reading.save_answers(fresh_db, actor, item.case_ref, {q.key: q.options[0]["value"] for q in view.questions})
    try:
        report = audit_blinding(fresh_db, SYSTEM, "rnd", alpha=ALPHA, pages=seed == 1)
    finally:
        close_shared_databases()
    assert report.n_cases > 0
    assert not report.leaks, report.table()


def test_the_snapshot_is_a_whole_copy_and_the_study_is_untouched(demo_study, tmp_path):
    db, _ = demo_study
    copy = snapshot_database(db, SYSTEM, tmp_path / "copy.sqlite")
    try:
        with db.read() as source, copy.read() as target:
            for model in (Assignment, Draft):
                rows = lambda s: sorted((r.id, getattr(r, "case_ref", None) or getattr(r, "report", None))  # noqa: E731
                                        for r in s.scalars(select(model)))
                assert rows(source) == rows(target)
        assert {c.case_ref for c in blinded_cases(copy, SYSTEM, "demo")} == {c.case_ref for c in blinded_cases(db, SYSTEM, "demo")}
    finally:
        copy.dispose()


def test_the_error_annotation_page_sends_nothing_that_names_a_source(residents_done):
    """Every attending edit submitted with the same edit (one added sentence) and open for its error annotation:
    the pages, their widget keys, messages and sizes do not depend on the draft's source."""
    study = residents_done
    with study.db.transaction() as session:
        for arm in session.scalars(select(Arm).where(Arm.key.in_(["attending_edit_model", "attending_edit_resident"]))):
            arm.annotate_errors = True
    submitted = 0
    for key in ("att1", "att2", "att3", "att4"):
        _, actor = study.sign_in(key)
        for item in reading.worklist(study.db, actor).items:
            if item.task != "edit" or item.status != "ready":
                continue
            view = reading.open_case(study.db, actor, item.case_ref)
            reading.mark_image_shown(study.db, actor, item.case_ref)
            reading.submit(study.db, actor, item.case_ref, view.editor_text + " Heart size is normal.")
            submitted += 1
    assert submitted >= 8
    report = audit_blinding(study.db, SYSTEM, "demo", alpha=ALPHA)
    assert not report.leaks, report.table()
    submitted_pages = [v for v in report.verdicts if v.group == "attending/edit" and v.feature == "page.elements"]
    assert submitted_pages, "the audit rendered the attendings' annotation pages"
