"""The app under its own Content-Security-Policy, in Chromium: the reader's case page and every console page work
with no violation reported, the analysis report draws its charts in its sandbox, and design instructions with
remote images and links load nothing from anywhere."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select, update

from study_app.services import auth
from study_app.store.models import Arm, Autosave
from tests.case_refs import assignment_of
from tests.browser_support import sign_in
from tests.reliability.conftest import finish_residents, wait_clock

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOSTILE_INSTRUCTIONS = ("**Edit the draft** until you would sign it.\n\n"
                        "![tracking pixel](http://evil.example/pixel.png) "
                        "See [the protocol](https://evil.example/protocol) or <https://evil.example/auto>, "
                        "or https://evil.example/bare and www.evil.example.\n\n[ref]: https://evil.example/ref\n")
# Collected in every document, shadow roots included: what the browser refused under the policy.
VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI), true);
"""


def watch(context, base: str):
    """Record every CSP report and refuse (and record) every request that leaves the study's own server."""
    reports, outside = [], []
    context.add_init_script(VIOLATIONS)

    def route(r):
        if r.request.url.startswith(base) or r.request.url.startswith(("blob:", "data:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    context.on("console", lambda m: reports.append(m.text) if "Content Security Policy" in m.text else None)
    return reports, outside


def violations(page) -> list[str]:
    return [v for frame in page.frames for v in (frame.evaluate("() => window.__violations || []") or [])]


def test_the_reader_works_under_the_policy_and_instructions_load_nothing_remote(study_server, browser):
    study = study_server()
    actor = study.actor("res1")
    case = study.items(actor, status="ready")[0].case_ref
    with study.db.transaction() as session:
        arm_id = assignment_of(session, case).arm_id
        session.execute(update(Arm).where(Arm.id == arm_id).values(instructions=HOSTILE_INSTRUCTIONS))
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    reports, outside = watch(context, study.base)
    page = context.new_page()
    sign_in(page, study.base, study.invites["res1"])
    page.get_by_role("button", name="Start").wait_for(timeout=30_000)
    body = page.locator("body").inner_text()
    assert "the protocol (https://evil.example/protocol)" in body and "tracking pixel" in body
    assert page.locator("a[href*='evil'], img[src*='evil']").count() == 0
    page.get_by_role("button", name="Start").click()
    wait_clock(page, case)  # the viewer's module (a blob: import) ran and drew the image
    page.locator("textarea.rs-text").fill("typed under the policy")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the editor's autosave reached the server
        with study.db.read() as session:
            saved = session.scalars(select(Autosave.text).where(Autosave.assignment_id == assignment_of(session, case).id)).all()
        if "typed under the policy" in saved:
            break
        page.wait_for_timeout(250)
    assert "typed under the policy" in saved
    assert outside == [] and reports == [] and violations(page) == [], (outside, reports, violations(page))
    context.close()


def test_every_console_page_and_the_report_work_under_the_policy(study_server, browser):
    from study_app.services.actors import SYSTEM

    study = study_server()
    finish_residents(study.db, study.invites, "Lungs clear.")
    auth.create_coordinator(study.db, SYSTEM, "csp", "a long coordinator password")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    reports, outside = watch(context, study.base)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{study.base}/console/signin")
    page.fill("input[name=username]", "csp")
    page.fill("input[name=password]", "a long coordinator password")
    page.click("button[type=submit]")
    page.get_by_role("heading", name="Studies").first.wait_for()
    for path, heading in (("console-readers", "Readers"), ("console-drafts", "Drafts"), ("console-launch", "Launch"),
                          ("console-progress", "Progress"), ("console-interventions", "Interventions"),
                          ("console-data", "Data")):
        page.goto(f"{study.base}/{path}")
        page.get_by_role("heading", name=heading).first.wait_for()
    page.get_by_role("button", name="Run the analysis").click()
    page.get_by_role("button", name=re.compile("Download the report")).wait_for(timeout=120_000)
    deadline = time.monotonic() + 60
    charts = 0
    while time.monotonic() < deadline and not charts:
        report = [f for f in page.frames if "/console/report/" in f.url]
        charts = report[0].evaluate("() => document.querySelectorAll('.js-plotly-plot').length") if report else 0
        page.wait_for_timeout(250)
    assert charts > 0, "the report's charts ran in its sandbox"
    page.goto(f"{study.base}/console/upload")
    page.get_by_role("heading", name="Upload a cohort zip").wait_for()
    assert outside == [] and reports == [] and violations(page) == [], (outside, reports)
    context.close()
    # The report's address is the coordinator's own: a reader's cookie or none gets nothing.
    import httpx

    address = report[0].url
    assert httpx.get(address, timeout=30).status_code == 404
    reader = auth.exchange_invite(study.db, study.invites["att1"])[0]
    assert httpx.get(address, cookies={auth.SESSION_COOKIE: reader}, timeout=30).status_code == 404
