"""P4: the drafting client against a loopback OpenAI-compatible server with 1 s latency, 2,000 requests at concurrency 64."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from PIL import Image  # noqa: E402

from model_runtime.backends import DraftRequest, build_request, get_backend  # noqa: E402
from model_runtime.batch import run_batch  # noqa: E402

N_REQUESTS = 2000
CONCURRENCY = 64
LATENCY_S = 1.0
TARGET_RATIO = 1.15
# P4 with several servers (issue 18): four loopback servers, each capped at 64 in flight, concurrency 256.
POOL_SERVERS = 4
POOL_TARGET_RATIO = 1.1


def _template_request() -> DraftRequest:
    # One realistic view (a 2500x3000 radiograph prepared to 448x560, ~320 image tokens).
    image = Image.linear_gradient("L").resize((3000, 2500))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return build_request(case_id="bench", task="findings", mode="reasoning", images=[buffer.getvalue()],
                         indication="Shortness of breath.")


def requests_stream(n: int):
    """Distinct requests made lazily, so the client side holds only what is in flight."""
    template = _template_request()
    for i in range(n):
        yield DraftRequest(**{**template.__dict__, "key": f"bench-{i:06d}", "case_id": f"bench-{i:06d}"})


def _start_server(latency_s: float) -> tuple[subprocess.Popen, str]:
    # A separate process: the server's own Python work must not share the client's GIL,
    # or the benchmark would measure the fake server instead of the client.
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--latency", str(latency_s)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise RuntimeError(f"fake server did not start (said {url!r})")
    return process, url


def _rss_sampler(stop: threading.Event, samples: list[int]) -> None:
    me = psutil.Process(os.getpid())
    while not stop.is_set():
        samples.append(me.memory_info().rss)
        stop.wait(0.1)


async def _one_run(url: str | list[str], n: int, concurrency: int = CONCURRENCY) -> dict:
    if isinstance(url, list):
        from model_runtime.backends.server_pool import ServerPool

        backend = ServerPool([get_backend("vllm-server", base_url=u, max_in_flight=concurrency // len(url),
                                          ready_timeout_s=30) for u in url])
    else:
        backend = get_backend("vllm-server", base_url=url, max_in_flight=concurrency, ready_timeout_s=30)
    ok, failed = [0], []
    try:
        # Warm-up: connection pool and readiness checks are not what P4 measures.
        await run_batch(requests_stream(concurrency), backend, on_result=lambda r: None,
                        on_failure=lambda r, why: failed.append(why), concurrency=concurrency)
        gc.collect()
        rss_before = psutil.Process(os.getpid()).memory_info().rss
        samples: list[int] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_rss_sampler, args=(stop, samples), daemon=True)
        sampler.start()
        cpu_before = time.process_time()
        rss_quarter = [0]

        def on_result(result) -> None:
            ok[0] += 1
            if ok[0] == n // 4:  # by now the pipeline is full: later growth would be a leak
                rss_quarter[0] = psutil.Process(os.getpid()).memory_info().rss

        summary = await run_batch(requests_stream(n), backend, on_result=on_result,
                                  on_failure=lambda r, why: failed.append(why), concurrency=concurrency)
        cpu_s = time.process_time() - cpu_before
        rss_end = psutil.Process(os.getpid()).memory_info().rss
        stop.set()
        sampler.join()
    finally:
        await backend.aclose()
    ideal = n / concurrency * LATENCY_S
    return {
        "elapsed_s": summary.elapsed_s, "ideal_s": ideal, "ratio": summary.elapsed_s / ideal,
        "succeeded": summary.succeeded, "failed": summary.failed + len(failed),
        "rss_growth_mb": (max(samples + [rss_before]) - rss_before) / 2**20,
        "rss_before_mb": rss_before / 2**20,
        "rss_growth_last_75pct_mb": (rss_end - (rss_quarter[0] or rss_before)) / 2**20,
        "client_cpu_ms_per_request": cpu_s / max(1, summary.succeeded) * 1000,
    }


def main(runs: int = 3, n_requests: int = N_REQUESTS) -> dict:
    """Run the P4 benchmark and print its figures.

    Parameters
    ----------
    runs : int
        Repetitions; the median ratio is reported (machines here are noisy).
    n_requests : int
        Requests per run (2,000 for P4).

    Returns
    -------
    dict
        ``elapsed_s`` (median), ``ideal_s``, ``ratio``, ``target_ratio``, ``passed``,
        ``rss_growth_mb`` (max over runs, peak RSS minus RSS before the run),
        ``rss_growth_last_75pct_mb`` (RSS at the end minus RSS after the first quarter of
        the requests: ~0 when memory is flat), ``client_cpu_ms_per_request`` (median),
        ``load_avg_1m`` (machine load when the runs ended: other work shares the
        2 cores), ``failed``, ``runs``, ``ratios`` (every run), and ``several_servers``: the figures of
        :func:`main_pool` (unless ``BENCH_DRAFTING_POOL=0``).
    """
    process, url = _start_server(LATENCY_S)
    try:
        results = [asyncio.run(_one_run(url, n_requests)) for _ in range(runs)]
    finally:
        process.terminate()
        process.wait(timeout=10)
    elapsed = statistics.median(r["elapsed_s"] for r in results)
    ideal = results[0]["ideal_s"]
    figures = {
        "benchmark": "P4 drafting client",
        "requests": n_requests, "concurrency": CONCURRENCY, "latency_s": LATENCY_S, "runs": runs,
        "elapsed_s": round(elapsed, 2), "ideal_s": round(ideal, 2), "ratio": round(elapsed / ideal, 3),
        "target_ratio": TARGET_RATIO, "passed": elapsed / ideal <= TARGET_RATIO,
        "rss_growth_mb": round(max(r["rss_growth_mb"] for r in results), 1),
        "rss_growth_last_75pct_mb": round(max(r["rss_growth_last_75pct_mb"] for r in results), 1),
        "client_cpu_ms_per_request": round(statistics.median(r["client_cpu_ms_per_request"] for r in results), 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "ratios": [round(r["ratio"], 3) for r in results],
        "failed": sum(r["failed"] for r in results),
    }
    for key, value in figures.items():
        print(f"{key:>15}: {value}")
    if os.environ.get("BENCH_DRAFTING_POOL", "1") != "0":  # `make bench` measures both P4s
        figures["several_servers"] = main_pool(runs=runs, n_requests=n_requests)
    return figures


def main_pool(runs: int = 3, n_requests: int = N_REQUESTS, servers: int = POOL_SERVERS) -> dict:
    """P4 across several servers: ``servers`` loopback servers (1 s latency), each capped at 64, concurrency 256.

    Returns the same figures as :func:`main`, with ``servers`` and the pool's target (1.1 x ideal).
    """
    concurrency = CONCURRENCY * servers
    started = [_start_server(LATENCY_S) for _ in range(servers)]
    try:
        results = [asyncio.run(_one_run([url for _, url in started], n_requests, concurrency)) for _ in range(runs)]
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(timeout=10)
    elapsed = statistics.median(r["elapsed_s"] for r in results)
    ideal = results[0]["ideal_s"]
    figures = {
        "benchmark": "P4 drafting client, several servers", "servers": servers,
        "requests": n_requests, "concurrency": concurrency, "latency_s": LATENCY_S, "runs": runs,
        "elapsed_s": round(elapsed, 2), "ideal_s": round(ideal, 2), "ratio": round(elapsed / ideal, 3),
        "target_ratio": POOL_TARGET_RATIO, "passed": elapsed / ideal <= POOL_TARGET_RATIO,
        "client_cpu_ms_per_request": round(statistics.median(r["client_cpu_ms_per_request"] for r in results), 2),
        "rss_growth_mb": round(max(r["rss_growth_mb"] for r in results), 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "ratios": [round(r["ratio"], 3) for r in results], "failed": sum(r["failed"] for r in results),
    }
    for key, value in figures.items():
        print(f"{key:>15}: {value}")
    return figures


if __name__ == "__main__":
    if "--pool" in sys.argv:
        main_pool()
    else:
        main()
