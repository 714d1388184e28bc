"""Several vLLM servers as one backend: load spread by in-flight share, per-server caps, failover on a dead server."""

import asyncio
import contextlib

import pytest

from model_runtime import generate_batch, get_backend
from model_runtime.backends import BackendUnavailable, DraftingError
from model_runtime.backends.server_pool import ServerPool
from tests.fakes.openai_server import serve_openai

FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "ready_timeout_s": 2.0, "max_retries": 0}


def pool_of(servers, cap: int = 4, **options) -> ServerPool:
    return ServerPool([get_backend("vllm-server", base_url=s.url, max_in_flight=cap, **FAST) for s in servers],
                      ready_timeout_s=5.0, **options)


def run_all(backend, requests, concurrency: int):
    results, failures = [], []
    summary = generate_batch(requests, backend, on_result=results.append,
                             on_failure=lambda request, error: failures.append(error), concurrency=concurrency)
    return summary, results, failures


def test_requests_spread_over_the_servers_each_within_its_cap(findings_requests):
    requests = findings_requests(60)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(serve_openai(latency_s=0.05)) for _ in range(3)]
        summary, results, failures = run_all(pool_of(servers, cap=4), requests, concurrency=12)
    assert summary.succeeded == 60 and not failures
    calls = [s.chat_calls for s in servers]
    assert sum(calls) == 60 and min(calls) >= 12, calls  # each server took a share
    assert all(s.max_in_flight <= 4 for s in servers), [s.max_in_flight for s in servers]
    assert {r.backend for r in results} == {"vllm-server"}


def test_a_dead_server_is_failed_over_and_no_request_is_lost(findings_requests):
    requests = findings_requests(40)
    with serve_openai(latency_s=0.02) as alive, serve_openai(latency_s=0.02) as doomed:
        backend = pool_of([alive, doomed], cap=4)
        first, _, failures = run_all(backend, requests[:10], concurrency=8)
        assert first.succeeded == 10 and doomed.chat_calls > 0
        before = list(backend.served)
        doomed.stop()  # the server goes away between two batches (a crash, a reboot)
        second, results, failures = run_all(backend, requests[10:], concurrency=8)
    assert second.succeeded == 30 and not failures
    # Every request of the second batch was answered by the survivor; the dead one answered none.
    assert backend.served[0] - before[0] == 30 and backend.served[1] == before[1]


def test_a_server_serving_another_model_stops_the_batch_before_any_request(findings_requests):
    with serve_openai(models=["someone-else"]) as wrong, serve_openai() as right:
        backend = ServerPool([get_backend("vllm-server", base_url=s.url, served_model_name="StanfordAIMI/CheXOne",
                                          **FAST) for s in (right, wrong)])
        with pytest.raises(BackendUnavailable, match="does not serve"):
            asyncio.run(backend.ensure_ready())


def test_no_healthy_server_is_one_clear_error():
    backend = ServerPool([get_backend("vllm-server", base_url=f"http://127.0.0.1:{port}", **FAST)
                          for port in (9, 10)], ready_timeout_s=1.0)
    with pytest.raises(BackendUnavailable, match="none of the 2 vLLM servers became healthy"):
        asyncio.run(backend.ensure_ready())


def test_every_server_refusing_a_request_fails_it_like_one_server_would(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(script=[503] * 5) as a, serve_openai(script=[503] * 5) as b:
        backend = pool_of([a, b])
        with pytest.raises(DraftingError, match="every one of 2 servers failed it"):
            asyncio.run(backend.generate(request))
    assert a.chat_calls == 1 and b.chat_calls == 1


def test_one_pool_one_model_and_revision():
    with pytest.raises(ValueError, match="one model and revision"):
        ServerPool([get_backend("vllm-server", base_url="http://a:1", model_revision="x" * 40),
                    get_backend("vllm-server", base_url="http://b:1", model_revision="y" * 40)])
