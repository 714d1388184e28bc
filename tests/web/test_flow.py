"""The case page's flow rules, without Streamlit (study_app/web/flow.py)."""

from study_app.services.reading import Worklist, WorklistItem
from study_app.web import flow


def worklist(*items) -> Worklist:
    return Worklist("r1", "open", [WorklistItem(ref, i + 1, arm, task, status, 1) for i, (ref, arm, task, status)
                                   in enumerate(items)])


EDITS = worklist(("a", "edit_model", "edit", "ready"), ("b", "edit_reader", "edit", "ready"),
                 ("c", "scratch", "write", "completed"))


def test_instructions_come_once_per_task_before_it_is_started_whatever_the_arm():
    first, second = EDITS.items[0], EDITS.items[1]
    assert flow.needs_instructions(EDITS, first, "### Edit", set())
    # The same text was read in this tab (from either arm): not again.
    assert not flow.needs_instructions(EDITS, second, "### Edit", {"### Edit"})
    # A case of the task already started: the reader has seen them, not again (a refresh included).
    started = worklist(("a", "edit_model", "edit", "in_progress"), ("b", "edit_reader", "edit", "ready"))
    assert not flow.needs_instructions(started, started.items[1], "### Edit", set())
    assert not flow.needs_instructions(EDITS, first, "   ", set())
    assert not flow.needs_instructions(EDITS, EDITS.items[2], "### Write", set())  # not ready


def test_the_screen_is_the_requested_case_else_the_next_one_else_the_end():
    assert flow.screen_for(EDITS, "b") == flow.Screen("b", EDITS.items[1])
    assert flow.screen_for(EDITS, "someone-else").item is None  # the service refuses it, in its own words
    assert flow.screen_for(EDITS, None).case_ref == "a"
    done = worklist(("c", "scratch", "write", "completed"))
    assert flow.screen_for(done, None).end


def test_a_notice_stays_on_its_screen_and_goes_with_it():
    notice = {"text": "already submitted"}
    on = flow.screen_key(EDITS, "a", None)
    assert flow.keep_notice(notice, on) is notice
    assert flow.keep_notice(notice, on) is notice  # the page's own reruns
    assert flow.keep_notice(notice, flow.screen_key(EDITS, "b", None)) is None
    assert flow.screen_key(EDITS, None, "a") == "done-a"
    assert flow.keep_notice(None, on) is None


def test_what_a_press_led_to():
    assert flow.press_outcome("a", "submitted", {"outcome": "already"}).notice == flow.ALREADY_SUBMITTED_NOTICE
    assert flow.press_outcome("a", "completed", {"outcome": "stored"}) == flow.PressOutcome(just_done="a")
    assert flow.press_outcome("a", "submitted", {"outcome": "stored"}) == flow.PressOutcome()
    assert flow.press_outcome("a", "completed", None) == flow.PressOutcome(just_done="a")


def test_the_models_answer_keeps_its_option_text():
    options = {"A": "Right effusion", "C": "Left effusion"}
    assert flow.answer_text("C", options) == "C. Left effusion"
    assert flow.answer_text(" C ", options) == "C. Left effusion"
    assert flow.answer_text("Left effusion", options) == "Left effusion"
    assert flow.answer_text(None, options) is None


def test_the_flow_module_draws_nothing():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(flow.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.split(".")[0] == "streamlit" for m in imported)


def test_a_finished_case_is_named_by_its_place_on_the_next_screen():
    assert flow.finished_toast(EDITS, "b") == "Case 2 of 3 is saved and finished."
    assert flow.finished_toast(EDITS, "gone") == "The case is saved and finished."
