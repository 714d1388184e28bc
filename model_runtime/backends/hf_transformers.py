"""Draft with Hugging Face transformers (Qwen2.5-VL generate) on a local GPU or CPU; torch and transformers are imported lazily."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from typing import Any

from model_runtime.backends.base import (
    DEFAULT_MODEL_ID,
    DEFAULT_MODEL_REVISION,
    BackendUnavailable,
    DraftingError,
    DraftRequest,
    DraftResult,
    make_result,
    register_backend,
)
from model_runtime.preprocess import CHEXONE_MAX_PIXELS, MIN_PIXELS


def _import_stack() -> tuple[Any, Any]:
    try:
        import torch  # noqa: PLC0415 - GPU extra
        import transformers  # noqa: PLC0415
    except ImportError as exc:
        raise BackendUnavailable(
            "backend 'transformers' needs torch and transformers: pip install 'readerstudy[transformers]' "
            f"(import failed: {exc})"
        ) from exc
    return torch, transformers


def hf_messages(request: DraftRequest) -> list[dict]:
    """The request as a transformers chat: image placeholders first, then the user text."""
    n_images = len(request.images) + len(request.prior_images)
    content: list[dict] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": request.prompt_text})
    system = request.messages()[0]
    return [system, {"role": "user", "content": content}]


@register_backend("transformers")
class TransformersBackend:
    """Local ``Qwen2_5_VLForConditionalGeneration`` + ``AutoProcessor``.

    Parameters
    ----------
    model_id : str
    model_revision : str, optional
    device : str
        ``"cuda"``, ``"cpu"`` or ``"auto"`` (``device_map``).
    dtype : str
        ``"bfloat16"`` (GPU) or ``"float32"`` (CPU).
    max_pixels, min_pixels : int
        Image processor budget (matches the vLLM server settings).
    model, processor : optional
        Ready objects (tests build a tiny random model from a config).

    Notes
    -----
    One generation runs at a time (a lock): transformers' ``generate`` is not safe to
    run concurrently on one model. Sampling uses ``torch.manual_seed(seed)`` before
    each call so equal requests give equal outputs on the same hardware.
    ``finish_reason`` is ``"length"`` when ``max_tokens`` new tokens were produced
    without an end-of-sequence token, else ``"stop"``.
    """

    name = "transformers"

    def __init__(
        self,
        *,
        model_id: str = DEFAULT_MODEL_ID,
        model_revision: str | None = DEFAULT_MODEL_REVISION,
        device: str = "auto",
        dtype: str = "bfloat16",
        max_pixels: int = CHEXONE_MAX_PIXELS,
        min_pixels: int = MIN_PIXELS,
        model: Any = None,
        processor: Any = None,
    ):
        self.model_id = model_id
        self.model_revision = model_revision
        self.device = device
        self.dtype = dtype
        self.max_pixels = max_pixels
        self.min_pixels = min_pixels
        self._model = model
        self._processor = processor
        self._lock = threading.Lock()
        self.server_version: str | None = None

    def _load(self) -> tuple[Any, Any]:
        torch, transformers = _import_stack()
        self.server_version = f"transformers {transformers.__version__}, torch {torch.__version__}"
        if self._model is None:
            self._model = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained(
                self.model_id, revision=self.model_revision, torch_dtype=getattr(torch, self.dtype),
                device_map=self.device,
            )
            self._model.eval()
        if self._processor is None:
            self._processor = transformers.AutoProcessor.from_pretrained(
                self.model_id, revision=self.model_revision,
                min_pixels=self.min_pixels, max_pixels=self.max_pixels,
            )
        return self._model, self._processor

    def _generate_sync(self, request: DraftRequest) -> list[DraftResult]:
        from PIL import Image  # noqa: PLC0415 - only needed here

        torch, _ = _import_stack()
        with self._lock:
            model, processor = self._load()
            s = request.sampling
            images = [Image.open(io.BytesIO(png)).convert("RGB") for png in (*request.images, *request.prior_images)]
            text = processor.apply_chat_template(hf_messages(request), tokenize=False, add_generation_prompt=True)
            inputs = processor(text=[text], images=images or None, return_tensors="pt", padding=True)
            inputs = inputs.to(model.device)
            do_sample = s.temperature > 0
            generate_kwargs: dict[str, Any] = {
                "max_new_tokens": s.max_tokens, "do_sample": do_sample,
                "repetition_penalty": s.repetition_penalty, "num_return_sequences": s.n,
            }
            if do_sample:
                generate_kwargs.update(temperature=s.temperature, top_p=s.top_p)
                if s.top_k > 0:
                    generate_kwargs["top_k"] = s.top_k
            elif s.n > 1:
                raise DraftingError("n > 1 with temperature 0 would repeat one greedy output; set a temperature")
            torch.manual_seed(s.seed)
            started = time.perf_counter()
            with torch.inference_mode():
                generated = model.generate(**inputs, **generate_kwargs)
            latency = time.perf_counter() - started
            prompt_len = inputs["input_ids"].shape[1]
            new_tokens = generated[:, prompt_len:]
            eos_ids = model.generation_config.eos_token_id
            eos_ids = set(eos_ids if isinstance(eos_ids, (list, tuple)) else [eos_ids] if eos_ids is not None else [])
            results = []
            for index, row in enumerate(new_tokens):
                ids = row.tolist()
                pad = getattr(processor.tokenizer, "pad_token_id", None)
                stopped = any(t in eos_ids for t in ids)
                length = sum(1 for t in ids if t != pad) if pad is not None and stopped else len(ids)
                raw = processor.batch_decode([row], skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]
                results.append(make_result(
                    request, raw_output=raw, backend=self.name, model_id=self.model_id,
                    model_revision=self.model_revision, server_version=self.server_version,
                    finish_reason="stop" if stopped else "length", prompt_tokens=int(prompt_len),
                    completion_tokens=int(length), latency_s=latency, choice_index=index,
                ))
            return results

    async def generate(self, request: DraftRequest) -> list[DraftResult]:
        """Generate in a worker thread so the event loop stays responsive."""
        return await asyncio.to_thread(self._generate_sync, request)

    async def aclose(self) -> None:
        """Drop the model and processor so their memory can be freed."""
        self._model = None
        self._processor = None
