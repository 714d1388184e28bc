"""Access control of the live reader server: own cases only, no path tricks, single-use links, blind drafts, plain text."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from study_app.services import auth
from study_app.store.models import Draft, Event, Image, Study
from tests.case_refs import assignment_of
from tests.browser_support import sign_in
from tests.reliability.conftest import HOSTILE_REPORT, open_case

# Words that would tell a reader where a draft came from (the arm keys, the model, the replay backend).
SOURCE_TOKENS = ("model", "resident", "chexone", "replay")


def is_image(body: bytes) -> bool:
    """A WebP (the full copy), JPEG (the preview) or PNG: what an image route could leak."""
    return body.startswith((b"\x89PNG", b"\xff\xd8\xff")) or (body[:4] == b"RIFF" and body[8:12] == b"WEBP")


def raw_get(base: str, target: str, cookie: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    """One request with the target sent byte for byte: HTTP clients normalise `../`, an attacker does not."""
    host, port = base.removeprefix("http://").split(":")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    if cookie:
        lines.append(f"Cookie: {auth.SESSION_COOKIE}={cookie}")
    if method == "POST":
        lines += ["X-Readerstudy-Client: 1", "Content-Type: application/json", "Content-Length: 2"]
    request = ("\r\n".join(lines) + "\r\n\r\n" + ("{}" if method == "POST" else "")).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def own_and_foreign(study, reader_key: str, other_key: str):
    """One open case of `reader_key` with its first image, and one of `other_key` with its first image."""
    mine = study.items(study.actor(reader_key), status="ready")[0].case_ref
    theirs = study.items(study.actor(other_key), status="ready")[0].case_ref
    with study.db.read() as session:
        def first_image(case_ref):
            case_id = assignment_of(session, case_ref).case_id
            return session.scalars(select(Image).where(Image.case_id == case_id).order_by(Image.ordinal)).first()
        my_image, their_image = first_image(mine), first_image(theirs)
        root = Path(session.get(Study, "demo").cohort_root)
        their_file = Path(their_image.path) if Path(their_image.path).is_file() else root / their_image.relpath
        return mine, my_image.ordinal, theirs, their_image.ordinal, their_file


def snapshot(study, case_ref: str):
    with study.db.read() as session:
        row = assignment_of(session, case_ref)
        events = session.scalar(select(func.count()).select_from(Event).where(Event.assignment_id == row.id))
        return row.status, row.opened_at, row.first_shown_at, events


def test_reader_cannot_use_another_readers_case_through_the_routes(served_study):
    study = served_study
    cookie = study.session_token("att2")
    mine, my_image, theirs, their_image, _ = own_and_foreign(study, "att2", "att3")
    before = snapshot(study, theirs)
    jar = {auth.SESSION_COOKIE: cookie}
    headers = {"X-Readerstudy-Client": "1"}
    with httpx.Client(base_url=study.base, cookies=jar, timeout=30) as client:
        for suffix in ("", "/preview"):
            own = client.get(f"/api/image/{mine}/{my_image}{suffix}")
            assert own.status_code == 200 and is_image(own.content), "positive control: own image"
        # (Images are named by their place in the case, so only another reader's case_ref could reach theirs.)
        for url in (f"/api/image/{theirs}/{their_image}", f"/api/image/{theirs}/{my_image}",
                    f"/api/image/{mine}/{my_image + 50}", f"/api/image/{theirs}/{their_image}/preview",
                    f"/api/reading/{theirs}/text"):
            response = client.get(url, headers=headers)
            assert response.status_code in (403, 404), url
            assert not is_image(response.content) and b'"text":' not in response.content, url
        for route, body in (("shown", {}), ("autosave", {"text": "overwritten by another reader"}),
                            ("event", {"kind": "hidden", "duration_s": 1.0})):
            response = client.post(f"/api/reading/{theirs}/{route}", json=body, headers=headers)
            assert response.status_code in (403, 404), route
        anonymous = httpx.get(f"{study.base}/api/image/{mine}/{my_image}", timeout=30)
        assert anonymous.status_code == 401
    assert snapshot(study, theirs) == before, "another reader's case changed"


def test_path_tricks_on_every_route_reveal_no_file(served_study):
    study = served_study
    cookie = study.session_token("att3")
    mine, my_image, theirs, their_image, their_file = own_and_foreign(study, "att3", "att4")
    secrets = {
        "/etc/passwd": b"root:x:",
        "the study database": b"SQLite format 3",
        "another reader's image file": their_file.read_bytes()[100:164],
    }
    db_path = str(study.path)
    targets = [
        f"/api/image/{mine}/{my_image}/../../../../etc/passwd",
        f"/api/image/{mine}/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/api/image/%2e%2e/%2e%2e/etc/passwd",
        f"/api/image/{mine}/%2e%2e%2f{theirs}%2f{their_image}",
        f"/api/image/{mine}%2f..%2f{theirs}/{their_image}",
        f"/api/image/{mine}/{their_image}?path={their_file}",
        f"/api/image/-1/{their_image}",
        f"/api/image/{theirs}%00/{their_image}",
        f"/api/image/{mine}/{their_image}99999999999999999999999999",
        f"/api/image/{mine}/{my_image}/..%2f..%2f..%2f..%2fetc%2fpasswd",
        f"/api/image/{mine}/{my_image}/preview/../../{theirs}/{their_image}/preview",
        f"/api/image/{theirs}/{their_image}/preview",
        "/static/../../../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/app/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/media/..%2f..%2f..%2fetc%2fpasswd",
        "/component/..%2f..%2f..%2f..%2fetc/passwd",
        "/_stcore/bidi-components/readerstudy_viewer/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/_stcore/bidi-components/..%2f..%2f..%2fetc/passwd",
        "//etc/passwd",
        "/etc/passwd",
        str(their_file),
        "/" + str(their_file).lstrip("/").replace("/", "%2f"),
        db_path,
        f"/static/{db_path}",
        f"/app/static/{db_path}",
        f"/?case=../../../etc/passwd",
        f"/signin?token=../../../../etc/passwd",
        f"/?case={theirs}&file={their_file}",
    ]
    _, own_png = raw_get(study.base, f"/api/image/{mine}/{my_image}", cookie)
    _, own_preview = raw_get(study.base, f"/api/image/{mine}/{my_image}/preview", cookie)
    assert is_image(own_png) and is_image(own_preview), "positive control: the reader's own image"
    leaks = []
    for target in targets:
        status, body = raw_get(study.base, target, cookie)
        for what, marker in secrets.items():
            if marker in body:
                leaks.append(f"{target} -> {status}: {what}")
        if is_image(body) and body not in (own_png, own_preview):
            leaks.append(f"{target} -> {status}: an image that is not the reader's own")
    for target in (f"/api/reading/..%2f{theirs}/autosave", f"/api/reading/{mine}/..%2f..%2f{theirs}/autosave",
                   f"/api/reading/%2e%2e/{theirs}/shown"):
        status, _ = raw_get(study.base, target, cookie, method="POST")
        assert status in (400, 403, 404, 405), target
    assert not leaks, leaks


def test_invite_link_works_once_and_sets_a_safe_cookie(served_study):
    study = served_study
    token = study.invites["rad2"]
    study.spent.add("rad2")
    # The browser's own sign-in form sends the page's origin; the server refuses a post without one (test_attacks.py).
    with httpx.Client(base_url=study.base, timeout=30, headers={"Origin": study.base}) as client:
        assert client.get("/signin", params={"token": token}).status_code == 200  # a mail scanner's GET spends nothing
        first = client.post("/signin", data={"token": token})
        assert first.status_code == 303
        set_cookie = first.headers["set-cookie"]
        parts = {p.strip().split("=", 1)[0].lower() for p in set_cookie.split(";")}
        assert set_cookie.startswith(f"{auth.SESSION_COOKIE}=")
        assert "httponly" in parts
        assert "samesite=lax" in set_cookie.lower().replace(" ", "")
        session_value = first.cookies[auth.SESSION_COOKIE]
    with httpx.Client(base_url=study.base, timeout=30, headers={"Origin": study.base}) as other_browser:
        second = other_browser.post("/signin", data={"token": token})
        assert second.status_code == 403
        assert auth.SESSION_COOKIE not in second.cookies
    assert auth.actor_for_session(study.db, session_value).name == "rad2"
    # Only hashes are stored: neither the invite nor the session token appears anywhere in the database files.
    study.db.dispose()
    stored = b"".join(p.read_bytes() for p in study.path.parent.glob(study.path.name + "*"))
    assert token.encode() not in stored and session_value.encode() not in stored


def test_forged_requests_are_refused(served_study):
    study = served_study
    cookie = study.session_token("att4")
    mine = study.items(study.actor("att4"), status="ready")[0].case_ref
    before = snapshot(study, mine)
    jar = {auth.SESSION_COOKIE: cookie}
    with httpx.Client(base_url=study.base, cookies=jar, timeout=30) as client:
        # The app's own POST routes: a cross-site form cannot add the client header; a cross-site fetch is refused.
        plain = client.post(f"/api/reading/{mine}/autosave", json={"text": "forged"})
        assert plain.status_code == 403
        cross = client.post(f"/api/reading/{mine}/autosave", json={"text": "forged"},
                            headers={"X-Readerstudy-Client": "1", "Origin": "http://evil.example"})
        assert cross.status_code == 403
        # Streamlit's XSRF protection is on in the server actually running: it hands out the XSRF cookie and
        # refuses an upload without the matching header.
        health = client.get("/_stcore/health")
        assert "_streamlit_xsrf" in health.headers.get("set-cookie", "")
        upload = client.put("/_stcore/upload_file/some-session/some-file", files={"file": ("a.txt", b"x")})
        assert upload.status_code == 403
    assert snapshot(study, mine) == before


@pytest.mark.browser
def test_reader_cannot_open_another_readers_case_or_the_console_by_url(served_study, browser):
    study = served_study
    theirs = study.items(study.actor("att1"), status="ready")[0].case_ref
    before = snapshot(study, theirs)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    study.spent.add("rad1")
    sign_in(page, study.base, study.invites["rad1"])
    page.get_by_text("cases done").first.wait_for(timeout=30_000)
    page.goto(f"{study.base}/?case={theirs}")
    page.get_by_text("no such case in your worklist").wait_for(timeout=30_000)
    assert page.locator(".rs-viewer").count() == 0 and page.locator("textarea.rs-text").count() == 0
    console_titles = ("Studies", "Readers", "Drafts", "Launch", "Progress", "Data", "Interventions")
    for path in ("progress", "console-studies", "console-readers", "console-drafts", "console-launch",
                 "console-progress", "console-data", "console-interventions"):
        page.goto(f"{study.base}/{path}")
        page.get_by_text("cases done").first.wait_for(timeout=30_000)  # lands on the reader's own page
        headings = [h.strip() for h in page.locator("h1, h2, h3").all_inner_texts()]
        assert not set(headings) & set(console_titles), (path, headings)
        assert "coordinator" not in page.locator("body").inner_text().lower(), path
    page.close()
    assert snapshot(study, theirs) == before


def collect_shown(page) -> dict[str, list[str]]:
    """Everything the reader's browser holds: text, every attribute (ids, classes, URLs), through shadow roots."""
    return page.evaluate("""() => {
        const texts = [], attrs = [];
        const walk = (root) => {
            for (const el of root.querySelectorAll('*')) {
                for (const a of el.attributes) attrs.push(a.name + '=' + a.value);
                if (el.value !== undefined && typeof el.value === 'string') texts.push(el.value);
                if (el.shadowRoot) walk(el.shadowRoot);
            }
        };
        walk(document);
        texts.push(document.body.innerText, document.title, location.href);
        return {texts, attrs};
    }""")


# Every element of the page, through shadow roots: tag, attributes (values with the case's reference and numbers
# replaced), own text; plus the page's browser storage keys.
PAGE_SHAPE = """(ref) => {
    // (Streamlit gives each page load a random embedding id of its own. React's ids, ':r1a:', count the
    // components mounted so far in this page, in base 32: how many re-renders the page's timing made, the same
    // for both sources but not the same from one load to the next under load; react-aria prefixes a random number.)
    const norm = (v) => String(v).split(ref).join('{ref}').replace(/[0-9a-f]{32}/g, '{other}')
        .replace(/stAppEmbeddingId-[a-z0-9]+/g, 'stAppEmbeddingId-{id}')
        .replace(/react-aria\\d*-:r[0-9a-v]+:/g, 'react-aria-{id}').replace(/:r[0-9a-v]+:/g, ':r{id}:')
        .replace(/\\d+/g, '#');
    const out = [];
    const walk = (root, depth) => {
        for (const el of root.children) {
            const attrs = [...el.attributes].map(a => a.name + '=' + norm(a.value)).sort().join(' ');
            const own = norm([...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent.trim())
                .filter(Boolean).join(' '));
            out.push([depth, el.tagName.toLowerCase(), attrs, own]);
            if (el.shadowRoot) walk(el.shadowRoot, depth + 1);
            walk(el, depth + 1);
        }
    };
    walk(document, 0);
    // Keys of other cases (earlier visits) are history, not this page's.
    const storage = Object.keys(localStorage).map(norm).filter(k => !k.includes('{other}')).sort();
    return {elements: out, storage};
}"""


@pytest.mark.browser
def test_edit_pages_do_not_reveal_the_drafts_source(served_study, browser):
    """An attending's model-draft and resident-draft edit pages, element by element, in Chromium.

    Two cases with the same views are compared, so that everything but the draft's text (and the case's own
    indication) must be identical: tags, attributes, texts, browser storage keys, the requests the page makes
    and what the websocket carries.
    """
    study = served_study
    actor = study.actor("att2")
    candidates = {}
    with study.db.read() as session:
        for item in study.items(actor, task="edit", status="ready"):
            row = assignment_of(session, item.case_ref)
            draft = session.get(Draft, row.draft_id)
            views = tuple(session.scalars(select(Image.view).where(Image.case_id == row.case_id).order_by(Image.ordinal)))
            candidates.setdefault(views, {}).setdefault(draft.source_kind, (item.case_ref, draft.report, row.case_id))
    views, by_source = next((v, c) for v, c in candidates.items() if set(c) == {"model", "reader"})
    # Both pages under the same conditions: another edit case already started, so neither opens on the
    # instructions screen (which comes before a task's first case, whatever its source).
    compared = {ref for ref, _, _ in by_source.values()}
    third = next(i for i in study.items(actor, task="edit", status="ready") if i.case_ref not in compared)
    from study_app.services import reading

    reading.open_case(study.db, actor, third.case_ref)
    token = study.session_token("att2")
    shown, shapes = {}, {}
    for source, (case_ref, report, case_id) in by_source.items():
        # A fresh browser profile for each page, so both load alike (cold cache, no earlier visit in storage).
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.add_cookies([{"name": auth.SESSION_COOKIE, "value": token, "url": study.base}])
        page = context.new_page()
        requests, frames = [], []
        page.on("requestfinished", lambda request, requests=requests: requests.append(request))
        page.on("websocket", lambda ws, frames=frames: ws.on("framereceived", lambda payload: frames.append(payload)))
        open_case(page, study.base, case_ref)
        page.wait_for_selector(".rs-viewer[data-full='1']", timeout=30_000)  # the lossless copy is on screen
        page.wait_for_timeout(2500)  # let the page settle: the clock's periodic save, the page's own reruns
        # The next case's copies, fetched ahead, are encoded on demand and may still be arriving on a busy
        # machine (CI once compared a page whose ahead-fetches had not finished): compare once no request has
        # finished for two seconds, not at a fixed time.
        quiet, seen = 0, len(requests)
        for _ in range(60):
            page.wait_for_timeout(500)
            quiet = quiet + 1 if len(requests) == seen else 0
            seen = len(requests)
            if quiet >= 4:
                break
        assert page.locator("textarea.rs-text").input_value() == report, "the draft is pre-filled"
        with study.db.read() as session:
            from study_app.store.models import Case

            case = session.get(Case, case_id)
            own_content = [report, *report.splitlines(), case.indication or "", case.comparison or ""]
        collected = collect_shown(page)
        received = b"".join(f if isinstance(f, bytes) else f.encode() for f in frames)
        assert received and requests, "the checks below must have something to look at"
        for line in report.splitlines():
            received = received.replace(line.encode(), b"")
        texts = "\n".join(collected["texts"]).replace(report, "")
        for line in report.splitlines():
            texts = texts.replace(line, "")
        haystacks = {"text": texts.lower(), "attributes": "\n".join(collected["attrs"]).lower(),
                     "urls": "\n".join(r.url for r in requests).lower(),
                     "websocket": received.decode("utf-8", "replace").lower()}
        found = [(where, token) for where, hay in haystacks.items() for token in SOURCE_TOKENS if token in hay]
        assert not found, (source, found)
        shape = page.evaluate(PAGE_SHAPE, case_ref)
        for element in shape["elements"]:
            for content in sorted(filter(None, own_content), key=len, reverse=True):
                # (The page's shape has its numbers replaced already: so has the content looked for in it.)
                for form in (content, re.sub(r"\d+", "#", content)):
                    element[2] = element[2].replace(form, "{content}")
                    element[3] = element[3].replace(form, "{content}")
        # (The page also fetches the next case's images ahead: named by that case's own reference, whatever the
        # source; the blinding audit tests how many as a feature of its own.)
        calls = sorted({(r.method, re.sub(r"\d+", "#", re.sub(r"[0-9a-f]{32}", "{next}",
                                                               r.url.replace(case_ref, "{ref}")).split("?")[0]),
                         r.response().status if r.response() else None)
                        for r in requests if "/api/" in r.url})
        shapes[source] = {"elements": shape["elements"], "storage": shape["storage"], "api_calls": calls}
        shown[source] = sorted(re.sub(r"\d+", "#", h.strip())
                               for h in page.locator("h1, h2, h3, strong").all_inner_texts())
        context.close()
    assert shown["model"] == shown["reader"]
    assert shapes["model"]["storage"] == shapes["reader"]["storage"]
    assert "readerstudy-clock-{ref}" in shapes["model"]["storage"]
    assert shapes["model"]["api_calls"] == shapes["reader"]["api_calls"]
    model, reader = shapes["model"]["elements"], shapes["reader"]["elements"]
    differing = [(i, a, b) for i, (a, b) in enumerate(zip(model, reader)) if a != b]
    assert len(model) == len(reader) and not differing, f"{views}: {differing[:5]}"  # (a string: shown whole)


@pytest.mark.browser
def test_report_markup_is_shown_as_plain_text(served_study, browser):
    study = served_study
    actor = study.actor("att3")
    compare = study.items(actor, task="compare", status="ready")[0].case_ref
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.context.add_cookies([{"name": auth.SESSION_COOKIE, "value": study.session_token("att3"),
                               "url": study.base}])
    open_case(page, study.base, compare)
    page.get_by_text("<b>bold</b>", exact=False).first.wait_for(timeout=30_000)
    body = page.locator("body").inner_text()
    # (A reader's report becomes a draft through the same clean-up as a model's, which drops ** emphasis
    # marks so the two sources look alike; everything else must arrive character for character.)
    assert "<script>window.__rs_pwned = 1</script>" in body and "[link](http://evil.example)" in body
    assert page.evaluate("() => window.__rs_pwned === undefined")
    assert page.locator("b:has-text('bold'), strong:has-text('stars'), i:has-text('lungs clear')").count() == 0
    assert page.locator("img[src='x'], script:has-text('__rs_pwned'), a[href='http://evil.example']").count() == 0
    # And the reader's own markup, submitted through the editor, comes back literally in the locked view.
    edit = study.items(actor, task="edit", status="ready")[0].case_ref
    open_case(page, study.base, edit)
    page.locator("textarea.rs-text").fill(HOSTILE_REPORT + " <u>own</u>")
    page.locator("button.rs-submit").click()
    page.get_by_text("Your submitted findings").wait_for(timeout=30_000)
    assert "<u>own</u>" in page.locator("body").inner_text()
    assert page.locator("u:has-text('own'), b:has-text('bold')").count() == 0
    assert page.evaluate("() => window.__rs_pwned === undefined")
    page.close()
