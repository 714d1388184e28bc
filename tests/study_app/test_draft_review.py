"""Drafts checked before launch (issue #14): cut, unparsed, empty and duplicated drafts are reported by `drafts
generate` and `drafts status`, refused by launch unless a coordinator accepts a case's with a reason, and can be
regenerated with a larger token budget; drafting fails fast against an unreachable server, sends the API key, and
`model serve-command --study` serves the revision the study records."""

from __future__ import annotations

import json
import socket
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from study_app.cli import DRAFT_PROBLEMS_EXIT, main
from study_app.demo import write_demo_readers
from study_app.designs import shipped_design_path
from study_app.services.actors import SYSTEM
from study_app.services.creation import create_study
from study_app.services.draft_review import draft_issues
from study_app.services.drafting import needed_drafts
from study_app.store.models import Assignment, Draft, DraftOverride, Event
from tests.fakes.openai_server import default_reply, serve_openai

PINNED = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def draft_study(fresh_db, demo_cohort_dir, tmp_path, monkeypatch):
    create_study(fresh_db, SYSTEM, study_id="pilot", design_path=shipped_design_path(),
                 manifest_path=demo_cohort_dir / "manifest.csv",
                 readers_path=write_demo_readers(tmp_path / "readers.csv"), seed=3)
    monkeypatch.setenv("READERSTUDY_DB", fresh_db.url)
    monkeypatch.delenv("READERSTUDY_VLLM_API_KEY", raising=False)
    return fresh_db


def cli(*args, **kwargs):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, **kwargs)
    assert "Traceback" not in result.output
    return result


def drafting(command, server, *extra):
    return cli("drafts", command, "pilot", "--url", server.url, "--revision", PINNED, "--concurrency", "4", *extra)


def is_findings(body: dict) -> bool:
    return "boxed{A}" not in default_reply(body)


def cut_findings_at(budget: int):
    """A server that cuts every findings draft asked for with this max_tokens (the answers to items are short)."""
    return lambda body: "length" if body["max_tokens"] == budget and is_findings(body) else None


def n_findings(db) -> int:
    return sum(1 for n in needed_drafts(db, "pilot") if n.task == "findings")


def test_cut_drafts_are_problems_launch_refuses_them_and_a_larger_budget_replaces_them(draft_study):
    db = draft_study
    cut = n_findings(db)
    with serve_openai(fail_when=cut_findings_at(1024)) as server:
        first = drafting("generate", server)
        assert first.exit_code == DRAFT_PROBLEMS_EXIT, first.output
        assert f"0 failed; {cut} with problems ({cut} cut)" in first.stdout
        assert "finish_reason = length" in first.stderr and "its \\boxed{} answer is not closed" in first.stderr
        assert "readerstudy drafts regenerate pilot --problems --max-tokens 2048" in first.stderr

        launch = cli("study", "launch", "pilot")
        assert launch.exit_code == 4
        assert f"{cut} draft(s) readers would see have problems ({cut} cut)" in launch.stderr
        status = cli("drafts", "status", "pilot")
        lines = status.stdout.splitlines()
        assert all("PROBLEM cut" in line for line in lines[:cut]) and "PROBLEM" not in "".join(lines[cut:])
        assert f"{cut} with problems launch refuses" in lines[-1]

        same = drafting("regenerate", server, "--problems")  # the same budget would give the same text back
        assert same.exit_code == 5 and "raise --max-tokens" in same.stderr
        again = drafting("regenerate", server, "--problems", "--max-tokens", "2048")
        assert again.exit_code == 0, again.output
        assert f"{cut} generated" in again.stdout and "with problems" not in again.stdout
    assert draft_issues(db, SYSTEM, "pilot") == []
    assert cli("study", "launch", "pilot").exit_code == 0
    with db.read() as s:
        replaced = s.scalars(select(Draft).where(Draft.superseded_at.is_not(None))).all()
        assert len(replaced) == cut and all(d.finish_reason == "length" for d in replaced)  # kept, with provenance
        bound = {a.draft_id for a in s.scalars(select(Assignment)) if a.draft_id is not None}
        shown = s.scalars(select(Draft).where(Draft.id.in_(bound), Draft.task == "findings")).all()
        assert shown and all(d.sampling["max_tokens"] == 2048 and d.finish_reason == "stop" for d in shown)
        assert not bound & {d.id for d in replaced}


def test_a_case_accepted_with_a_reason_may_launch_and_the_decision_is_recorded(draft_study):
    db = draft_study
    first_findings = []

    def cut_the_first(body):
        if is_findings(body) and not first_findings:
            first_findings.append(body)
            return "length"
        return None

    with serve_openai(fail_when=cut_the_first) as server:
        assert drafting("generate", server).exit_code == DRAFT_PROBLEMS_EXIT
    [issue] = draft_issues(db, SYSTEM, "pilot")
    assert issue.problems == ("cut",) and not issue.accepted
    other = next(n.case_key for n in needed_drafts(db, "pilot") if n.case_key != issue.case_key)
    assert cli("drafts", "accept", "pilot", "--case", other, "--reason", "fine").exit_code == 5
    assert cli("drafts", "accept", "pilot", "--case", issue.case_key, "--reason", "").exit_code == 5

    reason = "cut after the last finding; nothing is missing"
    accepted = cli("drafts", "accept", "pilot", "--case", issue.case_key, "--reason", reason)
    assert accepted.exit_code == 0 and f"accepted: {issue.case_key} findings" in accepted.stdout
    launch = cli("study", "launch", "pilot")
    assert launch.exit_code == 0, launch.output
    assert "1 draft(s) with problems are shown as they are, by recorded decision" in launch.stderr
    with db.read() as s:
        override = s.scalars(select(DraftOverride)).one()
        assert (override.draft_id, override.problems, override.reason, override.actor) == (
            issue.draft_id, ["cut"], reason, "system:cli")
        event = s.scalars(select(Event).where(Event.kind == "draft_problems_accepted")).one()
        assert event.payload["reason"] == reason and event.payload["case"] == issue.case_key
        assert s.scalars(select(Assignment).where(Assignment.draft_id == issue.draft_id)).first() is not None


def findings_reply(text: str):
    """Findings drafts in this form ({trace}: a digest of the request, so drafts differ unless asked not to)."""
    def reply(body):
        return text.format(trace=default_reply(body).split("trace ")[1][:12]) if is_findings(body) else default_reply(body)

    return reply


@pytest.mark.parametrize("reply, code, detail", [
    (findings_reply("The lungs are clear and there is no effusion (trace {trace})"), "unparsed",
     "a reasoning-mode output without a \\boxed{} answer"),
    (findings_reply("Nothing to say ({trace}).\n\\boxed{{}}"), "empty", "the answer readers would see is empty"),
    (lambda body: default_reply(body).replace("\\boxed{A}", "\\boxed{Z}"), "unparsed", "names none of the options"),
], ids=["unparsed", "empty", "mc-unparsed"])
def test_duplicated_unparsed_and_empty_drafts_are_problems(draft_study, reply, code, detail):
    with serve_openai(reply=reply) as server:
        result = drafting("generate", server)
    assert result.exit_code == DRAFT_PROBLEMS_EXIT
    issues = draft_issues(draft_study, SYSTEM, "pilot")
    expected = sum(1 for n in needed_drafts(draft_study, "pilot") if (n.task == "mc") == (code == "unparsed"
                                                                                         and "options" in detail))
    assert len(issues) == expected and all(i.problems == (code,) for i in issues)
    assert all(detail in " ".join(i.details) for i in issues)
    assert f"problem: {issues[0].describe()}" in result.stderr


def test_two_stored_drafts_of_one_case_are_duplicated_and_a_regeneration_keeps_one(draft_study):
    db = draft_study
    n = len(needed_drafts(db, "pilot"))
    with serve_openai() as server:
        assert drafting("generate", server).exit_code == 0
        # Other settings are other requests: a second `generate` stores a second draft of every case.
        second = drafting("generate", server, "--max-tokens", "2048")
        assert second.exit_code == DRAFT_PROBLEMS_EXIT and f"{n} with problems ({n} duplicated)" in second.stdout
        issues = draft_issues(db, SYSTEM, "pilot")
        assert len(issues) == n and all(i.problems == ("duplicated",) for i in issues)
        assert "2 drafts are stored for it (max_tokens 1024, 2048); readers would see the first" in issues[0].details[0]
        case = issues[0].case_key
        assert drafting("regenerate", server, "--case", case, "--max-tokens", "3000").exit_code == \
            DRAFT_PROBLEMS_EXIT  # the other cases still have two
    assert case not in {i.case_key for i in draft_issues(db, SYSTEM, "pilot")}


def test_identical_normal_reports_of_different_cases_are_no_problem(draft_study):
    reply = findings_reply("The lungs are clear.\n\\boxed{{No acute cardiopulmonary process.}}")
    with serve_openai(reply=reply) as server:
        assert drafting("generate", server).exit_code == 0
    assert draft_issues(draft_study, SYSTEM, "pilot") == []


def test_a_good_run_has_no_problem_and_exits_0(draft_study):
    with serve_openai() as server:
        result = drafting("generate", server)
    assert result.exit_code == 0 and "with problems" not in result.stdout
    assert cli("study", "launch", "pilot").exit_code == 0


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_server_fails_fast_with_one_line(draft_study):
    started = time.monotonic()
    result = cli("drafts", "generate", "pilot", "--url", f"http://127.0.0.1:{closed_port()}", "--connect-timeout", "1")
    assert time.monotonic() - started < 15
    assert result.exit_code == 6
    assert result.stderr.startswith("waiting up to 1 s for the vLLM server")
    assert result.stderr.strip().splitlines()[-1].startswith("error: vLLM server at http://127.0.0.1:")
    assert "not healthy after 1 s" in result.stderr


def test_the_api_key_is_sent_from_its_variable_and_the_run_records_what_it_ran_against(draft_study, monkeypatch):
    with serve_openai(api_key="s3cret-key") as server:
        refused = drafting("generate", server)
        assert refused.exit_code == 6 and "401" in refused.stderr
        monkeypatch.setenv("MY_KEY", "s3cret-key")
        sent = drafting("generate", server, "--api-key-env", "MY_KEY", "--first-response-timeout", "42")
        assert sent.exit_code == 0, sent.output
    with draft_study.read() as s:
        started = s.scalars(select(Event).where(Event.kind == "drafting_started")).all()[-1].payload
    assert started["api_key_set"] is True and started["request_timeout_s"] == 42.0
    assert started["ready_timeout_s"] == 30.0 and started["root_url"] == server.url
    assert started["sampling"]["max_tokens"] == 1024 and started["model_revision"] == PINNED
    assert "s3cret-key" not in json.dumps(started)


def test_serve_command_for_a_study_serves_its_recorded_revision_and_warns_loudly_for_a_branch(draft_study):
    missing = cli("model", "serve-command", "--study", "pilot")
    assert missing.exit_code == 2 and "records no model revision yet" in missing.stderr
    with serve_openai() as server:
        assert cli("drafts", "generate", "pilot", "--url", server.url, "--revision", "main").exit_code == 0
    branch = cli("model", "serve-command", "--study", "pilot")
    assert branch.exit_code == 0
    assert "--revision main" in branch.stdout and "--host 127.0.0.1" in branch.stdout
    assert '--api-key "$READERSTUDY_VLLM_API_KEY"' in branch.stdout
    assert "WARNING: study 'pilot' records revision 'main', a branch or tag, not a commit." in branch.stderr
    assert cli("model", "serve-command", "--study", "pilot", "--revision", PINNED).exit_code == 2
    exposed = cli("model", "serve-command", "--study", "pilot", "--host", "0.0.0.0", "--no-api-key")
    assert exposed.exit_code == 2 and "without an API key" in exposed.stderr


def test_serve_command_for_a_pinned_study_has_no_warning(draft_study):
    with serve_openai() as server:
        assert drafting("generate", server).exit_code == 0
    pinned = cli("model", "serve-command", "--study", "pilot", "--host", "0.0.0.0")
    assert pinned.exit_code == 0 and f"--revision {PINNED}" in pinned.stdout and "--host 0.0.0.0" in pinned.stdout
    assert "WARNING" not in pinned.stderr
