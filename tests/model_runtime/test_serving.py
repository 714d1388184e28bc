"""The recommended vllm serve line and the concurrency-1-vs-64 determinism check."""

import asyncio
import json
import shlex

from model_runtime.backends import get_backend
from model_runtime.serving import determinism_check, main, serve_command
from tests.fakes.openai_server import serve_openai

FAST = {"backoff_base_s": 0.01, "ready_timeout_s": 5.0}


def test_serve_command_pins_everything_a_study_needs():
    line = serve_command(revision="0123456789abcdef0123456789abcdef01234567", port=8123, max_model_len=6144, seed=3)
    assert line.startswith("VLLM_BATCH_INVARIANT=1 vllm serve StanfordAIMI/CheXOne ")
    args = shlex.split(line.split(" ", 1)[1])
    value = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert value["--revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert value["--dtype"] == "bfloat16" and value["--port"] == "8123" and value["--seed"] == "3"
    assert value["--max-model-len"] == "6144"
    assert json.loads(value["--limit-mm-per-prompt"]) == {"image": 4, "video": 0}
    assert json.loads(value["--mm-processor-kwargs"])["max_pixels"] == 262144
    assert not serve_command(batch_invariant=False).startswith("VLLM_BATCH_INVARIANT")


def test_cli_prints_the_command(capsys):
    assert main(["command", "--revision", "abc"]) == 0
    assert "--revision abc" in capsys.readouterr().out


def _check(server_url, requests):
    backend = get_backend("vllm-server", base_url=server_url, **FAST)

    async def go():
        try:
            return await determinism_check(backend, requests, low=1, high=16)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_determinism_check_passes_on_a_batch_invariant_server(findings_requests):
    requests = findings_requests(12)
    with serve_openai(latency_s=0.01) as server:
        report = _check(server.url, requests)
    assert report.identical and report.n_requests == 12 and not report.mismatched_keys
    assert server.chat_calls == 24


def test_determinism_check_finds_load_dependent_outputs(findings_requests):
    requests = findings_requests(8)
    with serve_openai(latency_s=0.02) as server:
        # Imitate a server whose numerics change with batch size: output depends on load.
        server.behaviour.reply = lambda body: f"\\boxed{{Draft with {min(server.in_flight, 2)} in flight.}}"
        report = _check(server.url, requests)
    assert not report.identical and report.mismatched_keys


def test_cli_check_exits_zero_when_outputs_match(tmp_path, png_factory, capsys):
    for i in range(3):
        (tmp_path / f"case{i}.png").write_bytes(png_factory(120, 100, seed=i))
    with serve_openai() as server:
        code = main(["check", "--url", server.url, "--images", str(tmp_path), "--n", "3"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["identical"] is True and out["n_requests"] == 3
    assert server.chat_calls == 6
