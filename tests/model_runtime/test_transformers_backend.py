"""The transformers backend on a tiny randomly initialised Qwen2.5-VL; runs only where torch and transformers are installed."""

import asyncio
import importlib.util

import pytest

from model_runtime.backends import BackendUnavailable, SamplingParams, build_request
from model_runtime.backends.hf_transformers import TransformersBackend, hf_messages

HAS_STACK = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("transformers") is not None


def test_hf_messages_put_one_placeholder_per_image_before_the_text(png_factory):
    image = png_factory(64, 64)
    request = build_request(case_id="c", task="progression", mode="instruction", images=[image], prior_images=[image])
    messages = hf_messages(request)
    assert messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert messages[1]["content"][:2] == [{"type": "image"}, {"type": "image"}]
    assert messages[1]["content"][2] == {"type": "text", "text": request.prompt_text}


@pytest.mark.skipif(HAS_STACK, reason="checks the message shown when torch/transformers are absent")
def test_missing_stack_gives_an_install_hint(png_factory):
    request = build_request(case_id="c", task="findings", mode="instruction", images=[png_factory(64, 64)])
    with pytest.raises(BackendUnavailable, match=r"readerstudy\[transformers\]"):
        asyncio.run(TransformersBackend().generate(request))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_STACK, reason="torch and transformers are not installed (GPU extra)")
def test_tiny_random_qwen2_5_vl_generates_offline(png_factory):
    import torch
    from transformers import (
        AutoTokenizer,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )

    try:  # the processor needs a Qwen tokenizer; only a local cache makes this offline
        tokenizer = AutoTokenizer.from_pretrained("Qwen/Qwen2.5-VL-3B-Instruct", local_files_only=True)
    except OSError:
        pytest.skip("no cached Qwen2.5-VL tokenizer (run once online to cache it)")
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=3136, max_pixels=262144), tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )
    config = Qwen2_5_VLConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                       "out_hidden_size": 64, "fullatt_block_indexes": [1], "window_size": 112},
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    backend = TransformersBackend(model=model, processor=processor, device="cpu", dtype="float32")
    request = build_request(case_id="tiny", task="findings", mode="instruction", images=[png_factory(112, 112)],
                            sampling=SamplingParams(max_tokens=8))
    first = asyncio.run(backend.generate(request))
    second = asyncio.run(backend.generate(request))
    assert len(first) == 1 and first[0].backend == "transformers"
    assert first[0].completion_tokens <= 8 and first[0].finish_reason in ("stop", "length")
    assert first[0].raw_output == second[0].raw_output  # greedy and seeded: reproducible
