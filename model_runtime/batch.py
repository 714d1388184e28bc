"""Pre-generate drafts for many requests: a bounded worker pool over an iterator, idempotent by request key, storage left to the caller."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sized
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from model_runtime.backends.base import Backend, DraftRequest, DraftResult, get_backend


@dataclass(frozen=True)
class BatchSummary:
    """Counts of one batch run.

    Attributes
    ----------
    total : int
        Requests taken from the iterable.
    skipped : int
        Already done (key in ``done_keys``) or repeated within this run.
    succeeded : int
        Requests whose results were all handed to ``on_result``.
    failed : int
        Requests reported through ``on_failure``.
    elapsed_s : float
        Wall-clock duration.
    """

    total: int
    skipped: int
    succeeded: int
    failed: int
    elapsed_s: float


async def run_batch(
    requests: Iterable[DraftRequest],
    backend: Backend,
    *,
    done_keys: set[str] | frozenset[str] = frozenset(),
    on_result: Callable[[DraftResult], None],
    on_failure: Callable[[DraftRequest, str], None],
    concurrency: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> BatchSummary:
    """Generate drafts for every request not yet done.

    Parameters
    ----------
    requests : iterable of DraftRequest
        Consumed lazily: a generator of 100,000 requests is never materialised.
    backend : Backend
    done_keys : set of str
        Keys already stored; their requests are skipped (rerunning a killed batch
        resumes where it stopped). Not modified.
    on_result : callable
        Called once per result (``n`` times for ``n`` samples), in the event-loop
        thread, right after the request finishes: store it here.
    on_failure : callable
        Called with the request and a one-line reason when generation (or
        ``on_result``) fails; the batch carries on.
    concurrency : int
        Workers, i.e. requests in flight at most.
    progress : callable, optional
        ``progress(processed, total)`` after each request; ``total`` is 0 when the
        iterable has no length.

    Returns
    -------
    BatchSummary

    Notes
    -----
    ``concurrency`` workers pull from one shared iterator, so memory holds at most
    ``concurrency`` requests and their results whatever the batch size. The results
    of one request are handed over without an ``await`` in between, so cancelling
    the batch never leaves a request half stored. Cancellation propagates
    (``asyncio.CancelledError``) after the workers stop.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    total_hint = len(requests) if isinstance(requests, Sized) else 0
    iterator = iter(requests)
    seen: set[str] = set()
    counts = {"total": 0, "skipped": 0, "succeeded": 0, "failed": 0}
    started = time.perf_counter()

    def report() -> None:
        if progress is not None:
            processed = counts["skipped"] + counts["succeeded"] + counts["failed"]
            progress(processed, total_hint)

    async def worker() -> None:
        # next() is synchronous, so workers of one event loop never race on the iterator.
        for request in iterator:
            counts["total"] += 1
            if request.key in done_keys or request.key in seen:
                counts["skipped"] += 1
                report()
                continue
            seen.add(request.key)
            try:
                results = await backend.generate(request)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one failed draft must not stop the batch
                counts["failed"] += 1
                on_failure(request, f"{type(exc).__name__}: {exc}")
                report()
                continue
            try:
                for result in results:
                    on_result(result)
            except Exception as exc:  # noqa: BLE001 - a storage error is this request's failure
                counts["failed"] += 1
                on_failure(request, f"on_result failed: {type(exc).__name__}: {exc}")
            else:
                counts["succeeded"] += 1
            report()

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return BatchSummary(elapsed_s=time.perf_counter() - started, **counts)


def generate_batch(
    requests: Iterable[DraftRequest],
    backend: Backend | str,
    *,
    done_keys: set[str] | frozenset[str] = frozenset(),
    on_result: Callable[[DraftResult], None],
    on_failure: Callable[[DraftRequest, str], None],
    concurrency: int = 16,
    progress: Callable[[int, int], None] | None = None,
    backend_options: dict[str, Any] | None = None,
) -> BatchSummary:
    """Synchronous :func:`run_batch` (CLI and scripts).

    ``backend`` may be a backend object or a registered name (built with
    ``backend_options``). The backend is closed at the end either way: its
    connections belong to this call's event loop, and it reopens on next use.
    """
    instance = get_backend(backend, **(backend_options or {})) if isinstance(backend, str) else backend

    async def main() -> BatchSummary:
        try:
            return await run_batch(
                requests, instance, done_keys=done_keys, on_result=on_result, on_failure=on_failure,
                concurrency=concurrency, progress=progress,
            )
        finally:
            await instance.aclose()

    return asyncio.run(main())
