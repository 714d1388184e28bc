"""Drafting a study through the CLI against a real loopback OpenAI-compatible server standing in for vLLM."""


import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from study_app.cli import DRAFT_PROBLEMS_EXIT, main
from study_app.demo import write_demo_readers
from study_app.designs import shipped_design_path
from study_app.services.actors import SYSTEM
from study_app.services.drafting import drafts_status, needed_drafts
from study_app.services.creation import create_study
from study_app.store.models import Draft, DraftFailure
from tests.fakes.openai_server import serve_openai


@pytest.fixture
def draft_study(fresh_db, demo_cohort_dir, tmp_path, monkeypatch):
    create_study(fresh_db, SYSTEM, study_id="pilot", design_path=shipped_design_path(),
                 manifest_path=demo_cohort_dir / "manifest.csv",
                 readers_path=write_demo_readers(tmp_path / "readers.csv"), seed=3)
    monkeypatch.setenv("READERSTUDY_DB", fresh_db.url)
    return fresh_db


def generate(server, *extra):
    result = CliRunner().invoke(
        main, ["drafts", "generate", "pilot", "--url", server.url, "--revision", "abc123", "--concurrency", "4",
               *extra], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def test_generate_records_failures_then_resumes_without_duplicates(draft_study):
    db = draft_study
    needed = len(needed_drafts(db, "pilot"))
    assert needed > 0
    with serve_openai(script=[400]) as server:
        first = generate(server)
        assert first.exit_code == 1
        assert f"{needed - 1} generated, 0 already stored, 1 failed" in first.output
        assert "failed: " in first.output
        second = generate(server)
        assert second.exit_code == 0, second.output
        assert f"1 generated, {needed - 1} already stored, 0 failed" in second.output
        calls = server.chat_calls
        third = generate(server)
        assert f"0 generated, {needed} already stored" in third.output
        assert server.chat_calls == calls  # a rerun sends nothing
    with db.read() as s:
        drafts = s.scalars(select(Draft).where(Draft.source_kind == "model")).all()
        assert s.scalar(select(func.count()).select_from(DraftFailure)) == 1
    assert len(drafts) == needed
    for draft in drafts:
        assert draft.backend == "vllm-server" and draft.model_id == "StanfordAIMI/CheXOne"
        assert draft.model_revision == "abc123" and draft.server_version.endswith("0.11.0-fake")
        assert draft.mode == "reasoning" and draft.parse_status == "ok"
        assert {"temperature", "top_p", "top_k", "repetition_penalty", "max_tokens", "seed"} <= set(draft.sampling)
        assert draft.seed == 3 and draft.prompt_tokens and draft.completion_tokens and draft.latency_s is not None
        assert len(draft.input_hash) == 64 and "boxed" in draft.raw_output and "boxed" not in draft.report
    rows = drafts_status(db, SYSTEM, "pilot")
    assert all(r.stored for r in rows) and sum(r.failures for r in rows) == 1


def test_drafts_status_command_lists_missing_and_stored(draft_study):
    result = CliRunner().invoke(main, ["drafts", "status", "pilot"], catch_exceptions=False)
    assert result.exit_code == 0 and "missing" in result.output and "0/" in result.output


def test_generate_refuses_an_unserved_model_with_a_clear_line(draft_study):
    with serve_openai(models=["someone/else"]) as server:
        result = generate(server)
    assert result.exit_code != 0
    # What it waits for, then one clear error line.
    assert result.stderr.startswith("waiting up to 30 s for the vLLM server at ")
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "someone/else" in error and result.stderr.rstrip().endswith(error)


def test_check_determinism_passes_on_a_deterministic_server_and_fails_otherwise(draft_study):
    import itertools

    counter = itertools.count()
    runner = CliRunner()
    with serve_openai() as server:
        same = runner.invoke(main, ["model", "check-determinism", "pilot", "--url", server.url, "--sample", "4",
                                    "--high", "4"], catch_exceptions=False)
    assert same.exit_code == 0, same.output
    assert "4 requests at concurrency 1 and 4: identical outputs" in same.output
    # A server whose answer changes from call to call, as an unstable batch would make it.
    with serve_openai(reply=lambda body: f"Trace.\n\\boxed{{Finding {next(counter)}.}}") as server:
        differ = runner.invoke(main, ["model", "check-determinism", "pilot", "--url", server.url, "--sample", "4",
                                      "--high", "4"], catch_exceptions=False)
    assert differ.exit_code == 1 and "4 differ" in differ.output and "model-serving.md" in differ.output
    with draft_study.read() as s:
        assert s.scalar(select(func.count()).select_from(Draft).where(Draft.source_kind == "model")) == 0


def test_generate_warns_when_the_revision_is_not_a_commit(draft_study):
    with serve_openai() as server:
        branch = generate(server)  # --revision abc123: a name, not a commit
        assert branch.exit_code == 0
        assert "warning: model revision 'abc123' is not a commit hash" in branch.stderr
    with serve_openai() as server:
        pinned = CliRunner().invoke(main, ["drafts", "generate", "pilot", "--url", server.url,
                                           "--revision", "0123456789abcdef0123456789abcdef01234567"])
        assert "warning" not in pinned.stderr
        # Another revision is another request: every case now has two drafts, and readers would see the first.
        assert pinned.exit_code == DRAFT_PROBLEMS_EXIT and "duplicated" in pinned.stdout


DRAFTER = """
import sys
from study_app.services.actors import SYSTEM
from study_app.services.console import vllm_server_backend
from study_app.services.database import open_database
from study_app.services.drafting import generate_drafts

# The revision the CLI's rerun below gives, so that the rerun resumes this run instead of drafting again.
generate_drafts(open_database(sys.argv[1]), SYSTEM, "pilot", vllm_server_backend(sys.argv[2], model_revision="abc123"),
                concurrency=1)
"""


def test_a_killed_drafting_run_is_reported_until_a_run_completes(draft_study, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from study_app.services.drafting import unfinished_drafting_run

    db = draft_study
    assert unfinished_drafting_run(db, SYSTEM, "pilot") is None
    script = tmp_path / "drafter.py"
    script.write_text(DRAFTER)
    # Slow answers and one request at a time: the kill lands with most of the batch still to do.
    with serve_openai(latency_s=0.2) as server:
        process = subprocess.Popen([sys.executable, str(script), db.url, server.url], cwd=os.getcwd(),
                                   env={**os.environ, "PYTHONPATH": os.getcwd()})
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # kill it once it has stored something, mid-batch
                with db.read() as s:
                    if s.scalar(select(func.count()).select_from(Draft).where(Draft.source_kind == "model")) >= 2:
                        break
                time.sleep(0.1)
        finally:  # on every path: a drafter left running would outlive the suite
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        unfinished = unfinished_drafting_run(db, SYSTEM, "pilot")
        assert unfinished is not None and unfinished.backend == "vllm-server"
        assert unfinished.total == len(needed_drafts(db, "pilot")) and unfinished.actor == "system:cli"
        status = CliRunner().invoke(main, ["drafts", "status", "pilot"])
        assert "has no recorded end" in status.stderr
        assert "missing" in status.stdout  # the kill left work undone
        assert generate(server).exit_code == 0
    assert unfinished_drafting_run(db, SYSTEM, "pilot") is None
    assert "has no recorded end" not in CliRunner().invoke(main, ["drafts", "status", "pilot"]).stderr


def test_a_run_that_stops_on_an_error_records_its_end(draft_study, monkeypatch):
    import model_runtime

    from study_app.services.console import vllm_server_backend
    from study_app.services.drafting import generate_drafts, unfinished_drafting_run
    from study_app.store.models import Event

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU fell over")

    monkeypatch.setattr(model_runtime, "generate_batch", broken)
    with serve_openai() as server:
        with pytest.raises(RuntimeError, match="GPU"):
            generate_drafts(draft_study, SYSTEM, "pilot", vllm_server_backend(server.url))
    assert unfinished_drafting_run(draft_study, SYSTEM, "pilot") is None
    with draft_study.read() as s:
        stopped = s.scalars(select(Event).where(Event.kind == "drafting_stopped")).one()
    assert "the GPU fell over" in stopped.payload["error"]
