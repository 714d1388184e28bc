"""How to serve CheXOne with vLLM for a study (the recommended ``vllm serve`` line) and how to check that drafts do not depend on batching."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from model_runtime.backends.base import (
    DEFAULT_MODEL_ID,
    DEFAULT_MODEL_REVISION,
    Backend,
    DraftRequest,
    DraftResult,
    SamplingParams,
    build_request,
    get_backend,
)
from model_runtime.batch import run_batch
from model_runtime.preprocess import CHEXONE_MAX_PIXELS, MIN_PIXELS

MAX_IMAGES_PER_PROMPT = 4  # current views + prior views of a progression request
# The environment variable that holds the server's API key, on the GPU host (`vllm serve --api-key "$VAR"`) and on
# the drafting client (study_app's `drafts generate --api-key-env`, whose default it is).
API_KEY_ENV = "READERSTUDY_VLLM_API_KEY"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve_command(
    model: str = DEFAULT_MODEL_ID,
    revision: str = DEFAULT_MODEL_REVISION,
    port: int = 8000,
    *,
    host: str = "127.0.0.1",
    served_model_name: str | None = None,
    max_model_len: int = 8192,
    max_images: int = MAX_IMAGES_PER_PROMPT,
    max_pixels: int = CHEXONE_MAX_PIXELS,
    min_pixels: int = MIN_PIXELS,
    seed: int = 0,
    gpu_memory_utilization: float = 0.90,
    max_num_seqs: int = 64,
    batch_invariant: bool = True,
    api_key_env: str | None = None,
) -> str:
    """The recommended ``vllm serve`` command line for CheXOne.

    Parameters
    ----------
    model : str
        Hugging Face id.
    revision : str
        The commit of the weights (``--revision``); a study must pin a 40-hex commit. The default,
        ``DEFAULT_MODEL_REVISION`` (``main``), is a moving branch: :func:`is_pinned_revision` says so, and the
        CLI prints :func:`unpinned_revision_warning` beside the command.
    port, host : int, str
        Where the server listens. Any address but loopback (``0.0.0.0`` for the drafting client on another
        machine) needs ``api_key_env``: a bare vLLM server answers anyone who can reach the port.
    served_model_name : str, optional
        Name clients use (``--served-model-name``); default the model id.
    max_model_len : int
        Context length: 4 views x <= 334 image tokens + prompt + 1024-2048 generated
        tokens fit in 8192.
    max_images : int
        ``--limit-mm-per-prompt`` image limit (videos are set to 0, which also skips
        the video profiling memory).
    max_pixels, min_pixels : int
        ``--mm-processor-kwargs``: the same budget the client resizes to, so the server
        never resamples again.
    seed : int
        Engine seed (``--seed``).
    gpu_memory_utilization : float
    max_num_seqs : int
        Concurrent sequences; match the client's concurrency.
    batch_invariant : bool
        Prefix ``VLLM_BATCH_INVARIANT=1`` so an output does not depend on what else
        was in the batch (compute capability >= 8.0, beta in vLLM).
    api_key_env : str, optional
        Name of an environment variable holding the API key (``--api-key "$VAR"``); the client reads the same
        variable (:data:`API_KEY_ENV` by default on both sides).

    Returns
    -------
    str
        One shell command line.

    Raises
    ------
    ValueError
        A ``host`` other than loopback without ``api_key_env``.

    Examples
    --------
    >>> print(serve_command(revision="abc123"))  # doctest: +ELLIPSIS
    VLLM_BATCH_INVARIANT=1 vllm serve StanfordAIMI/CheXOne --revision abc123 ...
    """
    if host not in LOOPBACK_HOSTS and not api_key_env:
        raise ValueError(f"binding {host} without an API key lets anyone who reaches port {port} use the model; "
                         "give an API key variable, or bind 127.0.0.1")
    args = [
        "vllm", "serve", model,
        "--revision", revision,
        "--host", host, "--port", str(port),
        "--dtype", "bfloat16",
        "--max-model-len", str(max_model_len),
        "--limit-mm-per-prompt", json.dumps({"image": max_images, "video": 0}, separators=(",", ":")),
        "--mm-processor-kwargs", json.dumps({"min_pixels": min_pixels, "max_pixels": max_pixels}, separators=(",", ":")),
        "--seed", str(seed),
        "--gpu-memory-utilization", f"{gpu_memory_utilization:g}",
        "--max-num-seqs", str(max_num_seqs),
        "--generation-config", "vllm",
    ]
    if served_model_name:
        args += ["--served-model-name", served_model_name]
    line = " ".join(shlex.quote(a) for a in args)
    if api_key_env:
        line += f' --api-key "${api_key_env}"'
    return ("VLLM_BATCH_INVARIANT=1 " if batch_invariant else "") + line


def output_sha256(result: DraftResult) -> str:
    """Digest of one raw output (what the determinism check compares)."""
    return hashlib.sha256(result.raw_output.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DeterminismReport:
    """Outcome of :func:`determinism_check`.

    Attributes
    ----------
    n_requests : int
    identical : bool
        Every output of the low-concurrency run equals its high-concurrency twin.
    mismatched_keys : list of str
        Request keys (``key#choice``) whose outputs differ.
    failed_keys : list of str
        Requests that failed in either run (not compared).
    concurrency : tuple of (int, int)
    """

    n_requests: int
    identical: bool
    mismatched_keys: list[str] = field(default_factory=list)
    failed_keys: list[str] = field(default_factory=list)
    concurrency: tuple[int, int] = (1, 64)


async def determinism_check(
    backend: Backend,
    requests: Sequence[DraftRequest],
    *,
    low: int = 1,
    high: int = 64,
) -> DeterminismReport:
    """Generate the same sample at two concurrencies and compare output hashes.

    Parameters
    ----------
    backend : Backend
    requests : sequence of DraftRequest
        A sample of the study's requests (a few dozen is enough; more than ``high``
        makes the high-concurrency run really batch).
    low, high : int
        The two concurrencies (default 1 and 64).

    Returns
    -------
    DeterminismReport

    Notes
    -----
    At temperature 0 and with a per-request seed, a batch-invariant server must give
    byte-identical outputs whatever the batch size. A difference means the drafts
    readers see depend on server load: see ``docs/model-serving.md``.
    """
    async def collect(concurrency: int) -> tuple[dict[str, str], set[str]]:
        hashes: dict[str, str] = {}
        failed: set[str] = set()
        await run_batch(
            requests, backend, concurrency=concurrency,
            on_result=lambda r: hashes.__setitem__(f"{r.key}#{r.choice_index}", output_sha256(r)),
            on_failure=lambda req, _: failed.add(req.key),
        )
        return hashes, failed

    first, failed_first = await collect(low)
    second, failed_second = await collect(high)
    failed = failed_first | failed_second
    compared = set(first) & set(second)
    mismatched = sorted(k for k in compared if first[k] != second[k])
    missing = sorted((set(first) ^ set(second)) - {k for k in set(first) | set(second) if k.split("#")[0] in failed})
    return DeterminismReport(
        n_requests=len(requests), identical=not mismatched and not missing and not failed,
        mismatched_keys=mismatched + missing, failed_keys=sorted(failed), concurrency=(low, high),
    )


def _sample_requests(image_dir: Path, n: int, max_tokens: int) -> list[DraftRequest]:
    paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:n]
    if not paths:
        raise SystemExit(f"error: no PNG/JPEG images in {image_dir}")
    sampling = SamplingParams(max_tokens=max_tokens)
    return [
        build_request(case_id=p.stem, task="findings", mode="reasoning", images=[p.read_bytes()], sampling=sampling)
        for p in paths
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m model_runtime.serving {command,check}``.

    Examples
    --------
    python -m model_runtime.serving command --revision <commit>
    python -m model_runtime.serving check --url http://gpu-host:8000 --images demo/images --n 64
    """
    parser = argparse.ArgumentParser(prog="python -m model_runtime.serving", description=main.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("command", help="print the recommended vllm serve line")
    cmd.add_argument("--model", default=DEFAULT_MODEL_ID)
    cmd.add_argument("--revision", default=DEFAULT_MODEL_REVISION)
    cmd.add_argument("--port", type=int, default=8000)
    cmd.add_argument("--host", default="127.0.0.1")
    cmd.add_argument("--api-key-env", default=API_KEY_ENV, help="'' for none (loopback only)")
    chk = sub.add_parser("check", help="compare outputs at concurrency 1 and 64 against a running server")
    chk.add_argument("--url", required=True)
    chk.add_argument("--images", type=Path, required=True, help="folder of 8-bit PNG/JPEG views")
    chk.add_argument("--n", type=int, default=64)
    chk.add_argument("--max-tokens", type=int, default=1024)
    chk.add_argument("--model", default=DEFAULT_MODEL_ID)
    args = parser.parse_args(argv)
    if args.command == "command":
        try:
            print(serve_command(args.model, args.revision, args.port, host=args.host,
                                api_key_env=args.api_key_env or None))
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
        return 0
    requests = _sample_requests(args.images, args.n, args.max_tokens)
    backend = get_backend("vllm-server", base_url=args.url, model_id=args.model)

    async def run() -> DeterminismReport:
        try:
            return await determinism_check(backend, requests)
        finally:
            await backend.aclose()

    report = asyncio.run(run())
    print(json.dumps({"identical": report.identical, "n_requests": report.n_requests,
                      "mismatched": report.mismatched_keys, "failed": report.failed_keys}, indent=2))
    return 0 if report.identical else 1


if __name__ == "__main__":
    sys.exit(main())
