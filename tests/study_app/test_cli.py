"""The `readerstudy` CLI: every command, its error exits (one clear line, no traceback), and its docs."""

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from study_app.store import head_revision
from study_app.cli import main
from study_app.demo import write_demo_readers

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("READERSTUDY_DB", f"sqlite:///{tmp_path / 'cli.sqlite'}")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert "Traceback" not in result.output
        return result

    return invoke


def all_commands(group=main, prefix=("readerstudy",)):
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, path)
        else:
            yield " ".join(path), command


def test_every_command_has_an_example_and_is_documented():
    docs = DOCS.read_text()
    for path, command in all_commands():
        assert "Example" in (command.help or ""), f"{path} has no example in its help"
        assert f"## {path}" in docs, f"{path} is not in docs/cli.md"


def test_a_study_from_start_to_export(run, demo_cohort_dir, tmp_path):
    manifest = demo_cohort_dir / "manifest.csv"
    readers = write_demo_readers(tmp_path / "readers.csv")
    result = run("cohort", "validate", manifest)
    assert result.exit_code == 0 and "valid, 12 case(s)" in result.output

    assert run("db", "upgrade").output == f"database at revision {head_revision()}\n"
    result = run("study", "create", "pilot", "--design", "chexone", "--cohort", manifest, "--readers", readers,
                 "--seed", "9")
    assert result.exit_code == 0, result.output
    assert "created study 'pilot' (seed 9): 12 cases, 8 readers" in result.output
    assert "pilot\tdraft" in run("study", "list").output
    describe = run("study", "describe", "pilot").output
    assert "reads per case" in describe and "A/B position" in describe and "overlap" in describe
    launch = run("study", "launch", "pilot")
    assert launch.exit_code == 4 and "error: the study cannot be launched yet" in launch.output
    assert "error: arm 'resident_edit_model'" in launch.output
    assert run("drafts", "import", "pilot").exit_code == 0
    result = run("study", "launch", "pilot")
    assert result.exit_code == 0 and "launched 'pilot'" in result.output
    links = run("readers", "invite", "pilot", "--reader", "res1", "--base-url", "https://study.example.org")
    assert links.output.startswith("res1\tresident\thttps://study.example.org/signin?token=")
    result = run("export", "pilot", "--out", tmp_path / "out")
    assert result.exit_code == 0 and (tmp_path / "out" / "assignments.csv").is_file()


def test_demo_no_serve_builds_and_prints_links(run, demo_cohort_dir, tmp_path):
    import shutil

    shutil.copytree(demo_cohort_dir, tmp_path / "cohort")
    result = run("demo", "--no-serve", "--cohort-dir", tmp_path / "cohort", "--port", "8600")
    assert result.exit_code == 0, result.output
    assert "built demo study 'demo' [open]" in result.output
    assert result.output.count("http://127.0.0.1:8600/signin?token=") == 8
    again = run("demo", "--no-serve", "--cohort-dir", tmp_path / "cohort")
    assert "found demo study 'demo'" in again.output


def test_error_exits_are_one_clear_line(run, tmp_path, cohort_copy):
    no_database = run("study", "describe", "nope")
    assert no_database.exit_code == 7 and no_database.output.strip() == (
        f"error: There is no study database at {tmp_path / 'cli.sqlite'}; check the path (--db or READERSTUDY_DB).")
    assert not (tmp_path / "cli.sqlite").exists(), "a command that only reads never creates a database"
    run("db", "upgrade")
    missing = run("study", "describe", "nope")
    assert missing.exit_code == 2 and missing.output.strip() == "error: no study 'nope' (studies: none yet)"
    manifest = cohort_copy / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("PA:", "OBLIQUE:", 1))
    bad = run("cohort", "validate", manifest)
    assert bad.exit_code == 1
    assert "OBLIQUE" in bad.output and "problem(s)" in bad.output
    readers = write_demo_readers(tmp_path / "readers.csv")
    create = run("study", "create", "x", "--design", "chexone", "--cohort", manifest, "--readers", readers)
    assert create.exit_code == 5 and create.output.startswith("error: ")
    design = run("study", "create", "x", "--design", tmp_path / "nothing.toml", "--cohort", manifest,
                 "--readers", readers)
    assert design.exit_code == 5 and "cannot read the design file" in design.output
    fmt = run("export", "nope", "--out", tmp_path, "--format", "xlsx")
    assert fmt.exit_code == 2 and "Invalid value for '--format'" in fmt.output


def test_cli_reference_is_up_to_date():
    from study_app.cli_reference import render_cli_reference

    assert DOCS.read_text() == render_cli_reference(), (
        "docs/cli.md is stale: run `python -m study_app.cli_reference > docs/cli.md`"
    )


def test_coordinator_add_stores_only_a_hash(run, tmp_path):
    result = run("coordinator", "add", "alice", "--password", "correct horse battery")
    assert result.exit_code == 0 and "coordinator 'alice' created" in result.output
    again = run("coordinator", "add", "alice", "--password", "another long one")
    assert again.exit_code == 4 and "already exists" in again.output
    short = run("coordinator", "add", "bob", "--password", "x")
    assert short.exit_code == 5 and "at least" in short.output
    import sqlite3

    row = sqlite3.connect(tmp_path / "cli.sqlite").execute("SELECT password_hash FROM coordinator").fetchone()
    assert row[0].startswith("$argon2id$") and "correct horse" not in row[0]


def test_demo_prints_a_working_coordinator_password(run, demo_cohort_dir, tmp_path):
    import re
    import shutil

    from study_app.services.auth import verify_coordinator_password
    from study_app.services.database import open_database

    shutil.copytree(demo_cohort_dir, tmp_path / "cohort")
    first = run("demo", "--no-serve", "--cohort-dir", tmp_path / "cohort").output
    second = run("demo", "--no-serve", "--cohort-dir", tmp_path / "cohort").output
    passwords = [re.search(r"password (\S+)", out).group(1) for out in (first, second)]
    assert passwords[0] != passwords[1]
    db = open_database(f"sqlite:///{tmp_path / 'cli.sqlite'}")
    assert verify_coordinator_password(db, "demo", passwords[1]) is not None
    assert verify_coordinator_password(db, "demo", passwords[0]) is None
    db.dispose()


def test_audit_blinding_says_no_leak_on_the_demo_and_exits_8_on_one(run, tmp_path, demo_cohort_dir):
    import json

    from sqlalchemy import select

    from study_app.demo import build_demo_study
    from study_app.services.database import open_database
    from study_app.store.models import Arm, Assignment

    db_url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    db = open_database(db_url)
    import shutil

    shutil.copytree(demo_cohort_dir, tmp_path / "cohort")
    build_demo_study(db, cohort_dir=tmp_path / "cohort")
    clean = run("audit", "blinding", "demo", "--db", db_url, "--no-pages", "--json", tmp_path / "clean.json")
    assert clean.exit_code == 0, clean.output
    assert "no presentation feature predicts the draft source" in clean.output
    assert json.loads((tmp_path / "clean.json").read_text())["leaks"] == []
    with db.transaction() as session:  # the old release rule: model-draft edits open before the others
        for assignment, arm in session.execute(select(Assignment, Arm).join(Arm, Assignment.arm_id == Arm.id)):
            if arm.key == "attending_edit_model":
                assignment.status = "ready"
    db.dispose()
    leaky = run("audit", "blinding", "demo", "--db", db_url, "--no-pages")
    assert leaky.exit_code == 8
    assert "LEAK: attending/edit worklist.state (state) predicts the source" in leaky.output

def test_plan_power_prints_the_grid_and_writes_table_and_plot(run, tmp_path):
    result = run("plan", "power", "--design", "chexone", "--readers", "6,12", "--cases", "80,240",
                 "--out", tmp_path / "power")
    assert result.exit_code == 0, result.output
    assert "power of resident_drafting_time (time ratio 0.8" in result.output
    assert "fewest readers reaching 80%" in result.output or "no grid cell reaches 80%" in result.output
    assert (tmp_path / "power" / "power.csv").read_text().startswith("n_readers,n_cases")
    assert "plotly" in (tmp_path / "power" / "power.html").read_text()[:5000].lower()
    bad = run("plan", "power", "--design", "chexone", "--effect", "-1")
    assert bad.exit_code == 5 and bad.output.startswith("error: cannot plan power: a time-ratio effect must be positive")


def test_analyze_puts_the_pre_specified_primary_result_first(run, tmp_path):
    from analysis.simulate import simulate_study, write_export

    write_export(simulate_study(seed=2), tmp_path / "export")
    result = run("analyze", tmp_path / "export", "--out", tmp_path / "report", "--n-boot", "100")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("primary endpoint resident_drafting_time (shipped default plan): ") and "p " in first
