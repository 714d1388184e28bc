"""P10: the console's Progress page at 50 readers x 3,000 cases.

A CheXOne study of 3,000 cases and 50 readers (20 residents, 20 attendings, 10 radiologists; about 18,000
assignments) is created through the services, then a running study is laid into it in bulk, as the reading
services would leave it after some weeks: 60% of the assignments completed (a response, answers and the
events of a read: opened, image shown, three autosaves, submitted, answers saved, completed), 5% in progress.

Measured, median of several runs after one warm-up:

* ``service_ms``: ``progress.study_progress`` alone (the queries and the tables the page shows);
* ``page_ms``: the whole Progress page drawn by Streamlit's AppTest (service, charts and tables serialised),
  the server's share of "drawn";
* ``browser_ms`` (with Chromium, ``BENCH_BROWSER=1``, the default when /usr/bin/chromium exists): from opening
  the page in headless Chromium to every chart and table drawn; ``browser_baseline_ms`` the same for the
  Interventions page, which draws almost nothing (loading the app and its websocket, measured in the same run).

The database is built once into ``var/bench/progress-50x3000.sqlite`` (about a minute) and reused.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from datetime import timedelta
from pathlib import Path

N_CASES = 3000
ROLES = {"resident": 20, "attending": 20, "radiologist": 10}
RUNS = 5
CACHE = Path(os.environ.get("BENCH_PROGRESS_DB", "var/bench/progress-50x3000.sqlite"))
EVENTS_PER_READ = ("opened", "image_shown", "autosave", "autosave", "autosave", "submitted", "answers_saved",
                   "completed")


def _cohort(folder: Path) -> Path:
    """3,000 cases sharing one small radiograph (validated once), half with a multiple-choice item."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(folder / "pa.png")
    lines = ["case_id,images,indication,mc_question,mc_options,mc_answer"]
    for i in range(N_CASES):
        mc = "Where is the opacity?,A=Right|B=Left,A" if i % 2 == 0 else ",,"
        lines.append(f"c{i:05d},PA:pa.png,Cough.,{mc}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    readers = ["reader_id,role,label"] + [f"{role[:3]}{i},{role},{role} {i}" for role, n in ROLES.items()
                                          for i in range(n)]
    (folder / "readers.csv").write_text("\n".join(readers) + "\n", encoding="utf-8")
    return folder


def build(path: Path) -> None:
    """Create the study and lay a running study into it, in bulk (the reading services would take hours)."""
    import random

    from sqlalchemy import insert, select, update

    from study_app.designs import shipped_design_path
    from study_app.services.actors import SYSTEM
    from study_app.services.creation import create_study
    from study_app.services.database import open_database
    from study_app.store.models import Assignment, Event, Reader, Response, Study, utcnow

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for stale in (partial, partial.with_name(partial.name + "-wal"), partial.with_name(partial.name + "-shm")):
        stale.unlink(missing_ok=True)
    cohort = _cohort(path.parent / "progress-cohort")
    db = open_database(f"sqlite:///{partial}")
    create_study(db, SYSTEM, study_id="big", design_path=shipped_design_path("chexone"),
                 manifest_path=cohort / "manifest.csv", readers_path=cohort / "readers.csv", seed=1)
    rng = random.Random(1)
    start = utcnow() - timedelta(days=30)
    with db.transaction() as session:
        session.execute(update(Study).where(Study.id == "big").values(status="open", launched_at=start))
        readers = dict(session.execute(select(Reader.id, Reader.reader_key)).all())
        rows = session.execute(select(Assignment.id, Assignment.reader_id)).all()
        responses, events, done, started = [], [], [], []
        for assignment_id, reader_id in rows:
            draw = rng.random()
            if draw < 0.60:
                done.append(assignment_id)
                at = start + timedelta(seconds=rng.uniform(0, 29 * 86400))
                duration = rng.lognormvariate(4.5, 0.4)
                responses.append({"assignment_id": assignment_id, "shown_text": "Draft.", "final_text": "Final.",
                                  "submitted_at": at, "duration_s": duration, "active_s": duration * 0.9})
                for k, kind in enumerate(EVENTS_PER_READ):
                    events.append({"study_id": "big", "at": at + timedelta(seconds=k), "kind": kind,
                                   "actor": f"reader:{readers[reader_id]}", "reader_id": reader_id,
                                   "assignment_id": assignment_id, "payload": {}})
            elif draw < 0.65:
                started.append(assignment_id)
        session.execute(update(Assignment).where(Assignment.id.in_(done)).values(status="completed"))
        session.execute(update(Assignment).where(Assignment.id.in_(started)).values(status="in_progress"))
        session.execute(insert(Response), responses)
        session.execute(insert(Event), events)
    db.dispose()
    partial.replace(path)


def _median_ms(run) -> float:
    run()  # warm-up: imports, caches
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def _browser_ms(url: str, tmp: Path) -> tuple[float | None, float | None]:
    """Open the Progress page in headless Chromium as a signed-in coordinator; time until everything is drawn, and
    the same for the Interventions page (the baseline: loading the app and drawing almost nothing)."""
    from study_app.services import auth
    from study_app.services.actors import SYSTEM
    from study_app.services.database import open_database
    from tests.browser_support import start_app_server, stop_process

    chromium = "/usr/bin/chromium"
    if os.environ.get("BENCH_BROWSER", "1") == "0" or not Path(chromium).exists():
        return None, None
    from playwright.sync_api import sync_playwright

    db = open_database(url)
    try:
        auth.create_coordinator(db, SYSTEM, "bench", "correct horse battery staple")
    finally:
        db.dispose()
    server, port = start_app_server(url, tmp / "server.log", timeout_s=60)
    try:
        base = f"http://127.0.0.1:{port}"
        times = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"{base}/console/signin")
            page.fill("input[name=username]", "bench")
            page.fill("input[name=password]", "correct horse battery staple")
            page.click("button[type=submit]")
            page.get_by_role("heading", name="Studies").first.wait_for()
            baseline = []
            for _ in range(RUNS + 1):
                # The same navigation to a page that draws almost nothing: what loading the app itself costs.
                started = time.perf_counter()
                page.goto(f"{base}/console-interventions")
                page.get_by_role("heading", name="Interventions").wait_for()
                page.get_by_role("button", name="Apply").wait_for()
                baseline.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                page.goto(f"{base}/console-progress")
                page.get_by_role("heading", name="Stalled readers").wait_for()
                page.locator(".js-plotly-plot").nth(2).wait_for()
                page.locator("[data-testid=stDataFrame]").nth(1).wait_for()
                page.wait_for_function("document.querySelectorAll('[data-testid=stSkeleton]').length === 0")
                times.append((time.perf_counter() - started) * 1000)
            browser.close()
        return round(statistics.median(times[1:]), 1), round(statistics.median(baseline[1:]), 1)
    finally:
        stop_process(server, timeout_s=30)


def main() -> dict:
    import tempfile

    from sqlalchemy import func, select
    from streamlit.testing.v1 import AppTest

    from study_app.services.actors import SYSTEM, Actor
    from study_app.services.database import open_database
    from study_app.services.progress import study_progress
    from study_app.store.models import Assignment, Event
    from study_app.web.database import DB_URL_ENV, close_shared_databases

    if not CACHE.exists():
        started = time.perf_counter()
        build(CACHE)
        built_s = round(time.perf_counter() - started, 1)
    else:
        built_s = None
    tmp = Path(tempfile.mkdtemp(prefix="bench-progress-"))
    try:
        copy = tmp / "study.sqlite"
        shutil.copyfile(CACHE, copy)  # the page's runs write nothing, the browser run adds a coordinator
        url = f"sqlite:///{copy}"
        db = open_database(url)
        with db.read() as session:
            n_assignments = session.scalar(select(func.count()).select_from(Assignment))
            n_events = session.scalar(select(func.count()).select_from(Event))
        service_ms = _median_ms(lambda: study_progress(db, SYSTEM, "big"))
        db.dispose()
        os.environ[DB_URL_ENV] = url
        entry = Path(__file__).resolve().parents[1] / "tests" / "web_console" / "console_entry.py"

        def draw_page():
            at = AppTest.from_file(str(entry), default_timeout=300)
            at.session_state["console_test_page"] = "console-progress"
            at.session_state["actor"] = Actor(kind="coordinator", name="bench", coordinator_id=1)
            at.session_state["console_study"] = "big"
            at.run()
            assert not at.exception, at.exception

        page_ms = _median_ms(draw_page)
        close_shared_databases()
        browser_ms, baseline_ms = _browser_ms(url, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"target": "P10: Progress page drawn <= 2 s at 50 readers x 3,000 cases", "n_readers": sum(ROLES.values()),
            "n_cases": N_CASES, "n_assignments": n_assignments, "n_events": n_events, "built_s": built_s,
            "service_ms": service_ms, "page_ms": page_ms, "browser_ms": browser_ms,
            "browser_baseline_ms": baseline_ms}


if __name__ == "__main__":
    import json

    print(json.dumps(main()))
