"""AppTest smoke and state tests of the reader pages: every task type, every state, refresh in each state."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from study_app.services import auth, reading
from study_app.services.errors import AlreadySubmitted
from study_app.store.models import Event
from tests.case_refs import assignment_of

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def texts(at) -> list[str]:
    return [t.value for t in at.text]


def words(at) -> str:
    """Everything a reader can read on the page, as one string."""
    parts = [t.value for t in at.text] + [m.value for m in at.markdown] + [s.value for s in at.subheader]
    parts += [e.value for kind in (at.error, at.info, at.success, at.warning) for e in kind]
    parts += [b.label for b in at.button] + [r.label for r in at.radio]
    return "\n".join(str(p) for p in parts)


def start(at):
    """Press Start on an arm's instructions when they are shown."""
    starts = [b for b in at.button if b.label == "Start"]
    return starts[0].click().run() if starts else at


def sessions_of(study, case_ref: str) -> int:
    with study.db.read() as session:
        return assignment_of(session, case_ref).sessions


def test_signed_out_browser_sees_how_to_sign_in(web_study, open_page):
    at = open_page(None)
    assert not at.exception
    assert "not signed in" in at.info[0].value
    assert not at.text  # no case, no worklist


def test_revoked_session_is_signed_out_on_next_rerun(web_study, open_page):
    token, _ = web_study.sign_in("res1")
    at = open_page(token)
    assert at.progress, "a signed-in reader sees the progress bar"
    auth.revoke_session(web_study.db, token)
    at.run()
    assert "not signed in" in at.info[0].value


def test_instructions_come_before_an_arms_first_case_then_the_case_opens(web_study, open_page):
    token, actor = web_study.sign_in("res1")
    at = open_page(token)
    assert not at.exception
    instructions = [m.value for m in at.markdown if m.value.lstrip().startswith("###")]
    assert instructions, "the arm's instructions are rendered as markdown"
    assert [b.label for b in at.button] == ["Start"]
    first = reading.worklist(web_study.db, actor).next_item()
    assert first.status == "ready", "reading the instructions does not open the case"
    at = start(at)
    assert not at.exception
    assert reading.case_view(web_study.db, actor, first.case_ref).status == "in_progress"
    assert any(s.value.startswith(f"Case {first.position} of ") for s in at.subheader)
    assert sessions_of(web_study, first.case_ref) == 1
    # A rerun of the same tab is not a new visit; a refresh (new tab) is, and skips the instructions.
    at.run()
    assert sessions_of(web_study, first.case_ref) == 1
    again = open_page(token)
    assert "Start" not in [b.label for b in again.button]
    assert sessions_of(web_study, first.case_ref) == 2


def test_write_case_shows_an_empty_editor_and_resumes_from_autosave(web_study, open_page):
    token, actor = web_study.sign_in("res1")
    item = web_study.items(actor, task="write")[0]
    at = start(open_page(token, case=item.case_ref))
    view = reading.case_view(web_study.db, actor, item.case_ref)
    assert view.editor_text == ""
    reading.autosave(web_study.db, actor, item.case_ref, "Heart size normal.")
    refreshed = open_page(token, case=item.case_ref)
    assert not refreshed.exception
    editor = _editor_data(refreshed)
    assert editor["text"] == "Heart size normal." and editor["mode"] == "write"


def _edit_submitted(web_study, open_page, reader: str = "res1"):
    """A reader's first edit case, opened, its image shown (what the viewer reports) and its findings submitted:
    the page run again shows the questions. Returns the page, the reader's invite token, the reader and the item."""
    token, actor = web_study.sign_in(reader)
    item = web_study.items(actor, task="edit")[0]
    at = start(open_page(token, case=item.case_ref))
    reading.mark_image_shown(web_study.db, actor, item.case_ref)
    reading.submit(web_study.db, actor, item.case_ref, "Edited findings.")
    at.run()
    return at, token, actor, item


def _component_data(at, name: str) -> dict | None:
    """The data the page handed to a browser component (None when it is not on the page)."""
    import json

    for node in _walk(at.main):
        if getattr(node, "type", None) == "bidi_component" and node.proto.component_name == name:
            return json.loads(node.proto.json or "null")
    return None


def _editor_data(at) -> dict:
    data = _component_data(at, "readerstudy_editor")
    assert data is not None, "no report editor on the page"
    return data


def _walk(block):
    yield block
    for child in getattr(block, "children", {}).values():
        yield from _walk(child)


def test_edit_case_prefills_the_draft_and_says_nothing_of_its_source(residents_done, open_page):
    study = residents_done
    token, actor = study.sign_in("att1")
    edits = study.items(actor, task="edit", status="ready")
    assert len(edits) >= 2, "att1 edits a resident draft and a model draft"
    seen = []
    for item in edits[:2]:
        at = start(open_page(token, case=item.case_ref))
        assert not at.exception
        view = reading.case_view(study.db, actor, item.case_ref)
        assert _editor_data(at)["text"] == view.editor_text != ""
        page = words(at).lower()
        for telltale in ("model", "resident", "ai ", "chexone", item.arm_key.lower()):
            assert telltale not in page, f"'{telltale}' on an edit page"
        # Same layout whatever the draft's source: only the texts differ.
        seen.append([m.value for m in at.markdown if not m.value.lstrip().startswith("###")])
    assert seen[0] == seen[1]


def test_submitted_case_locks_the_text_and_requires_answers(web_study, open_page):
    at, token, actor, item = _edit_submitted(web_study, open_page)
    assert not at.exception
    assert "Edited findings." in texts(at)
    assert "locked" in words(at)
    likert = [r for r in at.radio if len(r.options) == 5]
    assert likert and all(r.value is None for r in at.radio)
    save = next(b for b in at.button if b.label == "Save and next")
    at = save.click().run()
    assert "please answer" in at.error[0].value
    assert reading.case_view(web_study.db, actor, item.case_ref).status == "submitted"
    # Refresh while the questions are open: still submitted, questions again, no editor.
    at = open_page(token)
    assert [r.label for r in at.radio][:1] == ["Why did you edit the draft?"]
    view = reading.case_view(web_study.db, actor, item.case_ref)
    for radio, question in zip(at.radio, view.questions):
        radio.set_value(question.options[0]["value"])
    at = next(b for b in at.button if b.label == "Save and next").click().run()
    assert not at.exception and not at.error
    with web_study.db.read() as session:
        status = assignment_of(session, item.case_ref).status
    assert status == "completed"
    # One press: the answers are saved and the next case is on screen (its instructions, or its images).
    assert [t.value for t in at.toast] == [f"Case {item.position} of {len(web_study.items(actor))} is saved and finished."]
    following = reading.worklist(web_study.db, actor).next_item()
    viewer = _component_data(at, "readerstudy_viewer")
    assert (viewer or {}).get("case_ref") == following.case_ref or [b.label for b in at.button] == ["Start"]
    assert "Next case" not in [b.label for b in at.button]


def test_a_database_fault_at_save_and_next_is_said_under_the_form_and_keeps_the_answers(web_study, open_page,
                                                                                        monkeypatch):
    from study_app.services.errors import DatabaseUnavailable

    at, token, actor, item = _edit_submitted(web_study, open_page)
    view = reading.case_view(web_study.db, actor, item.case_ref)
    chosen = [question.options[0]["value"] for question in view.questions]
    for radio, value in zip(at.radio, chosen):
        radio.set_value(value)
    saved = reading.save_answers

    def busy(*args, **kwargs):
        raise DatabaseUnavailable("The study database is busy; nothing was saved. Try again.", reason="busy")

    monkeypatch.setattr(reading, "save_answers", busy)
    at = next(b for b in at.button if b.label == "Save and next").click().run()
    assert not at.exception
    assert "nothing was saved" in at.error[0].value
    assert [r.value for r in at.radio][:len(chosen)] == chosen  # every answer chosen is still there
    assert reading.case_view(web_study.db, actor, item.case_ref).status == "submitted"
    monkeypatch.setattr(reading, "save_answers", saved)
    at = next(b for b in at.button if b.label == "Save and next").click().run()
    assert not at.exception and not at.error
    assert reading.worklist(web_study.db, actor).item(item.case_ref).status == "completed"


def test_save_then_the_worklist_pauses_between_cases(web_study, open_page):
    at, token, actor, item = _edit_submitted(web_study, open_page)
    view = reading.case_view(web_study.db, actor, item.case_ref)
    for radio, question in zip(at.radio, view.questions):
        radio.set_value(question.options[0]["value"])
    at = next(b for b in at.button if b.label == "Save, then the worklist").click().run()
    assert not at.exception
    assert reading.worklist(web_study.db, actor).item(item.case_ref).status == "completed"
    assert at.dataframe, "the worklist is on screen"
    following = reading.worklist(web_study.db, actor).next_item()
    assert following.status == "ready", "no case was opened: the next clock has not started"


def test_radio_labels_are_the_designs_and_likert_has_five_points(web_study, open_page):
    token, actor = web_study.sign_in("res1")
    item = web_study.items(actor, task="edit")[0]
    reading.open_case(web_study.db, actor, item.case_ref)
    reading.mark_image_shown(web_study.db, actor, item.case_ref)
    reading.submit(web_study.db, actor, item.case_ref, "x")
    at = open_page(token)
    view = reading.case_view(web_study.db, actor, item.case_ref)
    for radio, question in zip(at.radio, view.questions):
        assert radio.label == question.label
        assert radio.options == [o["label"] for o in question.options]
    assert sum(len(r.options) == 5 for r in at.radio) == 3


def test_going_back_to_a_finished_case_is_refused(web_study, open_page, finish_case):
    token, actor = web_study.sign_in("res1")
    item = web_study.items(actor)[0]
    finish_case(web_study, actor, item.case_ref)
    at = open_page(token, case=item.case_ref)
    assert "cannot be reopened" in at.error[0].value
    assert _no_editor(at)


def _no_editor(at) -> bool:
    return _component_data(at, "readerstudy_editor") is None


@pytest.mark.parametrize("value", ["abc", "999999", "9" * 40, "x" * 500, "%00"])
def test_bad_case_in_the_url_gets_a_clear_message(web_study, open_page, value):
    token, _ = web_study.sign_in("res1")
    at = open_page(token, case=value)
    assert not at.exception
    assert [e.value for e in at.error] == ["no such case in your worklist"]


def test_another_readers_case_is_not_reachable(web_study, open_page):
    _, other = web_study.sign_in("res2")
    theirs = web_study.items(other)[0].case_ref
    token, _ = web_study.sign_in("res1")
    at = open_page(token, case=theirs)
    assert [e.value for e in at.error] == ["no such case in your worklist"], "told exactly like a made-up one"
    assert _no_editor(at)


def test_compare_case_shows_report_a_and_b_as_plain_text(residents_done, open_page):
    study = residents_done
    token, actor = study.sign_in("att1")
    item = study.items(actor, task="compare", status="ready")[0]
    at = start(open_page(token, case=item.case_ref))
    assert not at.exception
    view = reading.case_view(study.db, actor, item.case_ref)
    assert view.report_a in texts(at) and view.report_b in texts(at)
    labels = [m.value for m in at.markdown]
    assert "**Report A**" in labels and "**Report B**" in labels
    assert _editor_data(at)["mode"] == "none"
    reading.mark_image_shown(study.db, actor, item.case_ref)
    reading.submit(study.db, actor, item.case_ref)
    at.run()
    assert [r.label for r in at.radio] == ["Which report do you prefer?"]
    at.radio[0].set_value("B")
    at = next(b for b in at.button if b.label == "Save and next").click().run()
    assert "is saved and finished" in at.toast[0].value


def test_reasoning_case_shows_question_options_trace_and_answer(web_study, open_page):
    token, actor = web_study.sign_in("rad1")
    item = web_study.items(actor, task="rate_reasoning")[0]
    at = start(open_page(token, case=item.case_ref))
    assert not at.exception
    view = reading.case_view(web_study.db, actor, item.case_ref)
    shown = texts(at)
    assert view.mc_question in shown and view.reasoning in shown
    assert f"{view.model_answer}. {view.mc_options[view.model_answer]}" in shown, "the answer with its option text"
    assert any(all(f"{k}. {v}" in t for k, v in view.mc_options.items()) for t in shown)
    # After SUBMIT the reader rates the reasoning with the question, the options and the whole answer on screen.
    reading.mark_image_shown(web_study.db, actor, item.case_ref)
    reading.submit(web_study.db, actor, item.case_ref)
    at.run()
    after = texts(at)
    assert [r.label for r in at.radio][:1] == ["The reasoning is factually correct about the image."]
    assert view.mc_question in after and view.reasoning in after
    assert f"{view.model_answer}. {view.mc_options[view.model_answer]}" in after


def test_write_case_without_questions_completes_at_submit(web_study, open_page):
    token, actor = web_study.sign_in("res1")
    item = web_study.items(actor, task="write")[0]
    at = start(open_page(token, case=item.case_ref))
    reading.mark_image_shown(web_study.db, actor, item.case_ref)
    assert _editor_data(at)["submit_label"] == "Submit and next", "no questions: Submit goes straight on"
    result = reading.submit(web_study.db, actor, item.case_ref, "Lungs clear.")
    assert result.status == "completed"
    at = open_page(token)
    assert not at.exception
    assert f"Case {item.position} of" not in words(at) or _no_editor(at)


def test_double_submit_from_a_second_tab_keeps_the_first(web_study, open_page):
    token, actor = web_study.sign_in("res1")
    item = web_study.items(actor, task="edit")[0]
    first_tab = start(open_page(token, case=item.case_ref))
    second_tab = open_page(token, case=item.case_ref)
    reading.mark_image_shown(web_study.db, actor, item.case_ref)
    reading.submit(web_study.db, actor, item.case_ref, "First.")
    with pytest.raises(AlreadySubmitted):
        reading.submit(web_study.db, actor, item.case_ref, "Second.")
    for tab in (first_tab, second_tab):
        tab.run()
        assert "First." in texts(tab) and "Second." not in texts(tab)
    with web_study.db.read() as session:
        kinds = session.scalars(
            select(Event.kind).where(Event.assignment_id == assignment_of(session, item.case_ref).id,
                                     Event.kind == "submitted")
        ).all()
    assert kinds == ["submitted"]


def test_a_notice_outlasts_the_pages_own_reruns_and_goes_with_the_case(web_study, open_page):
    """The 'already submitted' notice must not vanish on the rerun the viewer triggers by itself."""
    token, actor = web_study.sign_in("res1")
    first, second = [i.case_ref for i in web_study.items(actor, task="edit")[:2]]
    tab = start(open_page(token, case=first))
    state = tab.session_state["reading"]
    state["notice"] = {"text": "This case was already submitted (in another tab or by a double click)."}
    tab.session_state["reading"] = state
    for _ in range(3):  # the page's own reruns: the notice stays
        tab.run()
        assert [w.value for w in tab.warning] == [state["notice"]["text"]]
    tab.query_params["case"] = str(second)  # the reader moves on: it goes
    tab.run()
    assert not tab.warning


def test_end_screen_when_every_case_is_done(web_study, open_page, finish_case):
    token, actor = web_study.sign_in("res2")
    for item in web_study.items(actor):
        finish_case(web_study, actor, item.case_ref)
    at = open_page(token)
    assert not at.exception
    worklist = reading.worklist(web_study.db, actor)
    assert f"All {worklist.total} cases are done" in at.success[0].value
    assert at.progress[0].value == 100


def test_attending_waits_for_the_round_not_for_single_reports(web_study, open_page, finish_case):
    token, actor = web_study.sign_in("att1")
    assert not web_study.items(actor, status="ready"), "every attending case waits for round 2"
    at = open_page(token)
    assert [i.value for i in at.info] == [
        "You have done every case that is open. Your next cases open when the current reading round is "
        "complete; come back later, your place is kept."]


def test_worklist_page_lists_states_without_arm_names(web_study):
    from streamlit.testing.v1 import AppTest

    token, actor = web_study.sign_in("att1")

    def worklist_tab(token):
        import streamlit as st

        from study_app.web.views import worklist
        from study_app.web.session import current_actor

        st.session_state["readerstudy_session_token"] = token
        st.session_state["actor"] = current_actor()
        worklist.render()

    at = AppTest.from_function(worklist_tab, args=(token,), default_timeout=30).run()
    assert not at.exception
    table = at.dataframe[0].value
    items = reading.worklist(web_study.db, actor).items
    assert len(table) == len(items)
    assert set(table["state"]) == {"opens with your next reading round"}, "one state for every held case"
    flat = table.to_string().lower()
    assert "model" not in flat and "resident" not in flat


def test_same_instructions_are_shown_once_across_arms(residents_done, open_page):
    study = residents_done
    token, actor = study.sign_in("att1")
    edits = study.items(actor, task="edit", status="ready")
    assert len({i.arm_key for i in edits}) == 2, "att1 has edit cases from two arms"
    one = next(i for i in edits if i.arm_key == edits[0].arm_key)
    other = next(i for i in edits if i.arm_key != edits[0].arm_key)
    at = open_page(token, case=one.case_ref)
    assert [b.label for b in at.button] == ["Start"]
    at = start(at)
    at.query_params["case"] = str(other.case_ref)
    at.run()
    assert "Start" not in [b.label for b in at.button], "a second arm with the same text would betray itself"
    assert _editor_data(at)["case_ref"] == other.case_ref


def test_refresh_on_the_instructions_keeps_the_case_unopened(web_study, open_page):
    token, actor = web_study.sign_in("res1")
    first = reading.worklist(web_study.db, actor).next_item()
    for _ in range(2):
        at = open_page(token)
        assert [b.label for b in at.button] == ["Start"]
    assert reading.case_view(web_study.db, actor, first.case_ref).status == "ready"
    assert sessions_of(web_study, first.case_ref) == 0


def test_report_text_is_never_rendered_as_markdown_or_html(web_study, open_page):
    token, actor = web_study.sign_in("res1")
    item = web_study.items(actor, task="edit")[0]
    tricky = "**Bold?** <b>tag</b> [link](http://x.example) # not a heading"
    reading.open_case(web_study.db, actor, item.case_ref)
    reading.autosave(web_study.db, actor, item.case_ref, tricky)
    at = open_page(token, case=item.case_ref)
    assert _editor_data(at)["text"] == tricky
    reading.mark_image_shown(web_study.db, actor, item.case_ref)
    reading.submit(web_study.db, actor, item.case_ref, tricky)
    at.run()
    assert tricky in texts(at)
    assert not [m.value for m in at.markdown if "Bold?" in m.value or "<b>" in m.value]


def test_the_desk_gets_the_designs_hanging_and_the_next_cases_images(web_study, open_page):
    token, actor = web_study.sign_in("res1")
    first, second = web_study.items(actor)[:2]
    at = start(open_page(token, case=first.case_ref))
    viewer = _component_data(at, "readerstudy_viewer")
    assert viewer["hanging"] == ["frontal_lateral", "current_prior", "single"], "the shipped design's protocol"
    ordinals = [i.ordinal for i in reading.case_view(web_study.db, actor, second.case_ref).images]
    assert viewer["prefetch"] == [f"/api/image/{second.case_ref}/{o}/preview" for o in ordinals] + [
        f"/api/image/{second.case_ref}/{o}" for o in ordinals], "previews first, then the full copies"
    image = viewer["images"][0]
    assert image["preview_url"] == image["url"] + "/preview" and image["presets"][0]["key"] == "file"
    assert _editor_data(at)["limit"] == reading.MAX_REPORT_CHARS


def test_the_draft_is_shown_read_only_above_the_editor_unless_the_design_says_not(web_study, open_page):
    from study_app.store.models import Study

    token, actor = web_study.sign_in("res1")
    item = web_study.items(actor, task="edit")[0]
    at = start(open_page(token, case=item.case_ref))
    draft = reading.case_view(web_study.db, actor, item.case_ref).draft_text
    assert draft and draft in texts(at) and "**Draft as given** (read-only)" in [m.value for m in at.markdown]
    reading.autosave(web_study.db, actor, item.case_ref, "Edited away.")
    at = open_page(token, case=item.case_ref)
    assert draft in texts(at), "the draft as given, not the autosave, stands above the editor"
    with web_study.db.transaction() as session:
        study = session.get(Study, "demo")
        study.settings = {**study.settings, "desk": {**study.settings["desk"], "show_draft": False}}
    at = open_page(token, case=item.case_ref)
    assert draft not in texts(at) and _editor_data(at)["text"] == "Edited away."


def test_a_visual_analogue_question_is_a_number_field_that_starts_empty(web_study, open_page):
    from study_app.store.models import Arm, Question

    with web_study.db.transaction() as session:  # a design with a 0-100 item after the residents' edits
        arm = session.scalars(select(Arm).where(Arm.key == "resident_edit_model")).one()
        session.add(Question(arm_id=arm.id, ordinal=9, key="image_quality", kind="vas", label="Image quality",
                             options=[], required=True,
                             scale={"min": 0, "max": 100, "step": 1, "min_label": "unusable", "max_label": "excellent"}))
    at, token, actor, item = _edit_submitted(web_study, open_page)
    [field] = [n for n in at.number_input if n.label.startswith("Image quality")]
    assert field.label == "Image quality (0 = unusable, 100 = excellent)" and field.value is None
    assert (field.min, field.max) == (0, 100)
    view = reading.case_view(web_study.db, actor, item.case_ref)
    for radio, question in zip(at.radio, [q for q in view.questions if q.kind != "vas"]):
        radio.set_value(question.options[0]["value"])
    field.set_value(73)
    at = next(b for b in at.button if b.label == "Save and next").click().run()
    assert not at.exception and not at.error
    from study_app.store.models import Answer

    with web_study.db.read() as session:
        assignment = assignment_of(session, item.case_ref)
        stored = session.execute(select(Answer.value, Answer.label).join(Question, Answer.question_id == Question.id)
                                 .where(Answer.assignment_id == assignment.id, Question.key == "image_quality")).one()
    assert tuple(stored) == ("73", "73") and assignment.status == "completed"
