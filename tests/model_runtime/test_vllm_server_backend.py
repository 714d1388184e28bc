"""The vllm-server backend against a real loopback HTTP server: readiness, retries, timeouts, sampling body, provenance."""

import asyncio
import re
import time

import pytest

from model_runtime.backends import BackendUnavailable, DraftingError, SamplingParams, get_backend
from tests.fakes.openai_server import serve_openai

FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "ready_timeout_s": 5.0}


def run(coro):
    return asyncio.run(coro)


async def generate_once(backend, request):
    try:
        return await backend.generate(request)
    finally:
        await backend.aclose()


def test_503_then_success_is_retried(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(script=[503, 503, "ok"]) as server:
        backend = get_backend("vllm-server", base_url=server.url, max_retries=3, **FAST)
        [result] = run(generate_once(backend, request))
    assert server.chat_calls == 3 and backend.attempts == 3
    assert result.parse_status == "ok" and result.error is None


@pytest.mark.parametrize("transient", [429, 500, 502, 504, "drop"])
def test_transient_failures_are_retried(findings_requests, transient):
    [request] = findings_requests(1)
    with serve_openai(script=[transient, "ok"]) as server:
        backend = get_backend("vllm-server", base_url=server.url, **FAST)
        [result] = run(generate_once(backend, request))
    assert server.chat_calls == 2
    assert result.finish_reason == "stop"


@pytest.mark.parametrize("permanent", [400, 404, 422, "malformed"])
def test_client_errors_and_malformed_json_are_never_retried(findings_requests, permanent):
    [request] = findings_requests(1)
    with serve_openai(script=[permanent, "ok"]) as server:
        backend = get_backend("vllm-server", base_url=server.url, max_retries=4, **FAST)
        with pytest.raises(DraftingError) as caught:
            run(generate_once(backend, request))
    assert server.chat_calls == 1
    assert caught.value.transient is False and caught.value.attempts == 1
    assert request.case_id in str(caught.value)


def test_retries_stop_after_max_retries(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(script=[503] * 10) as server:
        backend = get_backend("vllm-server", base_url=server.url, max_retries=2, **FAST)
        with pytest.raises(DraftingError, match="transient failure after 3 attempt") as caught:
            run(generate_once(backend, request))
    assert server.chat_calls == 3 and caught.value.transient


def test_per_request_timeout_then_retry(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(script=["hang", "ok"], hang_s=3.0) as server:
        backend = get_backend("vllm-server", base_url=server.url, request_timeout_s=0.3, **FAST)
        started = time.monotonic()
        [result] = run(generate_once(backend, request))
        elapsed = time.monotonic() - started
    assert server.chat_calls == 2 and result.parse_status == "ok"
    assert elapsed < 2.5  # did not wait for the hung answer


def test_timeout_without_retries_fails_as_transient(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(script=["hang"], hang_s=3.0) as server:
        backend = get_backend("vllm-server", base_url=server.url, request_timeout_s=0.3, max_retries=0, **FAST)
        with pytest.raises(DraftingError) as caught:
            run(generate_once(backend, request))
    assert caught.value.transient and "Timeout" in str(caught.value)


def test_waits_for_health_before_the_first_request(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(healthy_after_s=0.4) as server:
        backend = get_backend("vllm-server", base_url=server.url, **FAST)
        [result] = run(generate_once(backend, request))
        health_checks = [p for p in server.paths if p == "GET /health"]
    assert len(health_checks) >= 2 and result.parse_status == "ok"


def test_unhealthy_server_fails_at_the_deadline(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(healthy_after_s=60) as server:
        backend = get_backend("vllm-server", base_url=server.url, ready_timeout_s=0.3)
        with pytest.raises(BackendUnavailable, match="not healthy after"):
            run(generate_once(backend, request))
    assert server.chat_calls == 0


def test_model_not_served_lists_what_is_served(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(models=["Qwen/Qwen2.5-VL-3B-Instruct", "other"]) as server:
        backend = get_backend("vllm-server", base_url=server.url + "/v1", **FAST)
        with pytest.raises(BackendUnavailable, match=r"does not serve 'StanfordAIMI/CheXOne'.*Qwen/Qwen2.5-VL-3B-Instruct, other"):
            run(generate_once(backend, request))
    assert server.chat_calls == 0


def test_served_model_name_is_sent_and_model_id_recorded(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(models=["chexone"], version=None) as server:
        backend = get_backend("vllm-server", base_url=server.url, served_model_name="chexone",
                              model_revision="0123abcd", **FAST)
        [result] = run(generate_once(backend, request))
    assert server.requests[0]["model"] == "chexone"
    assert result.model_id == "StanfordAIMI/CheXOne" and result.model_revision == "0123abcd"
    assert result.server_version is None  # no /version endpoint


def test_every_sampling_parameter_is_in_the_body(findings_requests):
    sampling = SamplingParams(temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.05, max_tokens=321, seed=7, n=3)
    [request] = findings_requests(1, sampling=sampling)
    with serve_openai() as server:
        backend = get_backend("vllm-server", base_url=server.url, **FAST)
        results = run(generate_once(backend, request))
    body = server.requests[0]
    assert {k: body[k] for k in ("temperature", "top_p", "top_k", "repetition_penalty", "max_tokens", "seed", "n")} == {
        "temperature": 0.7, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.05, "max_tokens": 321, "seed": 7, "n": 3,
    }
    assert body["messages"] == request.messages()
    assert [r.choice_index for r in results] == [0, 1, 2]
    assert len({r.raw_output for r in results}) == 3
    assert all(r.completion_tokens is None and r.prompt_tokens == 400 for r in results)


def test_defaults_are_sent_explicitly_too(findings_requests):
    [request] = findings_requests(1)
    with serve_openai() as server:
        run(generate_once(get_backend("vllm-server", base_url=server.url, **FAST), request))
    body = server.requests[0]
    assert (body["temperature"], body["top_p"], body["top_k"], body["repetition_penalty"], body["n"], body["seed"]) == (
        0.0, 1.0, -1, 1.0, 1, 0)


def test_length_cut_output_is_flagged(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(script=["length"]) as server:
        [result] = run(generate_once(get_backend("vllm-server", base_url=server.url, **FAST), request))
    assert result.finish_reason == "length"
    assert result.parse_status == "unclosed_box"


def test_provenance_fields_are_filled(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(latency_s=0.05) as server:
        backend = get_backend("vllm-server", base_url=server.url, model_revision="deadbeef", **FAST)
        [result] = run(generate_once(backend, request))
    assert result.key == request.key and result.case_id == request.case_id and result.task == "findings"
    assert result.backend == "vllm-server" and result.server_version == "vllm 0.11.0-fake"
    assert result.model_revision == "deadbeef" and result.mode == "reasoning"
    assert result.prompt == request.prompt_text and result.template == "findings-indication-v1"
    assert result.sampling == SamplingParams().to_dict() and result.seed == 0
    assert result.input_hash == request.input_hash and len(result.input_hash) == 64
    assert result.raw_output and result.reasoning and result.report.startswith("No acute cardiopulmonary process")
    assert result.prompt_tokens == 400 and result.completion_tokens > 0
    assert result.latency_s >= 0.05
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", result.created_at)
    assert set(result.to_dict()) >= {"raw_output", "parse_status", "finish_reason", "input_hash", "error"}


def test_in_flight_cap_holds_whatever_the_caller_does(findings_requests):
    requests = findings_requests(12)
    with serve_openai(latency_s=0.1) as server:
        backend = get_backend("vllm-server", base_url=server.url, max_in_flight=3, **FAST)

        async def flood():
            try:
                return await asyncio.gather(*(backend.generate(r) for r in requests))
            finally:
                await backend.aclose()

        results = run(flood())
    assert len(results) == 12 and server.max_in_flight == 3


def test_backend_can_be_reused_across_event_loops(findings_requests):
    a, b = findings_requests(2)
    with serve_openai() as server:
        backend = get_backend("vllm-server", base_url=server.url, **FAST)
        run(generate_once(backend, a))
        run(generate_once(backend, b))
    assert server.chat_calls == 2


def test_a_failed_readiness_check_is_retried_on_the_next_request(findings_requests):
    [request] = findings_requests(1)
    with serve_openai(healthy_after_s=0.6) as server:
        backend = get_backend("vllm-server", base_url=server.url, ready_timeout_s=0.2, max_in_flight=64)
        with pytest.raises(BackendUnavailable):
            run(generate_once(backend, request))
        time.sleep(0.5)
        backend.ready_timeout_s = 5.0

        async def twice():
            try:
                first = await backend.generate(request)
                pools = len(backend._clients)
                return first, pools
            finally:
                await backend.aclose()

        [result], pools = run(twice())
    assert result.parse_status == "ok"
    assert pools == 8  # 64 in flight over pools of 8; none leaked from the failed start
