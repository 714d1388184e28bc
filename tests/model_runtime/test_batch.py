"""Batch pre-generation: idempotent, resumable after a kill, failure-tolerant, bounded in flight and in memory."""

import asyncio
import collections

import pytest

from model_runtime.backends import DraftingError, ReplayBackend, SamplingParams, get_backend, make_result
from model_runtime.batch import generate_batch, run_batch
from tests.fakes.openai_server import serve_openai

FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "ready_timeout_s": 5.0}


class ScriptedBackend:
    """In-memory backend: fails for chosen cases, counts calls and peak concurrency."""

    name = "scripted"
    model_id = "scripted:test"
    model_revision = None

    def __init__(self, failing=(), delay_s=0.0):
        self.failing = set(failing)
        self.delay_s = delay_s
        self.calls = collections.Counter()
        self.in_flight = 0
        self.max_in_flight = 0

    async def generate(self, request):
        self.calls[request.key] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            if request.case_id in self.failing:
                raise DraftingError(f"scripted failure for {request.case_id}")
            return [make_result(request, raw_output=f"\\boxed{{Draft {request.case_id}}}", backend=self.name,
                                model_id=self.model_id, model_revision=None) for _ in range(request.sampling.n)]
        finally:
            self.in_flight -= 1

    async def aclose(self):
        pass


def collect(requests, backend, **kwargs):
    stored, failures = [], []
    summary = asyncio.run(run_batch(requests, backend, on_result=stored.append,
                                    on_failure=lambda r, why: failures.append((r.case_id, why)), **kwargs))
    return summary, stored, failures


def test_done_keys_are_skipped_and_duplicates_within_a_run_too(findings_requests):
    requests = findings_requests(6)
    backend = ScriptedBackend()
    summary, stored, _ = collect(requests + requests[:2], backend, done_keys={requests[0].key, requests[1].key})
    assert (summary.total, summary.skipped, summary.succeeded, summary.failed) == (8, 4, 4, 0)
    assert sorted(r.case_id for r in stored) == [r.case_id for r in requests[2:]]
    assert all(count == 1 for count in backend.calls.values())


def test_a_failure_is_reported_and_never_stops_the_batch(findings_requests):
    requests = findings_requests(10)
    backend = ScriptedBackend(failing={"case-0003", "case-0007"})
    summary, stored, failures = collect(requests, backend, concurrency=3)
    assert (summary.succeeded, summary.failed) == (8, 2)
    assert sorted(case for case, _ in failures) == ["case-0003", "case-0007"]
    assert all("DraftingError: scripted failure" in why for _, why in failures)


def test_a_storage_error_counts_as_that_requests_failure(findings_requests):
    requests = findings_requests(4)
    failures = []

    def on_result(result):
        if result.case_id == "case-0001":
            raise OSError("disk full")

    summary = asyncio.run(run_batch(requests, ScriptedBackend(), on_result=on_result,
                                    on_failure=lambda r, why: failures.append(why)))
    assert (summary.succeeded, summary.failed) == (3, 1)
    assert failures == ["on_result failed: OSError: disk full"]


def test_workers_pull_lazily_so_memory_stays_bounded(findings_requests):
    template = findings_requests(1)[0]
    pulled = 0
    completed = []
    ahead = []

    def endless_requests(n):
        nonlocal pulled
        for i in range(n):
            pulled += 1
            ahead.append(pulled - len(completed))
            yield type(template)(**{**template.__dict__, "key": f"k{i}", "case_id": f"c{i}"})

    backend = ScriptedBackend(delay_s=0.001)
    summary = asyncio.run(run_batch(endless_requests(2000), backend, concurrency=8,
                                    on_result=completed.append, on_failure=lambda *_: None))
    assert summary.succeeded == 2000
    assert max(ahead) <= 8  # never more than `concurrency` requests held at once
    assert backend.max_in_flight == 8


def test_progress_reports_every_request_with_the_known_total(findings_requests):
    requests = findings_requests(5)
    seen = []
    collect(requests, ScriptedBackend(), done_keys={requests[0].key}, progress=lambda done, total: seen.append((done, total)))
    assert sorted(seen) == [(i, 5) for i in range(1, 6)]


def test_n_samples_each_become_a_result(findings_requests):
    requests = findings_requests(2, sampling=SamplingParams(temperature=0.8, n=4))
    _, stored, _ = collect(requests, ScriptedBackend())
    assert len(stored) == 8


def test_concurrency_cap_is_never_exceeded_at_the_server(findings_requests):
    requests = findings_requests(20)
    with serve_openai(latency_s=0.05) as server:
        backend = get_backend("vllm-server", base_url=server.url, **FAST)
        summary = generate_batch(requests, backend, on_result=lambda r: None, on_failure=lambda *_: None, concurrency=5)
    assert summary.succeeded == 20
    assert 3 <= server.max_in_flight <= 5


def test_resume_after_a_killed_batch_gives_every_draft_once(findings_requests):
    requests = findings_requests(30)
    store = {}  # the app's drafts table: (key, choice) -> result

    def on_result(result):
        assert (result.key, result.choice_index) not in store, "duplicate draft stored"
        store[(result.key, result.choice_index)] = result

    with serve_openai(latency_s=0.05) as server:
        backend = get_backend("vllm-server", base_url=server.url, **FAST)

        async def killed_run():
            task = asyncio.create_task(run_batch(requests, backend, on_result=on_result,
                                                 on_failure=lambda *_: None, concurrency=4))
            while len(store) < 8:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await backend.aclose()

        asyncio.run(killed_run())
        stored_before = len(store)
        assert 8 <= stored_before < 30
        done = {key for key, _ in store}
        summary = generate_batch(requests, backend, done_keys=done, on_result=on_result, on_failure=lambda *_: None)

    assert summary.skipped == stored_before and summary.succeeded == 30 - stored_before and summary.failed == 0
    assert {key for key, _ in store} == {r.key for r in requests}
    assert len(store) == 30


def test_generate_batch_builds_a_backend_by_name(findings_requests):
    requests = findings_requests(3, mode="instruction")
    outputs = {(r.case_id, "findings", None): f"Findings: Draft for {r.case_id}." for r in requests}
    stored = []
    summary = generate_batch(requests, "replay", backend_options={"outputs": outputs},
                             on_result=stored.append, on_failure=lambda *_: None)
    assert summary.succeeded == 3
    assert sorted(r.report for r in stored) == [f"Draft for case-000{i}." for i in range(3)]


def test_replay_backend_records_and_errors(findings_requests, tmp_path):
    a, b = findings_requests(2)
    path = tmp_path / "recorded.jsonl"
    path.write_text(
        '{"case_id": "case-0000", "task": "findings", "raw_output": "r1 \\\\boxed{One.}"}\n'
        '{"key": "%s", "raw_output": "\\\\boxed{Two.}", "finish_reason": "length"}\n' % b.key
    )
    backend = ReplayBackend(path=path, name="demo-2026", model_revision="rec-1")
    [first] = asyncio.run(backend.generate(a))
    [second] = asyncio.run(backend.generate(b))
    assert (first.report, first.reasoning, first.model_id, first.backend) == ("One.", "r1", "replay:demo-2026", "replay")
    assert (second.report, second.finish_reason) == ("Two.", "length")
    missing = findings_requests(3)[2]
    with pytest.raises(DraftingError, match="no recorded output for case 'case-0002'"):
        asyncio.run(backend.generate(missing))
