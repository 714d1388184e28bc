"""P7: many real Chromium reader sessions on one live reader server, each signing in and completing cases.

One `serve()` process on a loopback port and a temporary SQLite file holding a study built for the run:
one `write` arm, every resident reads every case (so images are decoded once and then served from the
display cache, as P1 assumes), no instructions step. One headless Chromium with one browser context
per reader (own cookie jar, own invite link), all driven concurrently by async Playwright.

Per reader and case: open (first case: page load; later: the next case opens by itself after "Submit and next"),
type the findings, a think pause, SUBMIT. The latencies are what the reader sees: from the click to the page
showing the next state (submit -> acknowledged in the editor; next -> the next case's image drawn and the clock
started).
Beside them, the server's own time per interaction: every script run (rerun) of every session, timed by
the app's entry script into READERSTUDY_RERUN_LOG (`study_app.web.timing`).
Server CPU and RSS are sampled with psutil, together with the whole machine's CPU, because Chromium
runs on the same two cores. After each level the database is checked: every acknowledged submission is
stored exactly once, nothing unacknowledged is stored twice.

Usage: python -m benchmarks browser_load, or ``python benchmarks/bench_browser_load.py 10 20 30``
(``BENCH_RAMP_S=100 python benchmarks/bench_browser_load.py 50`` spreads the arrivals over 100 s).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script too: `tests` is not installed

from tests.browser_support import free_port, stop_process  # noqa: E402

LEVELS = (10, 20, 30)
CASES_PER_READER = 4
THINK_S = (0.5, 1.5)  # pause between seeing the case and SUBMIT (a real reader takes a minute; bots are harsher)
# Readers arrive spread over this many seconds, not all in the same instant (BENCH_RAMP_S overrides it).
RAMP_S = float(os.environ.get("BENCH_RAMP_S", "15"))
LEVEL_TIMEOUT_S = 150.0  # each level stops itself after this plus 4 s per session (ramp included), finished or not
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
DESIGN = """
[study]
name = "Browser load benchmark"
worklist_order = "random"
idle_threshold_s = 60

[roles.resident]
label = "Resident"

[[arms]]
key = "scratch"
task = "write"
role = "resident"
readers_per_case = {readers}

[constraints]
distinct_case_per_reader = true
"""


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def build_load_study(folder: Path, n_readers: int, n_cases: int) -> tuple[str, list[str]]:
    """A launched study where each of `n_readers` residents writes findings for all `n_cases` light cases.

    Returns
    -------
    tuple
        The database URL and the readers' invite tokens.
    """
    from cohorts.demo import build_demo_cohort
    from study_app.services.actors import SYSTEM
    from study_app.services.database import open_database
    from study_app.services.invites import issue_invites
    from study_app.services.creation import create_study
    from study_app.services.launch import launch_study

    manifest = build_demo_cohort(folder / "cohort", n_cases=n_cases, seed=0, large_case_size=(600, 700))
    design = folder / "design.toml"
    design.write_text(DESIGN.format(readers=n_readers), encoding="utf-8")
    readers = folder / "readers.csv"
    readers.write_text("reader_id,role,label\n" + "".join(f"r{i:03d},resident,Reader {i}\n" for i in range(n_readers)),
                       encoding="utf-8")
    url = f"sqlite:///{folder / 'study.sqlite'}"
    db = open_database(url)
    create_study(db, SYSTEM, study_id="load", design_path=design, manifest_path=manifest, readers_path=readers,
                 seed=7, name="Browser load benchmark")
    launch_study(db, SYSTEM, "load")
    tokens = [invite.token for invite in issue_invites(db, SYSTEM, "load")]
    db.dispose()
    return url, tokens


class ResourceSampler:
    """Samples the server process's CPU and RSS and the machine's CPU every `interval_s` in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.5):
        import psutil

        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.server_cpu: list[float] = []
        self.machine_cpu: list[float] = []
        self.rss_mb: list[float] = []
        self.cpu_s: float | None = None
        self._cpu_start = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        self.process.cpu_percent(None)
        psutil.cpu_percent(None)
        times = self.process.cpu_times()
        self._cpu_start = times.user + times.system
        while not self._stop.wait(self.interval_s):
            try:
                self.server_cpu.append(self.process.cpu_percent(None))
                self.rss_mb.append(self.process.memory_info().rss / 2**20)
            except psutil.Error:
                break
            self.machine_cpu.append(psutil.cpu_percent(None) * (os.cpu_count() or 1))

    def __enter__(self) -> "ResourceSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        import psutil

        try:
            times = self.process.cpu_times()
            self.cpu_s = times.user + times.system - self._cpu_start
        except psutil.Error:
            self.cpu_s = None
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict:
        def mean(values):
            return round(statistics.fmean(values), 1) if values else None

        return {"server_cpu_s": round(self.cpu_s, 1) if self.cpu_s is not None else None,
                "server_cpu_pct_mean": mean(self.server_cpu),
                "server_cpu_pct_max": round(max(self.server_cpu), 1) if self.server_cpu else None,
                "machine_cpu_pct_mean": mean(self.machine_cpu),
                "server_rss_mb_max": round(max(self.rss_mb), 1) if self.rss_mb else None}


async def _reader(browser, base: str, token: str, n_cases: int, rng: random.Random, record: dict,
                  arrive_s: float) -> None:
    await asyncio.sleep(arrive_s)
    # Reduced motion: Streamlit's running indicators would otherwise animate in every one of the headless tabs.
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, reduced_motion="reduce")
    record["open"] += 1
    record["peak_open"] = max(record["peak_open"], record["open"])
    finished = False
    page = await context.new_page()
    page.set_default_timeout(60_000)
    try:
        started = time.perf_counter()
        await page.goto(f"{base}/signin?token={token}")
        await page.click("#signin")
        await page.wait_for_selector(".rs-viewer[data-clock='started']")
        record["first_load"].append(time.perf_counter() - started)
        for case in range(n_cases):
            current = await page.get_attribute(".rs-viewer[data-clock='started']", "data-case")
            await page.locator("textarea.rs-text").fill(f"Case {current}: lungs clear, no effusion. ({case})")
            await asyncio.sleep(rng.uniform(*THINK_S))
            clicked = time.perf_counter()
            await page.locator("button.rs-submit").click()
            # A write case has no questions: "Submit and next" is acknowledged in the editor, then the next
            # case (or the end) follows by itself (issue #17); "next" is timed from the acknowledgement.
            following = (page.locator(f".rs-viewer[data-clock='started']:not([data-case='{current}'])")
                         if case + 1 < n_cases else page.get_by_text("cases are done"))
            await page.get_by_text("Submitted: the server has your report").or_(following).first.wait_for()
            record["submit"].append(time.perf_counter() - clicked)
            record["acknowledged"].append(current)
            clicked = time.perf_counter()
            await following.wait_for()
            record["next"].append(time.perf_counter() - clicked)
        record["finished_readers"] += 1
        finished = True
    except Exception as error:  # a reader that fails is counted, not fatal: the level's figures say how many
        record["errors"].append(f"{type(error).__name__}: {str(error).splitlines()[0][:160]}")
    finally:
        # A reader who is done leaves the tab open on the end screen, still connected, as a real one would;
        # the level closes every tab at its end, so the sessions counted were all open at once.
        if not finished:
            await context.close()
            record["open"] -= 1


async def _run_level(base: str, tokens: list[str], n_cases: int, seed: int) -> dict:
    from playwright.async_api import async_playwright

    record = {"first_load": [], "submit": [], "next": [], "acknowledged": [], "errors": [], "finished_readers": 0,
              "open": 0, "peak_open": 0}
    rng = random.Random(seed)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        readers = [asyncio.create_task(_reader(browser, base, token, n_cases, random.Random(rng.random()), record,
                                               arrive_s=RAMP_S * i / max(1, len(tokens))))
                   for i, token in enumerate(tokens)]
        started = time.perf_counter()
        done, pending = await asyncio.wait(readers, timeout=LEVEL_TIMEOUT_S + RAMP_S + 4 * len(tokens))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        record["wall_s"] = time.perf_counter() - started
        record["timed_out_readers"] = len(pending)
        await browser.close()
    return record


def _cpu_split() -> tuple[set[int] | None, set[int] | None]:
    """The server's own core and the rest for the browsers, so the server's times are not the browsers'
    CPU contention (on a deployment the browsers run on the readers' machines). BENCH_PIN=0 turns it off."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if os.environ.get("BENCH_PIN", "1") == "0" or len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def _limit(figures: dict, browser_cores: int) -> str:
    """Which resource ran out first, from the sampled CPU (the server is one Python process: about one core)."""
    machine, server = figures.get("machine_cpu_pct_mean") or 0, figures.get("server_cpu_pct_mean") or 0
    if server >= 85:
        return "server CPU (one process, GIL-bound: Streamlit reruns and websocket serialisation)"
    if machine - server >= 85 * browser_cores:
        return "CPU of the Chromium tabs (the load generator), not the server"
    return "none saturated"


def _check_database(url: str, acknowledged_refs: list[str], assignment_ids: set[int]) -> dict:
    from sqlalchemy import func, select

    from study_app.services.database import open_database
    from study_app.store.models import Assignment, Response

    db = open_database(url)
    with db.read() as session:
        id_of = dict(session.execute(select(Assignment.case_ref, Assignment.id)
                                     .where(Assignment.case_ref.in_(set(acknowledged_refs)))).all())
        acknowledged = [id_of.get(ref, -1) for ref in acknowledged_refs]
        counts = dict(session.execute(
            select(Response.assignment_id, func.count()).where(Response.assignment_id.in_(assignment_ids))
            .group_by(Response.assignment_id)
        ).all())
        completed = set(session.scalars(select(Assignment.id).where(Assignment.id.in_(assignment_ids),
                                                                    Assignment.status == "completed")))
    db.dispose()
    return {
        "acknowledged": len(acknowledged),
        "lost": len(set(acknowledged) - set(counts)),
        "duplicated": sum(1 for n in counts.values() if n > 1) + len(acknowledged) - len(set(acknowledged)),
        "stored_not_acknowledged": len(set(counts) - set(acknowledged)),
        "stored_without_completed_status": len(set(counts) - completed),
    }


def _reader_assignments(url: str, keys: list[str]) -> set[int]:
    from sqlalchemy import select

    from study_app.services.database import open_database
    from study_app.store.models import Assignment, Reader

    db = open_database(url)
    with db.read() as session:
        ids = set(session.scalars(select(Assignment.id).join(Reader, Reader.id == Assignment.reader_id)
                                 .where(Reader.reader_key.in_(keys))))
    db.dispose()
    return ids


def main(levels: tuple[int, ...] = LEVELS, cases_per_reader: int = CASES_PER_READER) -> dict:
    """Run the browser load at each level of concurrent sessions and return the figures per level.

    Parameters
    ----------
    levels : tuple of int
        Concurrent reader sessions per level; each level uses fresh readers on the same server.
    cases_per_reader : int
        Cases each reader completes.

    Returns
    -------
    dict
        ``levels``: one dict per level with latency p50/p95 (s) of first load, submit and next case,
        completed readers, database check (lost, duplicated) and server CPU/RSS.
    """
    if not Path(CHROMIUM).is_file():
        return {"skipped": f"no Chromium at {CHROMIUM}"}
    folder = Path(tempfile.mkdtemp(prefix="bench-browser-load-"))
    total = sum(levels)
    url, tokens = build_load_study(folder, total, cases_per_reader)
    keys = [f"r{i:03d}" for i in range(total)]
    port = free_port()
    code = f"from study_app.serve import serve; serve({url!r}, port={port})"
    log = open(folder / "server.log", "w")
    from study_app.web.timing import RERUN_LOG_ENV, read_rerun_log

    rerun_log = folder / "reruns.log"
    server_cpus, browser_cpus = _cpu_split()
    all_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    server = subprocess.Popen([sys.executable, "-c", code], cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, PYTHONUNBUFFERED="1", **{RERUN_LOG_ENV: str(rerun_log)}),
                              preexec_fn=(lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None)
    if browser_cpus:
        # This process and what it starts (Playwright's driver, Chromium) stay off the server's core.
        os.sched_setaffinity(0, browser_cpus)
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        offset = 0
        for level in levels:
            level_tokens, level_keys = tokens[offset:offset + level], keys[offset:offset + level]
            offset += level
            level_started = time.time()
            with ResourceSampler(server.pid) as sampler:
                record = asyncio.run(_run_level(base, level_tokens, cases_per_reader, seed=level))
            # The server's own time per interaction (one script run), apart from the browsers' rendering.
            reruns = read_rerun_log(rerun_log, since=level_started) if rerun_log.exists() else []
            check = _check_database(url, record["acknowledged"], _reader_assignments(url, level_keys))
            figures = {
                "sessions": level,
                "finished_readers": record["finished_readers"],
                "peak_open_sessions": record["peak_open"],
                "timed_out_readers": record["timed_out_readers"],
                "errors": len(record["errors"]),
                "first_errors": record["errors"][:3],
                "wall_s": round(record["wall_s"], 1),
                "cases_per_min": round(len(record["acknowledged"]) / record["wall_s"] * 60, 1),
                **{f"{name}_p{int(q * 100)}_s": (round(v, 3) if (v := _percentile(record[name], q)) is not None
                                                  else None)
                   for name in ("first_load", "submit", "next") for q in (0.5, 0.95)},
                "server_reruns": len(reruns),
                **{f"server_rerun_p{int(q * 100)}_ms": (round(v * 1000, 1) if (v := _percentile(reruns, q)) is not None
                                                         else None)
                   for q in (0.5, 0.95, 0.99)},
                **check,
                **sampler.figures(),
            }
            # Server CPU per completed case (sign-in, page loads, reruns, images, autosaves): the server's own
            # cost, independent of how much of the machine the browsers take.
            cases = len(record["acknowledged"])
            figures["server_cpu_s_per_case"] = (round(figures["server_cpu_s"] / cases, 3)
                                                if cases and figures["server_cpu_s"] is not None else None)
            figures["limit"] = _limit(figures, len(browser_cpus) if browser_cpus else os.cpu_count() or 1)
            figures["pinned"] = bool(server_cpus)
            results.append(figures)
            print(figures, flush=True)
            time.sleep(3)  # let the server drop the closed sessions before the next level
    finally:
        if browser_cpus:
            os.sched_setaffinity(0, all_cpus)
        stop_process(server)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)
    return {"cases_per_reader": cases_per_reader, "think_s": list(THINK_S), "levels": results}


if __name__ == "__main__":
    chosen = tuple(int(a) for a in sys.argv[1:]) or LEVELS
    print(main(chosen))
