"""P9: the demo's largest case (two 2500 x 3000 16-bit DICOM views and a prior) on a throttled link, in Chromium.

One `serve()` process on a loopback port and a fresh demo study; Chromium's network throttled through CDP
(``Network.emulateNetworkConditions``: 100, 20 and 5 Mbit/s each way, 20 ms added latency). Two scenarios:

- **first case**: a new browser profile (empty cache) opens the largest case; the reader reads the instructions
  (2 s here; the server prepares the case's images meanwhile) and presses Start. Measured from that press to the first image on screen (the viewer's ``readerstudy:first-image``
  mark: the preview painted, two frames later) and to full fidelity (``readerstudy:full-fidelity``: the first
  view's lossless copy windowed on screen). The page's own start-up over the same link (Streamlit's bundle) is
  reported apart: the reader reads the instructions meanwhile.
- **later case**: the same reader is on the case before it; the viewer fetches the next case's images while the
  reader works (here: until they are in); then Submit / Save and next, timed from that press.

Bytes per case: every response of the case's image routes (previews and full copies), as CDP counts them on
the wire. Beside them, in the same run, the earlier transport's size: each view as one 16-bit packed PNG.

Usage: ``python -m benchmarks first_image`` (``BENCH_RUNS=3``: first-case runs per speed, default 2; the
later case runs once per reader who has the largest case right after another, one in the demo).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser_support import free_port, stop_process  # noqa: E402

RATES_MBIT = (100, 20, 5)
LATENCY_MS = 20
RUNS = int(os.environ.get("BENCH_RUNS", "2"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
TARGET = "first image <= 1 s at 20 Mbit/s; full fidelity <= 3 s"
READ_INSTRUCTIONS_S = 2.0  # a reader takes longer; the case's images are prepared on the server meanwhile


def _study(folder: Path):
    """The demo study as a template file, and the readers with the largest case open to read right after
    another ready case of theirs: (reader, case before it, the largest case)."""
    from sqlalchemy import func, select

    from study_app.demo import build_demo_study
    from study_app.services import images
    from study_app.services.actors import reader_actor
    from study_app.services.database import open_database
    from study_app.store.models import Assignment, Image, Reader

    url = f"sqlite:///{folder / 'template.sqlite'}"
    db = open_database(url)
    invites = {i.reader_key: i.token for i in build_demo_study(db, cohort_dir=folder / "cohort").invites}
    readers = []
    with db.read() as session:
        largest = session.execute(select(Image.case_id).group_by(Image.case_id)
                                  .order_by(func.sum(Image.width * Image.height).desc())).scalars().first()
        for assignment in session.scalars(select(Assignment).where(Assignment.case_id == largest,
                                                                   Assignment.status == "ready")):
            reader = session.get(Reader, assignment.reader_id)
            before = session.scalars(select(Assignment).where(
                Assignment.reader_id == assignment.reader_id, Assignment.status == "ready",
                Assignment.position < assignment.position).order_by(Assignment.position.desc())).first()
            if before is not None:
                readers.append((reader.reader_key, before.case_ref, assignment.case_ref, reader.id))
    # The earlier transport's bytes for this case: one 16-bit packed PNG per view, as the viewer used to get.
    key, _, target, reader_id = readers[0]
    png_bytes = 0
    for _, display in images.case_display_images(db, reader_actor(reader_id, key), target,
                                                 cache=images.DisplayCache(None)):
        stored = images.unpack_display_image(display.full, 0.0, 1.0).astype("uint16")
        png_bytes += len(images.encode_packed(stored, "png"))
    db.dispose()
    return folder / "template.sqlite", invites, readers, png_bytes


def _serve(folder: Path, template: Path, invites: dict, name: str):
    """A fresh copy of the template served on a free port; the readers' session tokens on that copy."""
    import shutil

    import httpx

    from study_app.services import auth
    from study_app.services.database import open_database

    path = folder / f"{name}.sqlite"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    db = open_database(url)
    tokens = {key: auth.exchange_invite(db, token)[0] for key, token in invites.items()}
    port = free_port()
    log = open(folder / f"{name}.log", "w")
    server = subprocess.Popen([sys.executable, "-c", f"from study_app.serve import serve; serve({url!r}, port={port})"],
                              cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/_stcore/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    return server, db, base, tokens


def _stop(server) -> None:
    stop_process(server)


def _throttle(context, page, mbit: float):
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    rate = mbit * 1e6 / 8
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": LATENCY_MS,
                                                   "downloadThroughput": rate, "uploadThroughput": rate})
    urls, sizes = {}, {}
    cdp.on("Network.responseReceived", lambda e: urls.__setitem__(e["requestId"], e["response"]["url"]))
    cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]))
    return lambda ref: sum(n for rid, n in sizes.items() if f"/api/image/{ref}/" in urls.get(rid, ""))


MARKS = """(since) => {
    const at = (name) => { const m = performance.getEntriesByName(name); return m.length ? m[m.length - 1].startTime : null; };
    const first = at('readerstudy:first-image'), full = at('readerstudy:full-fidelity');
    return {first: first === null ? null : (first - since) / 1000, full: full === null ? null : (full - since) / 1000};
}"""
PRESS = "(el) => { const at = performance.now(); el.click(); return at; }"


def _all_images_in(page, ref: str, count: int = 6) -> None:
    """Wait until the case's previews and full copies (three images: six responses) have all arrived."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        fetched = page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)")
        if len([u for u in fetched if f"/api/image/{ref}/" in u]) >= count:
            return
        page.wait_for_timeout(250)


def _viewer_for(page, ref: str, timeout_ms: int = 180_000):
    page.wait_for_selector(f".rs-viewer[data-case='{ref}'][data-full='1']", timeout=timeout_ms)


def _first_case(browser, base, token, ref, mbit) -> dict:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_cookies([{"name": "readerstudy_session", "value": token, "url": base}])
    page = context.new_page()
    measure = _throttle(context, page, mbit)
    page.goto(f"{base}/?case={ref}")
    start = page.get_by_role("button", name="Start")
    start.or_(page.locator(".rs-viewer")).first.wait_for(timeout=180_000)
    ready_s = page.evaluate("() => performance.now()") / 1000
    # The reader reads the instructions (the server prepares the case meanwhile), presses Start; timed from the press.
    page.wait_for_timeout(READ_INSTRUCTIONS_S * 1000)
    pressed = start.evaluate(PRESS) if start.count() else 0.0
    _viewer_for(page, ref)
    marks = page.evaluate(MARKS, pressed)
    _all_images_in(page, ref)
    figures = {**marks, "page_start_s": round(ready_s, 2), "bytes": measure(ref)}
    context.close()
    return figures


def _later_case(browser, base, token, previous, ref, mbit, questions) -> dict:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_cookies([{"name": "readerstudy_session", "value": token, "url": base}])
    page = context.new_page()
    measure = _throttle(context, page, mbit)
    page.goto(f"{base}/?case={previous}")
    start = page.get_by_role("button", name="Start")
    start.or_(page.locator(".rs-viewer")).first.wait_for(timeout=180_000)
    if start.count():
        start.click()
    _viewer_for(page, previous)
    # The reader works on this case; the next case's images come in meanwhile (a case takes minutes).
    _all_images_in(page, ref)
    editor = page.locator("textarea.rs-text")
    if editor.count() and editor.is_visible():
        editor.fill("Benchmark findings.")
    if questions:
        page.locator("button.rs-submit").click()
        page.get_by_role("button", name="Save and next").wait_for(timeout=60_000)
        for question in questions:
            page.get_by_role("radiogroup", name=question.label).get_by_text(
                question.options[0]["label"], exact=True).click()
        pressed = page.get_by_role("button", name="Save and next").evaluate(PRESS)
    else:
        pressed = page.locator("button.rs-submit").evaluate(PRESS)
    start = page.get_by_role("button", name="Start")
    start.or_(page.locator(f".rs-viewer[data-case='{ref}']")).first.wait_for(timeout=60_000)
    if start.count():  # another task's instructions first: time from that press instead
        pressed = start.evaluate(PRESS)
    _viewer_for(page, ref)
    marks = page.evaluate(MARKS, pressed)
    figures = {**marks, "bytes": measure(ref)}
    context.close()
    return figures


def _unopen(db, case_ref: str) -> None:
    """Put the case back as it was before it was opened, so the next run sees the instructions first again (a
    benchmark's own shortcut: the app never reopens a case)."""
    from sqlalchemy import select

    from study_app.store.models import Assignment

    with db.transaction() as session:
        row = session.scalars(select(Assignment).where(Assignment.case_ref == case_ref)).one()
        row.status, row.opened_at, row.first_shown_at, row.sessions = "ready", None, None, 0


def main() -> dict:
    from playwright.sync_api import sync_playwright

    from study_app.services import reading
    from study_app.services.actors import reader_actor
    from study_app.web.database import close_shared_databases

    folder = Path(tempfile.mkdtemp(prefix="bench-first-image-"))
    template, invites, readers, png_bytes = _study(folder)
    # A later-case run finishes a case: one reader each (the demo has two with the largest case next).
    later_runs = min(RUNS, len(readers) - 1)
    results: dict = {"latency_ms": LATENCY_MS, "runs_first_case": RUNS, "runs_later_case": later_runs,
                     "old_png_bytes_per_case": png_bytes, "target": TARGET}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for mbit in RATES_MBIT:
                # A fresh copy of the study per speed: the later-case runs finish a case each.
                server, db, base, tokens = _serve(folder, template, invites, f"study-{mbit}")
                try:
                    key, _, target, _ = readers[0]
                    first = []
                    for _ in range(RUNS):
                        first.append(_first_case(browser, base, tokens[key], target, mbit))
                        _unopen(db, target)
                    later = []
                    for key, previous, target_of_reader, reader_id in readers[1:1 + later_runs]:
                        questions = reading.case_view(db, reader_actor(reader_id, key), previous).questions
                        later.append(_later_case(browser, base, tokens[key], previous, target_of_reader, mbit,
                                                 questions))
                finally:
                    _stop(server)
                    db.dispose()
                for name, found in (("first_case", first), ("later_case", later)):
                    prefix = f"{mbit}mbit_{name}"
                    results[f"{prefix}_first_image_s"] = round(statistics.median(r["first"] for r in found), 3)
                    results[f"{prefix}_full_fidelity_s"] = round(statistics.median(r["full"] for r in found), 3)
                    results[f"{prefix}_bytes"] = int(statistics.median(r["bytes"] for r in found))
                results[f"{mbit}mbit_page_start_s"] = statistics.median(r["page_start_s"] for r in first)
                results[f"{mbit}mbit_old_png_transfer_s"] = round(png_bytes * 8 / (mbit * 1e6), 2)
        finally:
            browser.close()
            close_shared_databases()
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(main()))
