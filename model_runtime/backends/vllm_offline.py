"""Draft on a local GPU with vLLM's offline ``LLM.chat``, gathering concurrent requests into batches (vllm imported lazily)."""

from __future__ import annotations

import asyncio
import contextlib
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


def _import_vllm() -> Any:
    try:
        import vllm  # noqa: PLC0415 - GPU extra, imported only when used
    except ImportError as exc:
        raise BackendUnavailable(
            "backend 'vllm-offline' needs vLLM and a CUDA GPU: pip install 'readerstudy[vllm]' "
            f"(import failed: {exc})"
        ) from exc
    return vllm


@register_backend("vllm-offline")
class VLLMOfflineBackend:
    """In-process vLLM engine.

    Parameters
    ----------
    model_id : str
    model_revision : str, optional
        Pinned revision, passed to ``vllm.LLM(revision=...)``.
    max_model_len : int
    max_images : int
        ``limit_mm_per_prompt={"image": max_images, "video": 0}``.
    max_pixels, min_pixels : int
        Image processor budget (``mm_processor_kwargs``).
    max_batch : int
        Largest number of requests given to one ``LLM.chat`` call.
    batch_wait_s : float
        How long the first request of a batch waits for others to join.
    llm : object, optional
        A ready ``vllm.LLM`` (or an object with the same ``chat`` method, for tests).
    **llm_options
        Extra ``vllm.LLM`` arguments (``gpu_memory_utilization``, ...).

    Notes
    -----
    ``LLM.chat`` is blocking and batches internally, so concurrent ``generate``
    calls are queued and handed over together from one worker thread; calling it
    once per request would run the GPU at batch size 1.
    """

    name = "vllm-offline"

    def __init__(
        self,
        *,
        model_id: str = DEFAULT_MODEL_ID,
        model_revision: str | None = DEFAULT_MODEL_REVISION,
        dtype: str = "bfloat16",
        max_model_len: int = 8192,
        max_images: int = 4,
        max_pixels: int = CHEXONE_MAX_PIXELS,
        min_pixels: int = MIN_PIXELS,
        seed: int = 0,
        max_batch: int = 256,
        batch_wait_s: float = 0.05,
        llm: Any = None,
        **llm_options: Any,
    ):
        self.model_id = model_id
        self.model_revision = model_revision
        self.server_version: str | None = None
        self._llm = llm
        self._llm_args = {
            "model": model_id, "revision": model_revision, "dtype": dtype, "max_model_len": max_model_len,
            "limit_mm_per_prompt": {"image": max_images, "video": 0},
            "mm_processor_kwargs": {"min_pixels": min_pixels, "max_pixels": max_pixels},
            "seed": seed, **llm_options,
        }
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.batch_sizes: list[int] = []
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    def _engine(self) -> Any:
        if self._llm is None:
            vllm = _import_vllm()
            self._llm = vllm.LLM(**self._llm_args)
            self.server_version = f"vllm {getattr(vllm, '__version__', '?')} (offline)"
        return self._llm

    def _sampling(self, request: DraftRequest) -> Any:
        s = request.sampling
        kwargs = dict(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                      repetition_penalty=s.repetition_penalty, max_tokens=s.max_tokens, seed=s.seed, n=s.n)
        try:
            vllm = _import_vllm()
        except BackendUnavailable:
            if self._llm is None:
                raise
            return kwargs  # an injected engine (tests) takes plain keyword dicts
        return vllm.SamplingParams(**kwargs)

    async def generate(self, request: DraftRequest) -> list[DraftResult]:
        """Queue the request for the next ``LLM.chat`` batch and wait for its results."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run_batches())
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((request, future))
        return await future

    async def _run_batches(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.max_batch:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            batch = [(r, f) for r, f in batch if not f.cancelled()]
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            try:
                outputs, latency = await asyncio.to_thread(self._chat, [r for r, _ in batch])
            except Exception as exc:  # noqa: BLE001 - reported to every waiting request
                if not isinstance(exc, DraftingError):  # keep BackendUnavailable's install hint as it is
                    exc = DraftingError(f"vllm-offline batch failed: {type(exc).__name__}: {exc}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (request, future), output in zip(batch, outputs):
                if future.done():
                    continue
                try:
                    future.set_result(self._results(request, output, latency))
                except Exception as exc:  # noqa: BLE001
                    future.set_exception(DraftingError(f"case {request.case_id}: cannot read vLLM output: {exc}"))

    def _chat(self, requests: list[DraftRequest]) -> tuple[list[Any], float]:
        engine = self._engine()
        started = time.perf_counter()
        outputs = engine.chat(
            [r.messages() for r in requests],
            sampling_params=[self._sampling(r) for r in requests],
            use_tqdm=False,
        )
        return list(outputs), time.perf_counter() - started

    def _results(self, request: DraftRequest, output: Any, latency: float) -> list[DraftResult]:
        prompt_tokens = len(getattr(output, "prompt_token_ids", None) or []) or None
        return [
            make_result(
                request, raw_output=completion.text, backend=self.name, model_id=self.model_id,
                model_revision=self.model_revision, server_version=self.server_version,
                finish_reason=getattr(completion, "finish_reason", None), prompt_tokens=prompt_tokens,
                completion_tokens=len(getattr(completion, "token_ids", None) or []) or None,
                latency_s=latency, choice_index=getattr(completion, "index", i),
            )
            for i, completion in enumerate(output.outputs)
        ]

    async def aclose(self) -> None:
        """Stop the batching worker; the engine (GPU memory) is released with the object."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._worker
        self._worker = None
        self._queue = None
