"""Design instructions render as markdown that loads nothing (the browser check is tests/reliability/test_csp.py)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from study_app.store.models import Arm
from study_app.web.markup import inert_markdown
from tests.case_refs import assignment_of


@pytest.mark.parametrize(("written", "shown"), [
    ("![pixel](http://evil.example/p.png)", "pixel"),
    ("![](http://evil.example/p.png)", "(image)"),
    ("[the protocol](https://evil.example/x \"title\")", "the protocol (`https://evil.example/x`)"),
    ("<https://evil.example/auto>", "`https://evil.example/auto`"),
    ("see https://evil.example/bare.", "see `https://evil.example/bare`."),
    ("www.evil.example and me@site.org", "`www.evil.example` and `me@site.org`"),
    ("[ref]\n\n[ref]: https://evil.example/ref", "\\[ref\\]\n\n"),
    ("<img src=x onerror=alert(1)>", "\\<img src=x onerror=alert(1)\\>"),
    ("**bold**, a list:\n- one\n- two", "**bold**, a list:\n- one\n- two"),
    ("keep `code with https://x.example` literal", "keep `code with https://x.example` literal"),
    ("Note: 10:30 sharp", "Note: 10:30 sharp"),
])
def test_instructions_keep_their_formatting_and_lose_every_link(written, shown):
    assert inert_markdown(written) == shown


def test_no_link_syntax_survives_in_any_text():
    hostile = "".join(f"[a{i}](http://e{i}.example) ![b](//e.example/{i}) <http://f{i}.example> " for i in range(5))
    out = inert_markdown(hostile + "[x]: http://g.example\nhttp://h.example www.i.example")
    outside_code = re.sub(r"`[^`]*`", "", out)
    assert "://" not in outside_code and "www." not in outside_code
    assert not re.search(r"(?<!\\)[\[\]<>]", outside_code)


def test_the_case_page_renders_the_instructions_inert(web_study, open_page):
    token, actor = web_study.sign_in("res1")
    case = web_study.items(actor, status="ready")[0].case_ref
    with web_study.db.transaction() as session:
        arm = assignment_of(session, case).arm_id
        session.execute(update(Arm).where(Arm.id == arm).values(
            instructions="Read [the protocol](https://evil.example/p) first. ![x](http://evil.example/x.png)"))
    at = open_page(token, case=case)
    assert not at.exception
    assert "Read the protocol (`https://evil.example/p`) first. x" in [m.value for m in at.markdown]
