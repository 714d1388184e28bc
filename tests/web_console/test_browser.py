"""End to end in headless Chromium: a coordinator signs in, uploads a cohort, drafts, invites, launches, watches a read."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from study_app.demo import write_demo_readers
from study_app.services import auth, reading
from study_app.services.actors import SYSTEM
from study_app.services.database import open_database
from tests.browser_support import CHROMIUM_ARGS, start_app_server, stop_process
from tests.web_console.test_uploads import zip_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Where screenshots go: READERSTUDY_SCREENSHOTS (docs/img to refresh the guide) or the test's own folder."""
    folder = Path(os.environ.get("READERSTUDY_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def console_server(tmp_path):
    """The app with the console pages, on a free loopback port, over an empty database with one coordinator."""
    url = f"sqlite:///{tmp_path / 'db' / 'study.sqlite'}"
    db = open_database(url)
    auth.create_coordinator(db, SYSTEM, "coord", PASSWORD)
    # serve() itself: the app with its security middleware, exactly as `readerstudy serve` starts it.
    server, port = start_app_server(url, tmp_path / "server.log", cwd=Path(__file__).resolve().parents[2])
    try:
        yield f"http://127.0.0.1:{port}", db
    finally:
        stop_process(server)
        db.dispose()


def go(page, base: str, path: str, heading: str) -> None:
    page.goto(f"{base}/{path}")
    page.get_by_role("heading", name=heading).first.wait_for(timeout=30_000)


def shoot(page, folder: Path, name: str) -> None:
    page.wait_for_timeout(300)  # let charts and tables finish drawing
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_coordinator_runs_a_study_from_upload_to_progress(console_server, chromium, small_cohort, tmp_path,
                                                          screenshots):
    from playwright.sync_api import sync_playwright

    base, db = console_server
    cohort_zip = tmp_path / "cohort.zip"
    cohort_zip.write_bytes(zip_folder(small_cohort, prefix="cohort/"))
    readers_csv = write_demo_readers(tmp_path / "readers.csv")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        coordinator = browser.new_page(viewport={"width": 1400, "height": 1000})
        coordinator.set_default_timeout(30_000)
        # Sign in with a password; a reader's cookie would get nowhere in the console.
        coordinator.goto(f"{base}/console/signin")
        coordinator.fill("input[name=username]", "coord")
        coordinator.fill("input[name=password]", PASSWORD)
        coordinator.click("button[type=submit]")
        coordinator.get_by_role("heading", name="Studies").first.wait_for()

        # Studies: the cohort zip goes up on its own page (streamed to disk), then the form picks it up by study id.
        with coordinator.expect_popup() as opened:  # a link button opens its own tab
            coordinator.get_by_role("link", name="Upload a cohort zip").click()
        upload = opened.value
        upload.get_by_role("heading", name="Upload a cohort zip").wait_for()
        upload.fill("input[name=study]", "pilot")
        upload.set_input_files("input[name=file]", str(cohort_zip))
        upload.click("button[type=submit]")
        upload.wait_for_selector("#status[data-result=uploaded]")
        assert "for study 'pilot'" in upload.inner_text("#status")
        upload.close()
        go(coordinator, base, "", "Studies")  # the console's first page is its root
        coordinator.get_by_text("Uploaded zips waiting for their study: pilot").wait_for()
        coordinator.get_by_role("textbox", name="Study id").fill("pilot")
        coordinator.get_by_role("textbox", name="Study id").press("Enter")
        files = coordinator.locator("input[type=file]")
        files.nth(1).set_input_files(str(readers_csv))
        coordinator.get_by_text("readers.csv").first.wait_for()
        coordinator.get_by_role("button", name="Check and create").click()
        coordinator.get_by_text(re.compile(r"Created study pilot: 12 cases, 8 readers")).wait_for(timeout=90_000)
        shoot(coordinator, screenshots, "console-studies")

        # Drafts: the model outputs recorded in the manifest, stored with provenance.
        go(coordinator, base, "console-drafts", "Drafts")
        coordinator.get_by_role("button", name="Import recorded outputs").click()
        coordinator.get_by_text(re.compile(r"\d+ draft\(s\) stored")).wait_for(timeout=90_000)
        shoot(coordinator, screenshots, "console-drafts")

        # Readers: one link each, shown once.
        go(coordinator, base, "console-readers", "Readers")
        coordinator.get_by_role("button", name="Issue links").click()
        coordinator.get_by_text("Copy these links now").wait_for()
        codes = coordinator.locator("[data-testid=stCode]")
        codes.nth(7).wait_for()
        links = [t.strip() for t in codes.all_inner_texts() if "/signin?token=" in t]
        assert len(links) == 8, codes.all_inner_texts()
        assert links[0].startswith(base + "/signin?token=")
        shoot(coordinator, screenshots, "console-readers")

        # Launch: the checklist is green; after launch, what is frozen.
        go(coordinator, base, "console-launch", "Launch")
        coordinator.get_by_text("[x] every reader has a personal link").wait_for()
        shoot(coordinator, screenshots, "console-launch-checklist")
        coordinator.get_by_role("button", name="Launch the study").click()
        coordinator.get_by_text("Frozen at launch", exact=False).wait_for()
        shoot(coordinator, screenshots, "console-launch-frozen")

        # A resident signs in with the first link (res1) in another browser and reads one case.
        go(coordinator, base, "console-progress", "Progress")
        reader = browser.new_context().new_page()
        reader.goto(links[0])
        reader.click("#signin")
        reader.wait_for_url(re.compile(r"/(reading|worklist)?(\?.*)?$"))
        session_cookie = next(c["value"] for c in reader.context.cookies() if c["name"] == auth.SESSION_COOKIE)
        actor = auth.actor_for_session(db, session_cookie)
        assert actor is not None and actor.name == "res1"
        item = reading.worklist(db, actor).items[0]
        view = reading.open_case(db, actor, item.case_ref)
        reading.mark_image_shown(db, actor, item.case_ref)
        result = reading.submit(db, actor, item.case_ref, "Lungs clear." if view.task in ("write", "edit") else None)
        if result.status == "submitted":  # a write case asks nothing and is completed at submit
            reading.save_answers(db, actor, item.case_ref, {q.key: q.options[0]["value"] for q in view.questions})

        # The progress page refreshes itself (every 5 s): the completed case appears without a reload.
        completed = coordinator.locator("[data-testid=stMetricValue]").nth(1)
        deadline = time.monotonic() + 30
        while completed.inner_text().strip() != "1" and time.monotonic() < deadline:
            coordinator.wait_for_timeout(500)
        assert completed.inner_text().strip() == "1"
        coordinator.get_by_text("Seconds from image shown to submit").first.wait_for()
        shoot(coordinator, screenshots, "console-progress")

        go(coordinator, base, "console-data", "Data")
        shoot(coordinator, screenshots, "console-data")
        go(coordinator, base, "console-interventions", "Interventions")
        shoot(coordinator, screenshots, "console-interventions")

        # The reader's own cookie gets nowhere in the console: its pages are not even in a reader's navigation.
        reader.goto(f"{base}/console-launch")
        reader.get_by_role("heading").first.wait_for()
        assert "Launch the study" not in reader.content()
        browser.close()


def test_the_studies_page_opens_at_its_own_address(console_server, chromium):
    """/console-studies (the address the docs and bookmarks use) opens the Studies page, with no "Page not found"
    dialog: Streamlit serves the default page at the root only, so the page has a second, hidden entry."""
    from playwright.sync_api import sync_playwright

    base, _db = console_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{base}/console/signin")
            page.fill("input[name=username]", "coord")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.get_by_role("heading", name="Studies").first.wait_for()
            for path in ("console-studies", ""):
                go(page, base, path, "Studies")
                page.get_by_role("heading", name="Create a study").wait_for()
                page.wait_for_timeout(500)  # a "Page not found" dialog shows right after the first draw
                assert page.get_by_text("Page not found").count() == 0, path
            # One Studies entry in the sidebar, not two.
            assert page.get_by_test_id("stSidebarNav").get_by_text("Studies", exact=True).count() == 1
        finally:
            browser.close()
