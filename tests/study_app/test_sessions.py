"""Reading sessions and washout (docs/designs.md, "Sessions and washout"): the allocation's crossover invariants as
properties, the refusal of a schedule that cannot fit, and the washout gate on the server clock, simulated."""

from __future__ import annotations

import random
import shutil
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from study_app.allocation import AllocationError, CaseSlot, ReaderSlot, allocate, equitable_colouring
from study_app.designs import DesignError, load_design, parse_design, shipped_design_path
from study_app.designs.design import modality_sequences

CROSSOVER = load_design(shipped_design_path("crossover_washout"))
T0 = datetime(2027, 1, 4, 9, 0, tzinfo=timezone.utc)

MODALITIES = [
    ("unaided", 'task = "write"'),
    ("aided", 'task = "edit"\ndraft = "model"\nquestions = ["edit_reason"]'),
    ("aided_again", 'task = "edit"\ndraft = "model"\nquestions = ["edit_reason"]'),
    ("unaided_again", 'task = "write"'),
]


def crossover_text(m: int, *, readers_per_case: object = '"all"', cases: int | None = None, washout: int = 28,
                   session_days: int = 14, study_days: int = 200, extra: str = "") -> str:
    """A one-role crossover design on ``m`` modalities (arms) read in ``m`` sessions."""
    arms = "".join(
        f'\n[[arms]]\nkey = "{key}"\nrole = "resident"\n{body}\nreaders_per_case = {readers_per_case}\n'
        + (f"cases = {cases}\n" if cases is not None else "")
        for key, body in MODALITIES[:m]
    )
    keys = ", ".join(f'"{key}"' for key, _ in MODALITIES[:m])
    return f"""
[study]
name = "crossover"

[roles.resident]
label = "Resident"

[questions.edit_reason]
kind = "choice"
label = "Why did you edit the draft?"
options = [{{ value = "none", label = "No editing needed" }}, {{ value = "content", label = "Content" }}]
{arms}
[sessions]
crossover = [{keys}]
washout_days = {washout}
session_days = {session_days}
study_days = {study_days}
{extra}"""


def cohort(n: int) -> list[CaseSlot]:
    return [CaseSlot(f"c{i:03d}", i % 2 == 0) for i in range(n)]


def residents(n: int) -> list[ReaderSlot]:
    return [ReaderSlot(f"res{i}", "resident") for i in range(n)]


# --- the modality sequences and the colouring that deals them -------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 4, 5, 6])
def test_modality_sequences_are_a_latin_square_and_williams_balanced_for_even_m(m):
    rows = modality_sequences(m)
    assert len(rows) == m
    for row in rows:
        assert sorted(row) == list(range(m))
    for position in range(m):  # every modality once in every session across the sequences
        assert sorted(row[position] for row in rows) == list(range(m))
    if m % 2 == 0:  # Williams: every ordered pair of modalities follows once (first-order carry-over)
        follows = Counter((row[i], row[i + 1]) for row in rows for i in range(m - 1))
        assert set(follows.values()) == {1} and len(follows) == m * (m - 1)
    assert modality_sequences(2) == ((0, 1), (1, 0))  # AB/BA


@settings(max_examples=150, deadline=None)
@given(edges=st.sets(st.tuples(st.integers(0, 7), st.integers(0, 11)), min_size=1, max_size=60),
       k=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_equitable_colouring_gives_every_vertex_each_colour_within_one(edges, k, seed):
    edges = sorted((f"r{a}", f"c{b}") for a, b in edges)
    colour = equitable_colouring(edges, k, random.Random(seed))
    assert set(colour) == set(edges) and set(colour.values()) <= set(range(k))
    for side in (0, 1):
        per_vertex: dict[str, Counter] = defaultdict(Counter)
        for edge in edges:
            per_vertex[edge[side]][colour[edge]] += 1
        for counts in per_vertex.values():
            values = [counts.get(c, 0) for c in range(k)]
            assert max(values) - min(values) <= 1


# --- allocation invariants of a crossover -------------------------------------------------------------------------


def check_crossover(design, allocation, readers):
    plan = design.sessions
    m = plan.count
    keys = plan.crossover["resident"]
    rows = [p for p in allocation.assignments if p.arm_key in keys]
    by_pair: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for p in rows:
        assert p.arm_key not in by_pair[(p.reader_key, p.case_key)]
        by_pair[(p.reader_key, p.case_key)][p.arm_key] = p.reading_session
    # Every pair is read once in every modality, one modality per session.
    for pair, sessions in by_pair.items():
        assert set(sessions) == set(keys), pair
        assert sorted(sessions.values()) == list(range(1, m + 1)), pair
    # The only repeats of a case for a reader are the crossover's own.
    assert max(Counter((p.reader_key, p.case_key) for p in allocation.assignments).values()) == m
    # Balanced within one: each reader's sessions hold each modality within one as often ...
    for reader in {r.reader_key for r in readers}:
        mine = [p for p in rows if p.reader_key == reader]
        for session in range(1, m + 1):
            counts = Counter(p.arm_key for p in mine if p.reading_session == session)
            values = [counts.get(k, 0) for k in keys]
            assert max(values) - min(values) <= 1, (reader, session, counts)
    # ... and each case is read first in each modality by as many readers, within one.
    for case in {p.case_key for p in rows}:
        first = Counter(p.arm_key for p in rows if p.case_key == case and p.reading_session == 1)
        values = [first.get(k, 0) for k in keys]
        assert max(values) - min(values) <= 1, (case, first)
    # Across readers: every reader has as many pairs within one in every sequence (modality order).
    sequences: dict[str, Counter] = defaultdict(Counter)
    for (reader, _), sessions in by_pair.items():
        sequences[reader][tuple(sorted(keys, key=sessions.get))] += 1
    for reader, counts in sequences.items():
        values = [counts.get(tuple(keys[i] for i in row), 0) for row in plan.sequences()]
        assert sum(values) == sum(counts.values())  # only the square's rows are dealt
        assert max(values) - min(values) <= 1, (reader, counts)
    # The worklist puts a session's cases before the next session's.
    for reader in {r.reader_key for r in readers}:
        mine = sorted((p for p in allocation.assignments if p.reader_key == reader), key=lambda p: p.position)
        assert [p.reading_session for p in mine] == sorted(p.reading_session for p in mine)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(2, 4), n_readers=st.integers(1, 6), n_cases=st.integers(1, 14), seed=st.integers(0, 10**6))
def test_a_fully_crossed_crossover_reads_every_case_by_every_reader_in_every_modality_balanced(
        m, n_readers, n_cases, seed):
    design = parse_design(crossover_text(m))
    readers = residents(n_readers)
    allocation = allocate(design, cohort(n_cases), readers, seed)
    check_crossover(design, allocation, readers)
    # Crossing complete: readers_per_case = "all" is every reader of the role.
    pairs = {(p.reader_key, p.case_key) for p in allocation.assignments}
    assert pairs == {(r.reader_key, f"c{i:03d}") for r in readers for i in range(n_cases)}
    assert set(allocation.readers_per_case.values()) == {n_readers}
    assert allocate(design, cohort(n_cases), readers, seed).assignments == allocation.assignments  # reproducible


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=st.integers(2, 3), n_readers=st.integers(2, 6), per_case=st.integers(1, 2), n_cases=st.integers(2, 12),
       seed=st.integers(0, 10**6))
def test_a_split_crossover_balances_reads_and_modality_order(m, n_readers, per_case, n_cases, seed):
    design = parse_design(crossover_text(m, readers_per_case=per_case))
    readers = residents(n_readers)
    allocation = allocate(design, cohort(n_cases), readers, seed)
    check_crossover(design, allocation, readers)
    per_case_readers = Counter(c for _, c in {(p.reader_key, p.case_key) for p in allocation.assignments})
    assert set(per_case_readers.values()) == {per_case}


def test_the_shipped_crossover_crosses_both_roles_and_keeps_the_reasoning_review_in_session_1():
    readers = ([ReaderSlot(f"res{i}", "resident") for i in range(2)]
               + [ReaderSlot(f"att{i}", "attending") for i in range(4)]
               + [ReaderSlot(f"rad{i}", "radiologist") for i in range(2)])
    allocation = allocate(CROSSOVER, cohort(12), readers, 20240601)
    assert CROSSOVER.sessions.washout_days == 28 and CROSSOVER.sessions.count == 2
    for role, keys in CROSSOVER.sessions.crossover.items():
        rows = [p for p in allocation.assignments if p.arm_key in keys]
        role_readers = [r.reader_key for r in readers if r.role == role]
        assert {(p.reader_key, p.case_key) for p in rows} == {(r, f"c{i:03d}") for r in role_readers
                                                              for i in range(12)}
        for reader in role_readers:  # AB/BA: half of a reader's cases in each order
            first = Counter(p.arm_key for p in rows if p.reader_key == reader and p.reading_session == 1)
            assert first[keys[0]] == first[keys[1]] == 6
    assert {p.reading_session for p in allocation.assignments if p.arm_key == "reasoning_review"} == {1}


# --- refusals -------------------------------------------------------------------------------------------------------


def test_a_washout_that_cannot_fit_the_study_days_is_refused_naming_the_sessions_setting():
    design = parse_design(crossover_text(2, washout=28, session_days=21, study_days=60))
    with pytest.raises(AllocationError) as refused:
        allocate(design, cohort(4), residents(2), 1)
    message = str(refused.value)
    assert "[sessions]" in message and "washout_days = 28" in message and "study_days = 60" in message
    assert "70 days" in message  # 2 x 21 days of reading + 28 of washout
    allocate(parse_design(crossover_text(2, washout=28, session_days=21, study_days=70)), cohort(4), residents(2), 1)


def test_study_create_refuses_the_schedule_with_one_clear_line(tmp_path, demo_cohort_dir, monkeypatch):
    from click.testing import CliRunner

    from study_app.cli import main
    from study_app.demo import write_demo_readers

    design = tmp_path / "short.toml"
    design.write_text(CROSSOVER.source_text.replace("study_days = 84", "study_days = 40"))
    monkeypatch.setenv("READERSTUDY_DB", f"sqlite:///{tmp_path / 'cli.sqlite'}")
    result = CliRunner().invoke(main, ["study", "create", "x", "--design", str(design), "--cohort",
                                       str(demo_cohort_dir / "manifest.csv"), "--readers",
                                       str(write_demo_readers(tmp_path / "readers.csv"))], catch_exceptions=False)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "[sessions] cannot fit the study's dates" in result.output and "study_days = 40" in result.output


@pytest.mark.parametrize(("change", "says"), [
    (lambda t: t.replace('crossover = ["unaided", "aided"]', 'crossover = ["unaided"]'), "one crossover arm"),
    (lambda t: t.replace('crossover = ["unaided", "aided"]', 'crossover = ["unaided", "nope"]'), "do not exist"),
    (lambda t: t.replace("washout_days = 28", "washout_days = -1"), "sessions.washout_days"),
    (lambda t: t + "\n[constraints]\nallow_going_back = true\n", "allow_going_back"),
    (lambda t: t.replace("[sessions]", "[sessions]\nwashout = 3"), "sessions"),
])
def test_the_sessions_table_is_checked_on_its_own(change, says):
    with pytest.raises(DesignError, match=None) as refused:
        parse_design(change(crossover_text(2)))
    assert says in str(refused.value)


def test_crossover_arms_must_read_the_same_cases_with_the_same_readers():
    text = crossover_text(2, readers_per_case=1).replace('key = "aided"\n', 'key = "aided"\ncases = 3\n', 1)
    with pytest.raises(DesignError, match="crossover arms of role 'resident' read the same cases"):
        parse_design(text)


# --- the washout gate on the server clock, simulated ---------------------------------------------------------------

GATE_DESIGN = crossover_text(2, cases=3, washout=28, session_days=14, study_days=120)


class Clock:
    """The server clock a test moves by hand (Database.clock)."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="module")
def launched_crossover(tmp_path_factory, demo_cohort_dir):
    """A SQLite file holding a launched two-reader AB/BA crossover (3 cases, 28-day washout), launched at T0;
    each test works on its own copy."""
    from study_app.services.actors import SYSTEM
    from study_app.services.creation import create_study
    from study_app.services.database import open_database
    from study_app.services.drafting import import_recorded_drafts
    from study_app.services.launch import launch_study

    folder = tmp_path_factory.mktemp("crossover")
    design = folder / "design.toml"
    design.write_text(GATE_DESIGN)
    (folder / "readers.csv").write_text("reader_id,role,label\nres1,resident,Resident 1\nres2,resident,Resident 2\n")
    db = open_database(f"sqlite:///{folder / 'template.sqlite'}")
    db.clock = Clock(T0)
    create_study(db, SYSTEM, study_id="xo", design_path=design, manifest_path=demo_cohort_dir / "manifest.csv",
                 readers_path=folder / "readers.csv", seed=11)
    import_recorded_drafts(db, SYSTEM, "xo")
    launch_study(db, SYSTEM, "xo")
    db.dispose()
    return folder / "template.sqlite"


def _copy(template, target):
    from study_app.services.database import open_database

    shutil.copy(template, target)
    db = open_database(f"sqlite:///{target}")
    db.clock = Clock(T0)
    return db


def _readers(db):
    from study_app.services.actors import reader_actor
    from study_app.store.models import Reader

    with db.read() as session:
        return [reader_actor(r.id, r.reader_key) for r in session.scalars(select(Reader).order_by(Reader.id))]


def _read(db, actor, case_ref, clock, minutes: float) -> None:
    from study_app.services import reading

    view = reading.open_case(db, actor, case_ref)
    reading.mark_image_shown(db, actor, case_ref)
    clock.advance(minutes=minutes)
    text = view.editor_text or "The lungs are clear."
    if reading.submit(db, actor, case_ref, text, active_s=1.0, hidden_s=0.0, idle_s=0.0).status == "submitted":
        clock.advance(seconds=20)
        reading.save_answers(db, actor, case_ref, {q.key: q.options[0]["value"] for q in view.questions})


def check_washout_never_violated(db, washout: timedelta) -> int:
    """No read of a session s > 1 opened (nor its round) before the washout after the reader's last read of the
    earlier sessions, and none while one of them was unfinished, judged by the audit log as it stood at that
    moment (a coordinator's reset makes a case unfinished again). Returns the number of later-session reads."""
    from study_app.store.models import Assignment, Event

    with db.read() as session:
        rows = session.scalars(select(Assignment)).all()
        history: dict[int, list[tuple[datetime, int, str]]] = defaultdict(list)
        for e in session.scalars(select(Event).where(Event.kind.in_(["completed", "reset"]))):
            history[e.assignment_id].append((e.at, e.id, e.kind))
        opened_events = session.scalars(select(Event).where(Event.kind == "round_opened")).all()

    def last_read_of_earlier(reader_id: int, reading_session: int, moment: datetime) -> datetime:
        done = []
        for b in rows:
            if b.reader_id == reader_id and b.reading_session < reading_session:
                before = sorted(h for h in history[b.id] if h[0] <= moment)
                assert before and before[-1][2] == "completed", ("an earlier case was unfinished", b.id, moment)
                done.append(before[-1][0])
        return max(done)

    later = 0
    for a in rows:
        if a.reading_session > 1 and a.opened_at is not None:
            later += 1
            assert a.opened_at >= last_read_of_earlier(a.reader_id, a.reading_session, a.opened_at) + washout, a.id
    for event in opened_events:
        reading_session = (event.payload or {}).get("session", 1)
        if reading_session > 1:
            assert event.at >= last_read_of_earlier(event.reader_id, reading_session, event.at) + washout
    return later


# Each step: which reader comes back, after how long (hours; up to ~40 days), and how many cases they read.
steps = st.lists(st.tuples(st.integers(0, 1), st.floats(0, 24 * 40), st.integers(0, 4)), min_size=1, max_size=14)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(plan=steps)
@example(plan=[(0, 0.0, 4), (0, 1.0, 4), (0, 24 * 28.0, 4), (1, 0.0, 3), (1, 24 * 27.9, 4)])  # early, then on time
@example(plan=[(1, 5.0, 3), (1, 24 * 28.0 - 0.2, 2), (1, 0.1, 2), (1, 0.2, 2)])  # at the boundary
def test_washout_is_never_violated_by_any_reachable_schedule(plan, launched_crossover, tmp_path_factory):
    from study_app.services import reading

    db = _copy(launched_crossover, tmp_path_factory.mktemp("run") / "study.sqlite")
    clock = db.clock
    readers = _readers(db)
    try:
        for who, hours, n in plan:
            clock.advance(hours=hours)
            actor = readers[who]
            for _ in range(n):
                worklist = reading.worklist(db, actor)
                item = worklist.next_item()
                if item is None:
                    upcoming = worklist.next_session
                    if upcoming is not None and upcoming.opens_at is not None:
                        # The reader is told a date, and the date is the rule's.
                        assert upcoming.washout_over == (clock.now >= upcoming.opens_at)
                    break
                _read(db, actor, item.case_ref, clock, minutes=3)
        later = check_washout_never_violated(db, timedelta(days=28))
        event("later-session reads: " + ("some" if later else "none"))
    finally:
        db.dispose()


def test_the_worklist_opens_the_next_session_exactly_when_the_washout_has_passed(launched_crossover, tmp_path):
    from study_app.services import reading
    from study_app.services.errors import Conflict

    db = _copy(launched_crossover, tmp_path / "study.sqlite")
    clock = db.clock
    res1, res2 = _readers(db)
    try:
        worklist = reading.worklist(db, res1)
        assert worklist.next_session.opens_at is None  # not known until session 1 is done
        assert worklist.next_session.message() == ("Your next reading session opens 28 days after you finish the "
                                                   "cases of this one.")
        session_2 = [i for i in worklist.items if i.reading_session == 2]
        assert len(session_2) == 3 and all(i.status == "pending" and worklist.held_for_session(i) for i in session_2)
        while (item := reading.worklist(db, res1).next_item()) is not None:
            _read(db, res1, item.case_ref, clock, minutes=5)
        finished = clock.now
        worklist = reading.worklist(db, res1)
        assert worklist.next_item() is None
        assert worklist.next_session.opens_at == finished + timedelta(days=28)
        assert worklist.next_session.message() == (
            f"Your next reading session opens on {(finished + timedelta(days=28)).day} February 2027 at "
            f"{finished.strftime('%H:%M')} UTC.")
        with pytest.raises(Conflict):  # a held case cannot be opened by its address either
            reading.open_case(db, res1, session_2[0].case_ref)
        clock.advance(days=28, seconds=-1)
        assert reading.worklist(db, res1).next_item() is None
        clock.advance(seconds=1)
        worklist = reading.worklist(db, res1)
        assert worklist.next_session is None
        assert {i.status for i in worklist.items if i.reading_session == 2} == {"ready"}
        assert worklist.next_item().reading_session == 2
        # The other reader's schedule is their own: res2 has read nothing, so nothing of theirs opened.
        assert {i.status for i in reading.worklist(db, res2).items if i.reading_session == 2} == {"pending"}
        assert check_washout_never_violated(db, timedelta(days=28)) == 0
    finally:
        db.dispose()


def test_the_console_schedule_says_per_reader_session_state_opening_and_cases_done(launched_crossover, tmp_path):
    from study_app.services import reading
    from study_app.services.actors import SYSTEM
    from study_app.services.progress import study_progress

    db = _copy(launched_crossover, tmp_path / "study.sqlite")
    clock = db.clock
    res1, _ = _readers(db)
    try:
        schedule = study_progress(db, SYSTEM, "xo").schedule.set_index(["reader", "session"])
        assert list(schedule.loc[("res1", 1), ["state", "cases", "done"]]) == ["open", 3, 0]
        assert schedule.loc[("res1", 1), "opens_at"] == T0
        assert schedule.loc[("res1", 2), "state"] == "after session 1"
        item = reading.worklist(db, res1).next_item()
        _read(db, res1, item.case_ref, clock, minutes=5)
        assert study_progress(db, SYSTEM, "xo").schedule.set_index(["reader", "session"]).loc[("res1", 1), "done"] == 1
        while (item := reading.worklist(db, res1).next_item()) is not None:
            _read(db, res1, item.case_ref, clock, minutes=5)
        schedule = study_progress(db, SYSTEM, "xo").schedule.set_index(["reader", "session"])
        assert list(schedule.loc[("res1", 1), ["state", "done"]]) == ["done", 3]
        assert schedule.loc[("res1", 2), "state"] == "washout"
        assert schedule.loc[("res1", 2), "opens_at"] == clock.now + timedelta(days=28)
        clock.advance(days=29)
        assert study_progress(db, SYSTEM, "xo").schedule.set_index(["reader", "session"]).loc[
            ("res1", 2), "state"] == "washout over"  # opens at the reader's next visit
        reading.worklist(db, res1)
        row = study_progress(db, SYSTEM, "xo").schedule.set_index(["reader", "session"]).loc[("res1", 2)]
        assert row["state"] == "open" and row["opened_at"] == clock.now
    finally:
        db.dispose()


def test_the_export_carries_each_reads_session_and_the_analysis_fits_the_period(launched_crossover, tmp_path):
    import pandas as pd

    from study_app.services import reading
    from study_app.services.actors import SYSTEM
    from study_app.services.export import write_export

    db = _copy(launched_crossover, tmp_path / "study.sqlite")
    clock = db.clock
    try:
        for actor in _readers(db):
            while (item := reading.worklist(db, actor).next_item()) is not None:
                _read(db, actor, item.case_ref, clock, minutes=2)
            clock.advance(days=28, hours=1)
            while (item := reading.worklist(db, actor).next_item()) is not None:
                _read(db, actor, item.case_ref, clock, minutes=2)
        write_export(db, SYSTEM, "xo", tmp_path / "export")
    finally:
        db.dispose()
    assignments = pd.read_csv(tmp_path / "export" / "assignments.csv")
    assert sorted(assignments["reading_session"].unique()) == [1, 2]
    per_pair = assignments.groupby(["reader_id", "case_id"])["reading_session"].apply(sorted)
    assert all(s == [1, 2] for s in per_pair)
    import json

    meta = json.loads((tmp_path / "export" / "export_meta.json").read_text())
    assert meta["sessions"]["washout_days"] == 28


def test_the_shipped_crossover_goes_from_design_file_to_analysed_report_in_a_rehearsal(tmp_path, demo_cohort_dir):
    """`study create --design crossover_washout`, `drafts import`, `study rehearse`: every read of both sessions,
    the washout skipped on the simulated clock, never broken, and the report written with the period fitted."""
    import json

    from study_app.demo import write_demo_readers
    from study_app.services.actors import SYSTEM
    from study_app.services.creation import create_study
    from study_app.services.database import open_database
    from study_app.services.drafting import import_recorded_drafts
    from study_app.services.rehearsal import rehearse_study

    db = open_database(f"sqlite:///{tmp_path / 'study.sqlite'}")
    try:
        create_study(db, SYSTEM, study_id="xo", design_path=shipped_design_path("crossover_washout"),
                     manifest_path=demo_cohort_dir / "manifest.csv",
                     readers_path=write_demo_readers(tmp_path / "readers.csv"), seed=3)
        import_recorded_drafts(db, SYSTEM, "xo")
        report = rehearse_study(db, SYSTEM, "xo", tmp_path / "rehearsal", n_boot=100)
    finally:
        db.dispose()
    assert report.n_reads == report.n_assignments == 152 and not report.notes
    assert report.washouts_skipped >= 1 and report.simulated_hours > 28 * 24
    assert report.analysis_error is None and report.primary.startswith("resident_drafting_time")
    scratch = open_database(f"sqlite:///{report.scratch_db}")
    try:
        assert check_washout_never_violated(scratch, timedelta(days=28)) == 6 * 12
    finally:
        scratch.dispose()
    results = json.loads((tmp_path / "rehearsal" / "report" / "results.json").read_text())
    assert set(results["duration"]["resident"]["comparisons"]["write_vs_edit_model"]["mixed_model"]
               ["period_effects"]) == {"2"}


def test_a_reset_of_an_earlier_sessions_case_holds_the_next_session_and_restarts_its_washout(
        launched_crossover, tmp_path):
    from study_app.services import reading
    from study_app.services.actors import SYSTEM
    from study_app.services.interventions import reset_assignment

    db = _copy(launched_crossover, tmp_path / "study.sqlite")
    clock = db.clock
    res1, _ = _readers(db)
    try:
        while (item := reading.worklist(db, res1).next_item()) is not None:
            _read(db, res1, item.case_ref, clock, minutes=5)
        clock.advance(days=29)
        worklist = reading.worklist(db, res1)
        assert {i.status for i in worklist.items if i.reading_session == 2} == {"ready"}
        first = next(i for i in worklist.items if i.reading_session == 1)
        reset_assignment(db, SYSTEM, "xo", "res1", first.position, reason="the image did not load")
        worklist = reading.worklist(db, res1)
        assert {i.status for i in worklist.items if i.reading_session == 2} == {"pending"}
        assert worklist.next_item().case_ref == first.case_ref and worklist.next_session.opens_at is None
        _read(db, res1, first.case_ref, clock, minutes=5)
        redone = clock.now
        assert reading.worklist(db, res1).next_session.opens_at == redone + timedelta(days=28)
        clock.advance(days=28)
        assert {i.status for i in reading.worklist(db, res1).items if i.reading_session == 2} == {"ready"}
        check_washout_never_violated(db, timedelta(days=28))
    finally:
        db.dispose()
