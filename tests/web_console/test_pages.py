"""Smoke tests of every console page, and the permission table: coordinators get each page, nobody else does."""

import pytest

from study_app.services.actors import SYSTEM, Actor, reader_actor
from study_app.web.console.access import REFUSAL
from tests.web_console.conftest import COORDINATOR, PAGES


def texts(at) -> str:
    parts = [e.value for kind in ("title", "text", "code", "caption", "markdown", "error", "success", "info",
                                  "warning") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def _page_paths():
    import streamlit as st

    from study_app.web.console import console_pages

    st.text(",".join(f"{p.url_path}:{p._visibility}:{p._default}" for p in console_pages()))


def test_console_pages_are_all_prefixed_and_listed():
    from streamlit.testing.v1 import AppTest

    # st.Page needs a running script, hence AppTest even for a list.
    at = AppTest.from_function(_page_paths).run()
    pages = [entry.split(":") for entry in at.text[0].value.split(",")]
    # The default page is served at the root; /console-studies reaches the same page (hidden from the sidebar)
    # instead of a "Page not found" dialog.
    assert pages[0] == ["", "visible", "True"] and pages[1] == ["console-studies", "hidden", "False"]
    assert [p for p, visibility, _ in pages if visibility == "visible"][1:] == list(PAGES)[1:]
    assert {p for p, _, _ in pages} - {""} == set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_for_a_coordinator(console_study, console_page, page):
    at = console_page(page, study="demo")
    assert not at.exception, at.exception
    assert not [e.value for e in at.error], [e.value for e in at.error]
    assert at.title[0].value


PERMISSIONS = [
    (COORDINATOR, True),
    (SYSTEM, True),
    (reader_actor(1, "res1"), False),
    (Actor(kind="reader", name="att1", reader_id=3), False),
    (None, False),
]


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(("actor", "allowed"), PERMISSIONS, ids=["coordinator", "system", "reader", "reader2", "nobody"])
def test_permission_table(console_study, console_page, page, actor, allowed):
    at = console_page(page, actor=actor, study="demo")
    assert not at.exception
    refused = REFUSAL in [e.value for e in at.error]
    assert refused is not allowed
    if not allowed:
        # Refused before anything of the study is read: no title, table or widget of the page.
        assert not at.title and not at.dataframe and not at.button and not at.selectbox


def test_every_page_is_documented_with_its_screenshots():
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    guide = (docs / "console.md").read_text(encoding="utf-8")
    for page in PAGES:
        title = page.removeprefix("console-").capitalize()
        assert f"\n## {title}\n" in guide, f"page {page} has no section in docs/console.md"
    images = re.findall(r"\]\((img/[^)]+\.png)\)", guide)
    assert len(images) >= len(PAGES)
    missing = [i for i in images if not (docs / i).is_file()]
    assert not missing, f"screenshots missing (run the browser test with READERSTUDY_SCREENSHOTS=docs/img): {missing}"
