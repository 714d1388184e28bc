"""Replay recorded model outputs (demo and tests): no GPU, no network, same provenance as a live backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from model_runtime.backends.base import DraftingError, DraftRequest, DraftResult, make_result, register_backend


def _lookup_keys(record: Mapping[str, Any]) -> list[Any]:
    keys: list[Any] = []
    if record.get("key"):
        keys.append(record["key"])
    if record.get("case_id") is not None:
        keys.append((str(record["case_id"]), record.get("task", "findings"), record.get("item_id")))
    return keys


@register_backend("replay")
class ReplayBackend:
    """Answer requests from recorded outputs.

    Parameters
    ----------
    outputs : mapping or iterable of dict, optional
        Either a mapping from a request key, or from ``(case_id, task, item_id)``, to
        a raw output (``str``) or a list of raw outputs (one per sample); or an
        iterable of records ``{"case_id", "task", "item_id", "key"?, "raw_output",
        "finish_reason"?}`` (one record per sample, in order).
    path : str or Path, optional
        A JSONL file of such records (the demo's recorded drafts).
    name : str
        Recording name; the model id becomes ``replay:<name>``.
    model_revision : str, optional
    latency_s : float
        Simulated latency per request.

    Notes
    -----
    Lookup tries the request key first, then ``(case_id, task, item_id)``. With
    ``n > 1`` the first ``n`` recorded samples are returned; asking for more than
    were recorded is an error rather than a silent repeat.
    """

    name = "replay"

    def __init__(
        self,
        outputs: Mapping[Any, Any] | Iterable[Mapping[str, Any]] | None = None,
        *,
        path: str | Path | None = None,
        name: str = "demo",
        model_revision: str | None = None,
        latency_s: float = 0.0,
    ):
        self.model_id = f"replay:{name}"
        self.model_revision = model_revision
        self.latency_s = latency_s
        self._samples: dict[Any, list[tuple[str, str | None]]] = {}
        records: list[Mapping[str, Any]] = []
        if path is not None:
            with open(path, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            records.append(json.loads(line))
                        except ValueError as exc:
                            raise ValueError(f"{path}:{number}: not a JSON object: {exc}") from None
        if isinstance(outputs, Mapping):
            for lookup, value in outputs.items():
                values = [value] if isinstance(value, str) else list(value)
                lookup = tuple(lookup) if isinstance(lookup, list) else lookup
                self._samples[lookup] = [(str(v), "stop") for v in values]
        elif outputs is not None:
            records.extend(outputs)
        for record in records:
            if "raw_output" not in record:
                raise ValueError(f"replay record without raw_output: {dict(record)!r}")
            sample = (str(record["raw_output"]), record.get("finish_reason", "stop"))
            lookups = _lookup_keys(record)
            if not lookups:
                raise ValueError(f"replay record needs a key or a case_id: {dict(record)!r}")
            for lookup in lookups:
                self._samples.setdefault(lookup, []).append(sample)

    def __len__(self) -> int:
        return len(self._samples)

    async def generate(self, request: DraftRequest) -> list[DraftResult]:
        """Return the recorded output(s) for ``request``; :class:`DraftingError` when none was recorded."""
        samples = self._samples.get(request.key) or self._samples.get((request.case_id, request.task, request.item_id))
        if not samples:
            raise DraftingError(
                f"no recorded output for case {request.case_id!r} task {request.task!r} item {request.item_id!r}"
            )
        n = request.sampling.n
        if n > len(samples):
            raise DraftingError(f"case {request.case_id!r}: {n} samples asked, {len(samples)} recorded")
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return [
            make_result(
                request, raw_output=raw, backend=self.name, model_id=self.model_id,
                model_revision=self.model_revision, server_version=None, finish_reason=finish,
                latency_s=self.latency_s, choice_index=i,
            )
            for i, (raw, finish) in enumerate(samples[:n])
        ]

    async def aclose(self) -> None:
        """Nothing to release."""
