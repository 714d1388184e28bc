"""One protocol, one registry; request keys; the offline backends without a GPU."""

import asyncio
import importlib.util
import types

import pytest

from model_runtime.backends import (
    Backend,
    BackendUnavailable,
    SamplingParams,
    available_backends,
    build_request,
    get_backend,
    register_backend,
)
from model_runtime.backends.vllm_offline import VLLMOfflineBackend

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_registry_lists_the_four_backends_and_rejects_unknown_names():
    assert {"vllm-server", "vllm-offline", "transformers", "replay"} <= set(available_backends())
    with pytest.raises(ValueError, match="unknown backend 'gpt'; available"):
        get_backend("gpt")
    with pytest.raises(ValueError, match="already registered"):
        register_backend("replay")(type("Other", (), {}))


@pytest.mark.parametrize("name", ["vllm-server", "vllm-offline", "transformers", "replay"])
def test_every_backend_implements_the_protocol(name):
    backend = get_backend(name)
    assert isinstance(backend, Backend)
    assert backend.name == name and backend.model_id


def test_sampling_params_validate_and_serialise():
    assert SamplingParams().to_dict() == {"temperature": 0.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0,
                                          "max_tokens": 1024, "seed": 0, "n": 1}
    for bad in ({"temperature": -1}, {"top_p": 0}, {"top_k": 0}, {"n": 0}, {"max_tokens": 0}, {"repetition_penalty": 0}):
        with pytest.raises(ValueError):
            SamplingParams(**bad)


def test_request_key_depends_on_every_input_and_on_the_case(png_factory):
    image = png_factory(200, 160)
    base = dict(case_id="c1", task="findings", mode="reasoning", images=[image], indication="Cough")
    key = build_request(**base).key
    assert build_request(**base).key == key  # stable
    variants = [
        {"case_id": "c2"}, {"mode": "instruction"}, {"indication": "Fever"}, {"images": [png_factory(200, 160, seed=3)]},
        {"sampling": SamplingParams(seed=1)}, {"sampling": SamplingParams(max_tokens=512)},
        {"model_revision": "abc"}, {"model_id": "other/model"}, {"template": "findings-v1", "indication": ""},
    ]
    keys = {build_request(**{**base, **v}).key for v in variants}
    assert key not in keys and len(keys) == len(variants)
    # Same pixels under another case id: same input hash, different key.
    other = build_request(**{**base, "case_id": "c2"})
    assert other.input_hash == build_request(**base).input_hash


def test_build_request_refuses_incomplete_tasks(png_factory):
    image = png_factory(64, 64)
    with pytest.raises(ValueError, match="progression' needs prior_images"):
        build_request(case_id="c", task="progression", mode="reasoning", images=[image])
    with pytest.raises(ValueError, match="'mc' needs"):
        build_request(case_id="c", task="mc", mode="reasoning", images=[image])
    with pytest.raises(ValueError, match="at least one image"):
        build_request(case_id="c", task="findings", mode="reasoning", images=[])
    with pytest.raises(ValueError, match="unknown mode"):
        build_request(case_id="c", task="findings", mode="chat", images=[image])
    mc = build_request(case_id="c", task="mc", mode="reasoning", images=[image],
                       mc={"item_id": "q7", "question": "Effusion side?", "options": {"a": "Left", "b": "Right"}})
    assert mc.item_id == "q7" and mc.mc_options == {"A": "Left", "B": "Right"}


@pytest.mark.skipif(HAS_VLLM, reason="checks the message shown when vllm is absent")
def test_vllm_offline_without_vllm_says_how_to_install(findings_requests):
    [request] = findings_requests(1)
    backend = VLLMOfflineBackend()

    async def go():
        try:
            return await backend.generate(request)
        finally:
            await backend.aclose()

    with pytest.raises(BackendUnavailable, match=r"readerstudy\[vllm\]"):
        asyncio.run(go())


class FakeLLM:
    """Stands in for vllm.LLM: records each chat() batch and echoes one completion per sample."""

    def __init__(self):
        self.batches = []

    def chat(self, conversations, sampling_params, use_tqdm=False):
        self.batches.append(len(conversations))
        outputs = []
        for conversation, params in zip(conversations, sampling_params):
            n = params["n"] if isinstance(params, dict) else params.n
            text = conversation[1]["content"][-1]["text"]
            completions = [types.SimpleNamespace(index=i, text=f"Seen: {text[:20]} \\boxed{{Draft {i}.}}",
                                                 finish_reason="stop", token_ids=[1, 2, 3]) for i in range(n)]
            outputs.append(types.SimpleNamespace(prompt_token_ids=list(range(50)), outputs=completions))
        return outputs


def test_vllm_offline_gathers_concurrent_requests_into_one_batch(findings_requests):
    requests = findings_requests(10, sampling=SamplingParams(temperature=0.5, n=2))
    llm = FakeLLM()
    backend = VLLMOfflineBackend(llm=llm, batch_wait_s=0.05, model_revision="rev1")

    async def go():
        try:
            return await asyncio.gather(*(backend.generate(r) for r in requests))
        finally:
            await backend.aclose()

    results = asyncio.run(go())
    assert llm.batches == [10]
    assert [len(r) for r in results] == [2] * 10
    first = results[0][1]
    assert (first.choice_index, first.report, first.prompt_tokens, first.completion_tokens) == (1, "Draft 1.", 50, 3)
    assert first.backend == "vllm-offline" and first.model_revision == "rev1"
