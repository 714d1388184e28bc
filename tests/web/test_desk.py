"""The reading desk in real Chromium: the image gets the screen at four window sizes (Submit never below the fold),
the viewer's keys and tools, the preview then the exact 16-bit copy, the next case fetched ahead, Save and next,
the character limit that never changes the box, Back and Forward, and axe-core's accessibility rules.

One live server for the module (per test worker), on a fresh copy of the demo study; each test takes readers of its own, so the
tests do not depend on one another's order. ``READERSTUDY_DOC_SHOTS=docs/img`` also writes the screenshots of
every task at the four sizes that docs/readers.md shows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from study_app.services import auth, images, reading
from study_app.store.models import Image, Response, Study
from tests.browser_support import axe_violations
from tests.case_refs import assignment_of
from tests.reliability.conftest import ServerProcess, open_case, wait_clock

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIZES = [(1280, 720), (1366, 768), (1920, 1080), (2560, 1440)]
DOC_SHOTS = Path(os.environ["READERSTUDY_DOC_SHOTS"]) if os.environ.get("READERSTUDY_DOC_SHOTS") else None


@pytest.fixture(scope="module")
def desk(demo_template, tmp_path_factory):
    """A live server on a fresh copy of the demo study (nothing read yet)."""
    import shutil

    from study_app.services.database import open_database

    template, invites = demo_template
    workdir = tmp_path_factory.mktemp("desk")
    shutil.copyfile(template, workdir / "study.sqlite")
    url = f"sqlite:///{workdir / 'study.sqlite'}"
    db = open_database(url)
    server = ServerProcess(url, workdir)
    try:
        server.start()
        yield Desk(db, server, dict(invites))
    finally:  # stopped on every path, a failed start included
        server.stop()
        db.dispose()


@pytest.fixture(scope="module")
def browser(chromium):
    """One headless Chromium for the module (sync Playwright); each test opens contexts of its own."""
    from playwright.sync_api import sync_playwright

    from tests.browser_support import CHROMIUM_ARGS

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class Desk:
    def __init__(self, db, server, invites):
        self.db, self.server, self.invites, self.sessions = db, server, invites, {}
        self.residents_done = False

    @property
    def base(self) -> str:
        return self.server.base

    def token(self, reader_key: str) -> str:
        if reader_key not in self.sessions:
            self.sessions[reader_key], _ = auth.exchange_invite(self.db, self.invites[reader_key])
        return self.sessions[reader_key]

    def actor(self, reader_key: str):
        return auth.actor_for_session(self.db, self.token(reader_key))

    def items(self, reader_key: str, task: str | None = None, status: str = "ready"):
        return [i for i in reading.worklist(self.db, self.actor(reader_key)).items
                if i.status == status and (task is None or i.task == task)]

    def finish_residents(self) -> None:
        """The residents' reports, which open the attendings' round (once per module; a case left open by a test
        is finished as it stands)."""
        if self.residents_done:
            return
        for key in ("res1", "res2"):
            actor = self.actor(key)
            for item in reading.worklist(self.db, actor).items:
                if item.status == "completed":
                    continue
                view = reading.open_case(self.db, actor, item.case_ref)
                status = view.status
                if status == "in_progress":
                    reading.mark_image_shown(self.db, actor, item.case_ref)
                    status = reading.submit(self.db, actor, item.case_ref,
                                            "Findings: lungs clear." if view.task in ("write", "edit") else None).status
                if status == "submitted":
                    reading.save_answers(self.db, actor, item.case_ref,
                                         {q.key: q.options[0]["value"] for q in view.questions})
        self.residents_done = True

    def page(self, browser, reader_key: str, size=(1366, 768), **options):
        context = browser.new_context(viewport={"width": size[0], "height": size[1]}, **options)
        context.add_cookies([{"name": auth.SESSION_COOKIE, "value": self.token(reader_key), "url": self.base}])
        return context.new_page()

    def largest_case(self, reader_key: str) -> str:
        """The reader's open case with the most images (the demo's 2500 x 3000 PA + lateral, with a prior)."""
        with self.db.read() as session:
            def count(item):
                case_id = assignment_of(session, item.case_ref).case_id
                return len(session.scalars(select(Image.id).where(Image.case_id == case_id)).all())
            return max(self.items(reader_key), key=count).case_ref


def boxes(page) -> dict:
    """Where the desk's parts are, in CSS px of the window (shadow roots pierced by Playwright's locators)."""
    def box(selector):
        found = page.locator(selector).first
        return found.bounding_box() if found.count() else None

    return {"stage": box(".rs-stage"), "submit": box("button.rs-submit"), "panel": box(".st-key-rs-task"),
            "viewer": box(".rs-viewer"),
            "scroll": page.evaluate("() => [document.querySelector('.stMain').scrollHeight, innerHeight]")}


def assert_desk_fits(page, size, task: str) -> None:
    width, height = size
    b = boxes(page)
    stage, submit = b["stage"], b["submit"]
    # Submit on screen, the whole of it, with no scrolling.
    assert submit and 0 <= submit["y"] and submit["y"] + submit["height"] <= height + 0.5, (size, task, submit)
    assert b["scroll"][0] <= b["scroll"][1] + 1, f"the page scrolls at {size} ({task})"
    # The image area: at least half the window's width and from under the top bar nearly to its bottom.
    assert stage["width"] >= 0.5 * width and stage["y"] <= 110 and stage["y"] + stage["height"] >= height - 40, (
        size, task, stage)
    assert stage["width"] * stage["height"] >= 0.42 * width * height, (size, task, stage)


def shoot(page, name: str) -> None:
    if DOC_SHOTS is not None:
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOC_SHOTS / f"{name}.png"))


def test_the_image_gets_the_screen_at_four_sizes_for_every_task(desk, browser):
    res1 = desk.items("res1", task="write")[0].case_ref
    tasks = [("write", "res1", res1), ("edit", "res1", desk.items("res1", task="edit")[0].case_ref),
             ("rate_reasoning", "rad1", desk.items("rad1")[0].case_ref)]
    for task, reader, case in tasks:
        page = desk.page(browser, reader, SIZES[0])
        open_case(page, desk.base, case)
        for size in SIZES:
            page.set_viewport_size({"width": size[0], "height": size[1]})
            page.wait_for_timeout(400)  # the viewer and the editor refit on resize
            assert_desk_fits(page, size, task)
            shoot(page, f"desk-{task}-{size[0]}x{size[1]}")
        page.context.close()
    desk.finish_residents()
    compare = desk.items("att1", task="compare")[0].case_ref
    page = desk.page(browser, "att1", SIZES[0])
    open_case(page, desk.base, compare)
    for size in SIZES:
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.wait_for_timeout(400)
        assert_desk_fits(page, size, "compare")
        shoot(page, f"desk-compare-{size[0]}x{size[1]}")
    # The questions after SUBMIT: Save and next on screen too (the panel scrolls inside itself if it must).
    page.locator("button.rs-submit").click()
    save = page.get_by_role("button", name="Save and next")
    save.wait_for(timeout=30_000)
    for size in SIZES[:2]:
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.wait_for_timeout(400)
        box = save.bounding_box()
        assert box["y"] + box["height"] <= size[1] + 0.5, (size, box)
        shoot(page, f"desk-questions-{size[0]}x{size[1]}")
    page.context.close()


def test_viewer_keys_tools_hanging_and_focus_mode(desk, browser):
    case = desk.largest_case("rad2")
    page = desk.page(browser, "rad2", (1366, 768))
    open_case(page, desk.base, case)
    viewer, status = page.locator(".rs-viewer"), page.locator(".rs-status")
    page.wait_for_selector(".rs-viewer[data-full='1']", timeout=30_000)
    # The shipped protocol's first stage: PA beside the lateral.
    labels = lambda: [p.get_attribute("aria-label") for p in page.locator(".rs-port:not([hidden])").all()]  # noqa: E731
    assert viewer.get_attribute("data-layout") == "2" and labels() == ["PA image", "Lateral image"]
    page.locator(".rs-port").first.click()
    page.keyboard.press("h")  # next stage: current beside the prior
    assert labels() == ["PA image", "Prior PA image"]
    page.keyboard.press("s")
    assert viewer.get_attribute("data-layout") == "1"
    start = status.inner_text()
    page.keyboard.press("i")
    assert "inverted" in status.inner_text()
    page.keyboard.press("i")
    page.keyboard.press("3")  # the third preset: Full range (the file has one window, then Auto)
    assert status.inner_text() != start and page.locator(".rs-preset").input_value() == "2"
    page.keyboard.press("r")
    assert status.inner_text() == start, "reset: the opening window, fit to screen"
    page.keyboard.press("+")
    assert "125%" in status.inner_text()
    page.keyboard.press("r")
    # The caliper: drag 200 px on screen; the file's pixel spacing turns it into millimetres.
    page.keyboard.press("m")
    port = page.locator(".rs-port").first.bounding_box()
    x, y = port["x"] + port["width"] / 2, port["y"] + port["height"] / 2
    page.mouse.move(x - 100, y)
    page.mouse.down()
    page.mouse.move(x, y)
    page.mouse.move(x + 100, y)
    page.mouse.up()
    text = status.inner_text()
    assert "1 measurement (last " in text and text.split("(last ")[1].startswith(tuple("0123456789"))
    mm = float(text.split("(last ")[1].split(" mm")[0])
    data = page.locator(".rs-port").first.evaluate("el => [el.clientWidth, el.clientHeight]")
    with desk.db.read() as session:
        row = assignment_of(session, case)
        pa = session.scalars(select(Image).where(Image.case_id == row.case_id).order_by(Image.ordinal)).first()
        root = Path(session.get(Study, row.study_id).cohort_root)
    meta = images.prepare_display(pa.path if Path(pa.path).is_file() else root / pa.relpath, "check").meta
    fit = min(data[0] / meta.width, data[1] / meta.height)  # CSS px per display pixel
    assert mm == pytest.approx(200 / fit * meta.spacing_mm[1], rel=0.02)
    page.keyboard.press("x")
    assert "measurement" not in status.inner_text()
    page.keyboard.press("t")  # the task panel hides; the images take the width
    assert page.locator(".st-key-rs-task").is_hidden()
    assert page.locator(".rs-stage").bounding_box()["width"] > 1300
    page.keyboard.press("t")
    # Focus mode: the images fill the window; Esc leaves.
    page.keyboard.press("f")
    box = viewer.bounding_box()
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 1366, 768)
    page.keyboard.press("Escape")
    assert viewer.bounding_box()["width"] < 1366
    # The ? overlay lists the keys; Esc closes it.
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    assert dialog.is_visible() and "Ctrl" in dialog.inner_text()
    page.keyboard.press("Escape")
    assert dialog.is_hidden()
    page.context.close()


def test_chromium_decodes_the_lossless_copy_exactly(desk, browser):
    case = desk.largest_case("rad2")
    page = desk.page(browser, "rad2")
    page.goto(f"{desk.base}/worklist")
    # The viewer's own decode steps (viewer.js, decodeFull) on the served full copy of the 2500 x 3000 PA.
    found = page.evaluate("""async (url) => {
        const blob = await (await fetch(url, {credentials: 'same-origin'})).blob();
        const bitmap = await createImageBitmap(blob, {colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
        const canvas = document.createElement('canvas');
        canvas.width = bitmap.width; canvas.height = bitmap.height;
        const ctx = canvas.getContext('2d', {willReadFrequently: true, colorSpace: 'srgb'});
        ctx.drawImage(bitmap, 0, 0);
        const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
        let sum = 0, weighted = 0;
        for (let i = 0, j = 0; j < rgba.length; i++, j += 4) {
            const v = (rgba[j] << 8) | rgba[j + 1];
            sum += v; weighted += (i % 9973) * v;
        }
        return {w: bitmap.width, h: bitmap.height, sum, weighted, type: blob.type};
    }""", f"/api/image/{case}/0")
    served = images.case_image_bytes(desk.db, desk.actor("rad2"), case, 0)
    stored = images.unpack_display_image(served, 0.0, 1.0).astype(np.int64).ravel()  # the stored values
    index = np.arange(stored.size) % 9973
    assert found["type"] == "image/webp" and (found["h"], found["w"]) == images.unpack_display_image(
        served, 0, 1).shape
    assert found["sum"] == int(stored.sum()) and found["weighted"] == int((index * stored).sum())
    page.context.close()


def answer_every_question(page, view) -> None:
    page.get_by_role("button", name="Save and next").wait_for(timeout=30_000)
    for question in view.questions:
        group = page.get_by_role("radiogroup", name=question.label)
        group.get_by_text(question.options[0]["label"], exact=True).click()


def test_the_next_case_is_fetched_ahead_and_save_and_next_opens_it_from_memory(desk, browser):
    desk.finish_residents()
    actor = desk.actor("att2")
    first = reading.worklist(desk.db, actor).next_item()
    following = images.next_case_ahead(desk.db, actor, first.case_ref)
    ahead, ordinals = following.case_ref, following.ordinals
    page = desk.page(browser, "att2")
    requests = []
    page.on("requestfinished", lambda r: requests.append(r.url))
    open_case(page, desk.base, first.case_ref)
    wanted = {f"{desk.base}/api/image/{ahead}/{o}{s}" for o in ordinals for s in ("", "/preview")}
    for _ in range(60):
        if wanted <= set(requests):
            break
        page.wait_for_timeout(500)
    assert wanted <= set(requests), "the next case's previews and full copies are fetched while this one is read"
    # Ctrl+Enter submits (from the report box when there is one); on the questions it saves and goes on.
    typed = "Edited, then Ctrl+Enter." if first.task in ("write", "edit") else None
    if typed:
        page.locator("textarea.rs-text").fill(typed)
        page.locator("textarea.rs-text").press("Control+Enter")
    else:
        page.locator("body").press("Control+Enter")
    answer_every_question(page, reading.case_view(desk.db, actor, first.case_ref))
    before = len(requests)
    page.keyboard.press("Control+Enter")  # the focus is on the answer just chosen
    start = page.get_by_role("button", name="Start")
    start.or_(page.locator(f".rs-viewer[data-case='{ahead}']")).first.wait_for(timeout=30_000)
    if start.count():  # the next case is of another task: its instructions come first
        page.locator("body").press("Control+Enter")
    page.wait_for_selector(f".rs-viewer[data-case='{ahead}'][data-full='1']", timeout=30_000)
    wait_clock(page, ahead)
    assert not [u for u in requests[before:] if f"/api/image/{ahead}/" in u], "drawn from what was fetched ahead"
    with desk.db.read() as session:
        stored = session.scalars(select(Response.final_text).where(
            Response.assignment_id == assignment_of(session, first.case_ref).id)).all()
    assert stored == [typed or ""]
    assert reading.worklist(desk.db, actor).item(first.case_ref).status == "completed"
    page.context.close()


def test_the_counter_warns_and_a_refused_submit_never_changes_the_box(desk, browser):
    desk.finish_residents()
    reader = "att3"
    case = desk.items(reader, task="edit")[0].case_ref
    page = desk.page(browser, reader)
    open_case(page, desk.base, case)
    box, count = page.locator("textarea.rs-text"), page.locator(".rs-count")
    # Typing in the report box is typing: "i" there does not invert the image.
    box.fill("")
    box.type("ii")
    assert "inverted" not in page.locator(".rs-status").inner_text() and box.input_value() == "ii"
    too_long = ("Right lower lobe opacity. " * 800)[: reading.MAX_REPORT_CHARS + 25]
    box.fill(too_long)
    assert "25 over the limit" in count.inner_text() and "over" in count.get_attribute("class")
    page.locator("button.rs-submit").click()
    page.get_by_text("the limit is 20,000. Your text is kept").wait_for(timeout=10_000)
    page.wait_for_timeout(3500)  # an autosave tick: nothing sent over the limit, the box untouched
    assert box.input_value() == too_long, "every character is still there"
    assert "the limit is 20,000. Your text is kept" in page.locator(".rs-saved").inner_text()
    assert reading.worklist(desk.db, desk.actor(reader)).item(case).status == "in_progress"
    box.fill("Right lower lobe opacity.")
    assert count.inner_text() == "25 / 20,000 characters"
    page.context.close()


def test_back_and_forward_stay_in_the_app(desk, browser):
    desk.finish_residents()
    page = desk.page(browser, "att4")
    page.goto(f"{desk.base}/worklist")
    page.get_by_role("heading", name="Your worklist").wait_for(timeout=30_000)
    page.get_by_role("link", name="Continue reading").click()
    page.get_by_role("button", name="Start").or_(page.locator(".rs-viewer")).first.wait_for(timeout=30_000)
    page.go_back()
    page.get_by_role("heading", name="Your worklist").wait_for(timeout=30_000)
    assert page.url.startswith(desk.base)
    page.go_forward()
    page.get_by_role("button", name="Start").or_(page.locator(".rs-viewer")).first.wait_for(timeout=30_000)
    assert page.url.startswith(desk.base)
    page.context.close()


def test_axe_finds_no_serious_accessibility_violation(desk, browser):
    desk.finish_residents()
    # The page's own policy forbids inline scripts, so axe goes in with the policy bypassed for the test only.
    page = desk.page(browser, "att1", (1366, 768), bypass_csp=True)
    found = {}

    def audit(name):
        found[name] = axe_violations(page)

    edit = desk.items("att1", task="edit")[0].case_ref
    open_case(page, desk.base, edit)
    audit("edit case")
    page.keyboard.press("?")
    audit("shortcuts overlay")
    page.keyboard.press("Escape")
    page.locator("button.rs-submit").click()
    page.get_by_role("button", name="Save and next").wait_for(timeout=30_000)
    audit("questions")
    page.goto(f"{desk.base}/worklist")
    page.get_by_role("heading", name="Your worklist").wait_for(timeout=30_000)
    audit("worklist")
    assert all(not v for v in found.values()), found
    # Every control is reachable by Tab with a visible focus ring: walk the viewer's toolbar.
    second = desk.items("att1", task="edit")[0].case_ref
    page.goto(f"{desk.base}/?case={second}")
    wait_clock(page, second)
    page.locator(".rs-tabs button").first.focus()
    styles = []
    for _ in range(6):
        page.keyboard.press("Tab")
        styles.append(page.evaluate("""() => { let el = document.activeElement;
            while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
            const s = getComputedStyle(el); return [el.tagName, s.outlineStyle, s.outlineWidth]; }"""))
    assert all(style != "none" and width != "0px" for _, style, width in styles), styles
    page.context.close()
