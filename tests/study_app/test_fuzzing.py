"""Property-based fuzzing of what takes outside input: the design parser, the reader list, answers, report text."""

import csv
import io
import itertools
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from study_app.designs import DesignError, parse_design, shipped_design_path
from study_app.services.actors import SYSTEM
from study_app.services.errors import InvalidInput, ServiceError
from study_app.services.reading import validate_answers, validate_report_text
from study_app.services.roster import parse_roster
from study_app.store.models import Question

CHEXONE = shipped_design_path().read_text()
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

toml_scalars = st.one_of(
    st.integers(min_value=-10**12, max_value=10**12), st.booleans(), st.floats(allow_nan=False),
    st.text(max_size=30), st.just("all"), st.just("model"), st.just("arm:resident_scratch"),
)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value).replace("inf", "inf")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@FUZZ
@given(st.text(max_size=400))
def test_any_text_is_a_design_or_a_clear_error(text):
    try:
        parse_design(text)
    except DesignError as error:
        assert str(error) and "Traceback" not in str(error)


@FUZZ
@given(
    line=st.integers(min_value=0, max_value=CHEXONE.count("\n")),
    key=st.sampled_from(["task", "role", "readers_per_case", "cases", "draft", "questions", "kind", "label",
                         "timed", "key", "idle_threshold_s", "worklist_order", "distinct_case_per_reader"]),
    value=toml_scalars,
)
def test_a_mutated_chexone_design_is_valid_or_refused_by_name(line, key, value):
    lines = CHEXONE.splitlines()
    lines.insert(line, f"{key} = {toml_value(value)}")
    try:
        design = parse_design("\n".join(lines))
    except DesignError as error:
        message = str(error)
        assert message and len(message) < 2000
        return
    assert design.arms and all(a.readers_per_case >= 1 for a in design.arms)


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_as_a_reader_list(raw):
    text = raw.decode("utf-8", errors="replace")
    try:
        entries = parse_roster("reader_id,role\n" + text, roles={"resident": "R"})
    except InvalidInput as error:
        assert str(error)
        return
    assert all(e.reader_key and e.role == "resident" for e in entries)


QUESTIONS = [
    Question(key="edit_reason", kind="choice", label="Why did you edit?", required=True,
             options=[{"value": v, "label": v} for v in ("none", "content", "style", "both")]),
    Question(key="writing_efficiency", kind="likert", label="Efficiency", required=True,
             options=[{"value": str(v), "label": str(v)} for v in (10, 5, 0, -5, -10)]),
    Question(key="comment", kind="choice", label="Optional", required=False,
             options=[{"value": "a", "label": "a"}, {"value": "b", "label": "b"}]),
]
answer_values = st.one_of(st.none(), st.text(max_size=20), st.integers(), st.floats(), st.sampled_from(
    ["none", "content", "10", "-5", "a", "", "7", "NONE"]))


@FUZZ
@given(st.dictionaries(st.sampled_from(["edit_reason", "writing_efficiency", "comment", "bogus", ""]),
                       answer_values, max_size=4))
def test_answers_are_accepted_only_when_every_value_is_an_option(answers):
    try:
        accepted = validate_answers(QUESTIONS, answers)
    except InvalidInput as error:
        assert str(error)
        return
    assert {"edit_reason", "writing_efficiency"} <= set(accepted)
    for key, (question, value, label) in accepted.items():
        assert value in {o["value"] for o in question.options} and label


@FUZZ
@given(st.text(alphabet=st.characters(), max_size=500))
def test_report_text_is_kept_exactly_or_refused(text):
    try:
        assert validate_report_text(text) == text
    except ServiceError as error:
        assert "control characters" in str(error) or "limit" in str(error)


def test_huge_report_refused_with_its_size():
    try:
        validate_report_text("x" * 1_000_000)
    except InvalidInput as error:
        assert "1,000,000 characters" in str(error)
    else:
        raise AssertionError("a million-character report was accepted")


# --- the manifest importer, whole: a study is created entirely or nothing is written -----------------

_study_ids = itertools.count()
odd_cells = st.one_of(
    st.sampled_from(["", "PA:images/missing.png", "PA:../outside.png", "OBLIQUE:images/x.png", "-1", "1e308",
                     "99999999999999999999", "nan", "\x00", "\ufeff", "é" * 5000, "A=Yes|A=No", "PA:/etc/passwd"]),
    st.text(max_size=40),
)


@pytest.fixture(scope="module")
def import_target(tmp_path_factory, demo_cohort_dir):
    """One database and a writable copy of the demo cohort whose manifest each example rewrites."""
    from study_app.demo import write_demo_readers
    from study_app.services.database import open_database

    root = tmp_path_factory.mktemp("fuzz-import")
    cohort = root / "cohort"
    shutil.copytree(demo_cohort_dir, cohort)
    db = open_database(f"sqlite:///{root / 'study.sqlite'}")
    yield db, cohort, write_demo_readers(root / "readers.csv"), (cohort / "manifest.csv").read_text(encoding="utf-8")
    db.dispose()


def _table_counts(db) -> dict[str, int]:
    from sqlalchemy import func, select

    from study_app.store.models import Assignment, Case, Draft, Event, Image, Reader, Study

    with db.read() as session:
        return {m.__name__: session.scalar(select(func.count()).select_from(m))
                for m in (Study, Case, Image, Reader, Assignment, Draft, Event)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, 12), column=st.integers(0, 30), value=odd_cells,
       tail=st.one_of(st.just(b""), st.binary(max_size=40), st.just(b"\xff\xfe\x00garbage")))
def test_a_damaged_manifest_imports_whole_or_changes_nothing(import_target, row, column, value, tail):
    """One cell of the demo manifest replaced by something odd (and bytes appended): the import either creates
    the whole study or raises a clear InvalidInput naming a row, a column or the file, and writes nothing."""
    from cohorts import load_manifest
    from study_app.designs import shipped_design_path
    from study_app.services.creation import create_study

    db, cohort, readers, original = import_target
    rows = list(csv.reader(io.StringIO(original)))
    row %= len(rows)
    rows[row][column % len(rows[row])] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    manifest = cohort / "manifest.csv"
    manifest.write_bytes(out.getvalue().encode("utf-8") + tail)
    before = _table_counts(db)
    study_id = f"fuzz{next(_study_ids)}"
    try:
        create_study(db, SYSTEM, study_id=study_id, design_path=shipped_design_path(), manifest_path=manifest,
                     readers_path=readers, seed=1)
    except InvalidInput as error:
        message = str(error)
        assert message.strip() and "Traceback" not in message
        assert any(word in message for word in ("row", "column", "manifest", "line", "UTF-8", "design")), message
        assert _table_counts(db) == before
        return
    after = _table_counts(db)
    assert after["Study"] == before["Study"] + 1
    assert after["Case"] - before["Case"] == len(load_manifest(manifest).cases)
    assert after["Assignment"] > before["Assignment"]
