"""The entry script's error boundary (AppTest): a database fault or a bug anywhere shows one plain sentence,
never Streamlit's exception box."""

from __future__ import annotations

from sqlalchemy import event

from study_app.services import reading
from study_app.web.errors import UNEXPECTED


def errors_of(at) -> list[str]:
    return [e.value.replace("\\", "") for e in at.error]


def make_read_only(db) -> None:
    db.engine.dispose()
    event.listen(db.engine, "connect", lambda connection, _r: connection.execute("PRAGMA query_only = ON"))


def test_a_read_only_database_while_opening_a_case_is_a_sentence(web_study, open_page):
    token, actor = web_study.sign_in("res1")
    case = web_study.items(actor, status="ready")[0].case_ref
    at = open_page(token, case=case)  # the arm's instructions come first; Start opens the case (a write)
    make_read_only(web_study.db)
    at = at.button(key=f"start-{case}").click().run()
    assert not at.exception, at.exception
    assert errors_of(at) == ["The study database is read-only; nothing was saved. Tell your study coordinator; "
                             "try again once it is writable."]


def test_a_damaged_database_before_sign_in_is_checked_is_a_sentence(web_study, open_page):
    token, _ = web_study.sign_in("res1")
    web_study.db.dispose()
    with open(web_study.path, "r+b") as f:
        f.write(b"no longer a database" * 5)
    at = open_page(token)
    assert not at.exception, at.exception
    assert errors_of(at) == ["The study database is damaged; the page could not be loaded. Tell your study "
                             "coordinator (restore from a backup)."]


def test_a_bug_in_a_page_is_a_calm_sentence_and_is_logged(web_study, open_page, monkeypatch, caplog):
    token, _ = web_study.sign_in("res1")

    def broken(*args, **kwargs):
        raise RuntimeError("a bug with /srv/secret/path in its message")

    monkeypatch.setattr(reading, "worklist", broken)
    at = open_page(token)
    assert not at.exception, at.exception
    assert errors_of(at) == [UNEXPECTED]
    shown = [e.value for kind in ("error", "warning", "info", "text", "markdown", "code") for e in getattr(at, kind)]
    assert "/srv/secret" not in str(shown)
    assert any("page failed" in r.message and r.exc_info for r in caplog.records)
