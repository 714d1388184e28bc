"""The case page, laid out as a reading desk: a compact top bar, the images as large as the window allows on the
left, the task on the right (SUBMIT always on screen), then the questions with Save and next."""

from __future__ import annotations

import streamlit as st

from analysis.draft_errors import ANNOTATION_CHOICES, SIGNIFICANCE_LABELS
from study_app.services import images as image_service
from study_app.services import reading as reading_service
from study_app.services.errors import (AlreadySubmitted, Conflict, DatabaseUnavailable, InvalidInput, NotFound,
                                      ServiceError)
from study_app.services.reading import MAX_REPORT_CHARS
from study_app.web import flow
from study_app.web.components import image_viewer, report_editor
from study_app.web.database import shared_database
from study_app.web.markup import inert_markdown

TASK_LABELS = {"write": "Write", "edit": "Edit", "compare": "Compare", "rate_reasoning": "Rate reasoning",
               "detect": "Findings"}
PRESENCE_CHOICES = {"absent": False, "present": True}
# A scale of up to this many points is a row of buttons; a longer one (0-100) a number field that starts empty.
MAX_BUTTON_POINTS = 11
STATUS_LABELS = {
    # One label for every held case: a round opens whole, so nothing here depends on a case's draft.
    "pending": "opens with your next reading round",
    "ready": "to do",
    "in_progress": "in progress",
    "submitted": "submitted, questions open",
    "completed": "done",
}
# A case of a later reading session: the same label for every one of them (a session holds every modality).
SESSION_HELD_LABEL = "opens with your next reading session"
VIEW_LABELS = {"PA": "PA", "AP": "AP", "LATERAL": "Lateral", "LL": "Lateral"}
SAVE_AND_NEXT = "Save and next"
SAVE_AND_PAUSE = "Save, then the worklist"


def _state() -> dict:
    # Per browser tab: which cases this visit has opened, which arms' instructions were read.
    return st.session_state.setdefault("reading", {"visited": set(), "instructed": set(), "prefetched": set(),
                                                   "just_done": None, "notice": None, "toast": None})


def _image_label(image: image_service.CaseImage) -> str:
    label = VIEW_LABELS.get(image.view.upper(), image.view)
    return f"Prior {label}" if image.is_prior else label


def _plain(text: str | None) -> None:
    """Report text is shown as text, never interpreted as markdown or HTML."""
    st.text(text if text else "(empty)")


def _end_screen(worklist: reading_service.Worklist) -> None:
    if worklist.next_session is not None and not any(
            i.status == "pending" and not worklist.held_for_session(i) for i in worklist.items):
        st.info(f"You have done every case of this reading session. {worklist.next_session.message()} "
                "Come back then; your place is kept.")
    elif worklist.waiting:
        st.info(
            "You have done every case that is open. Your next cases open when the current reading round is "
            "complete; come back later, your place is kept."
        )
    else:
        st.success(f"All {worklist.total} cases are done. Thank you; you can close this tab.")


def _show_notice(state: dict, worklist: reading_service.Worklist) -> None:
    """A notice (second tab, refused submit) stays while the reader is on the screen where it first showed."""
    state["notice"] = flow.keep_notice(state["notice"],
                                       flow.screen_key(worklist, st.query_params.get("case"), state["just_done"]))
    if state["notice"] is not None:
        st.warning(state["notice"]["text"])


def _header(worklist: reading_service.Worklist) -> None:
    """One line in the top bar: the reader's progress and Sign out (placed there by the desk's style sheet, which
    the viewer and the editor put into the page: components/__init__.py)."""
    with st.container(key="rs-head", horizontal=True):
        st.progress(worklist.done / worklist.total if worklist.total else 1.0,
                    text=f"{worklist.done} of {worklist.total} cases done · {worklist.remaining} remaining")
        st.link_button("Sign out", "/signout")


def render() -> None:
    actor = st.session_state["actor"]
    db = shared_database()
    state = _state()
    if state.pop("to_worklist", False):  # Save, then the worklist: the answers were saved by the press
        st.query_params.clear()
        st.switch_page(st.session_state["reader_pages"]["worklist"])
    worklist = reading_service.worklist(db, actor)
    _header(worklist)
    if worklist.study_status != "open":
        st.info(f"Reading is not open at the moment (the study is {worklist.study_status}). Your work is saved.")
        return
    _after_press(worklist, state)
    if state["just_done"] is not None:
        # Finished (submitted with no questions, or answers saved): straight on to the next case.
        state["toast"] = flow.finished_toast(worklist, state["just_done"])
        state["just_done"] = None
        st.query_params.clear()  # a ?case= link must not point back at the finished case
    _show_notice(state, worklist)
    if state["toast"]:
        st.toast(state["toast"])
        state["toast"] = None

    screen = flow.screen_for(worklist, st.query_params.get("case"))
    if screen.end:
        _end_screen(worklist)
        return
    case_ref, item = screen.case_ref, screen.item

    if item is not None and item.status == "ready":
        instructions = reading_service.case_view(db, actor, item.case_ref).instructions
        if flow.needs_instructions(worklist, item, instructions, state["instructed"]):
            if f"instructions-{item.case_ref}" not in state["prefetched"]:
                # The server prepares the case's images while the reader reads the instructions.
                state["prefetched"].add(f"instructions-{item.case_ref}")
                image_service.prefetch_case(db, actor, item.case_ref)
            with st.container(border=True):
                st.markdown(inert_markdown(instructions))  # the only markdown this app renders; loads nothing
            if st.button("Start", type="primary", key=f"start-{item.case_ref}", shortcut="Ctrl+Enter"):
                state["instructed"].add(instructions)
                st.rerun()
            return

    try:
        if case_ref not in state["visited"]:
            view = reading_service.open_case(db, actor, case_ref, new_visit=True)
            state["visited"].add(case_ref)
        else:
            view = reading_service.case_view(db, actor, case_ref)
    except (Conflict, NotFound) as error:
        st.error(str(error))
        return
    _case(db, actor, view, state)


def _viewer(db, actor, view: reading_service.CaseView, state: dict) -> None:
    try:
        # The view read the case's images with its access check: no second lookup on every rerun.
        shown = image_service.display_images(view.image_files, view.desk["default_window"])
    except (ServiceError, ValueError, OSError) as error:
        shown = []
        st.error(f"The images of this case cannot be shown: {error}")
    following = None
    if view.status in ("in_progress", "submitted"):
        # The next case, looked up once per case in this tab (_case): only what the browser fetches ahead.
        following = state.get("ahead", {}).get(view.case_ref)
    image_viewer(
        view.case_ref,
        [
            {"id": image.ordinal, "label": _image_label(image), "view": image.view.upper(), "prior": image.is_prior,
             "url": f"/api/image/{view.case_ref}/{image.ordinal}",
             "preview_url": f"/api/image/{view.case_ref}/{image.ordinal}/preview", **display.meta.as_json()}
            for image, display in shown
        ],
        idle_threshold_s=view.idle_threshold_s,
        # A finished case reopened (the design allows going back) runs no clock.
        clock=view.status == "in_progress",
        hanging=list(view.desk["hanging"]),
        # The next case's images, fetched by the browser while the reader works on this one (previews first).
        prefetch=[] if following is None else
        [f"/api/image/{following.case_ref}/{o}/preview" for o in following.ordinals]
        + [f"/api/image/{following.case_ref}/{o}" for o in following.ordinals],
    )


def _case(db, actor, view: reading_service.CaseView, state: dict) -> None:
    if view.case_ref not in state["prefetched"]:
        # Once per case in this tab, not on every rerun (P1, P8): the server prepares the next case's images in
        # the background and the browser is told their addresses to fetch ahead.
        state["prefetched"].add(view.case_ref)
        state["ahead"] = {view.case_ref: image_service.next_case_ahead(db, actor, view.case_ref)}
    with st.container(key="rs-desk"):
        left, right = st.columns([3, 2], gap="small")
        with left:
            with st.container(key="rs-images"):
                _viewer(db, actor, view, state)
        with right:
            with st.container(key="rs-task"):
                st.subheader(f"Case {view.position} of {view.total} · {TASK_LABELS.get(view.task, view.task)}")
                with st.expander("Instructions"):
                    st.markdown(inert_markdown(view.instructions))
                with st.container(key="rs-facts"):
                    st.markdown("**Indication**")
                    _plain(view.indication)
                    st.markdown("**Comparison**")
                    _plain(view.comparison or "None")
                if view.status == "in_progress":
                    _task(db, actor, view, state)
                elif view.status == "completed":
                    _finished(view)
                else:
                    _after_submit(db, actor, view, state)


def _report_pair(view: reading_service.CaseView) -> None:
    """Report A and Report B side by side, as plain text: the one renderer, before and after SUBMIT."""
    with st.container(key="rs-reports"):
        a, b = st.columns(2)
        for column, label, text in ((a, "Report A", view.report_a), (b, "Report B", view.report_b)):
            with column:
                st.markdown(f"**{label}**")
                _plain(text)


def _reasoning(view: reading_service.CaseView) -> None:
    """The question, its options, the model's reasoning and its answer: the one renderer, before and after SUBMIT
    (the reader rates the reasoning with the question still on screen)."""
    st.markdown("**Question**")
    _plain(view.mc_question)
    _plain("\n".join(f"{key}. {text}" for key, text in (view.mc_options or {}).items()))
    st.markdown("**Model's reasoning**")
    _plain(view.reasoning)
    st.markdown("**Model's answer**")
    _plain(flow.answer_text(view.model_answer, view.mc_options))


def _ai_draft(view: reading_service.CaseView) -> None:
    with st.container(key="rs-draft"):
        st.markdown("**The AI's draft report** (read-only)")
        _plain(view.draft_text)


def _mark_keys(view: reading_service.CaseView, number: int) -> tuple[str, str]:
    # Keys carry the case's reference and the finding's place in the list, nothing else.
    return f"mark-{view.case_ref}-{number}-present", f"mark-{view.case_ref}-{number}-confidence"


def _save_mark(db, actor, view: reading_service.CaseView, number: int, finding: str, state: dict) -> None:
    """A mark's widget changed: save both halves of the finding's mark at once (the callback runs before the page
    does, so the mark is stored before anything else of the rerun)."""
    present_key, confidence_key = _mark_keys(view, number)
    present = PRESENCE_CHOICES.get(st.session_state.get(present_key))
    confidence = st.session_state.get(confidence_key)
    problems = state.setdefault("mark_problems", {})
    try:
        reading_service.mark_finding(db, actor, view.case_ref, finding, present=present,
                                     confidence=int(confidence) if confidence is not None else None)
    except InvalidInput as error:
        problems[(view.case_ref, finding)] = str(error)
        return
    except AlreadySubmitted as error:
        problems[(view.case_ref, finding)] = str(error)
        return
    problems.pop((view.case_ref, finding), None)


def _finding_marks(db, actor, view: reading_service.CaseView, state: dict) -> None:
    """Each finding of the study's list: present or absent, and the confidence that it is present; the AI's label
    beside it when the arm shows labels. Each change is saved at once; SUBMIT needs every finding marked."""
    detection = view.detection
    scale, labels, marks = detection["scale"], detection["ai_labels"], detection["marks"]
    low, high = scale["min"], scale["max"]
    points = list(range(low, high + 1))
    problems = state.setdefault("mark_problems", {})
    with st.container(key="rs-marks"):
        st.markdown("**Findings**")
        st.caption(f"For each finding: present or absent, and how confident you are that it is present "
                   f"({low} = {scale['min_label']}, {high} = {scale['max_label']}). Every finding needs both.")
        for number, finding in enumerate(detection["findings"], 1):
            present_key, confidence_key = _mark_keys(view, number)
            saved = marks.get(finding, {})
            with st.container(key=f"rs-finding-{number}"):
                title = f"**{finding}**"
                if labels is not None:
                    label = labels[finding]
                    title += (" · AI: " + ("present" if label["present"] else "absent")
                              + (f" ({label['probability']:.2f})" if label["probability"] is not None else ""))
                st.markdown(title)
                with st.container(horizontal=True):
                    saved_presence = {True: "present", False: "absent"}.get(saved.get("present"))
                    st.radio(f"{finding}: present?", options=list(PRESENCE_CHOICES), format_func=str.capitalize,
                             index=list(PRESENCE_CHOICES).index(saved_presence) if saved_presence else None,
                             horizontal=True, label_visibility="collapsed", key=present_key,
                             on_change=_save_mark, args=(db, actor, view, number, finding, state))
                    if len(points) <= MAX_BUTTON_POINTS:
                        st.radio(f"{finding}: confidence it is present", options=points,
                                 index=points.index(saved["confidence"]) if saved.get("confidence") in points
                                 else None, horizontal=True, label_visibility="collapsed", key=confidence_key,
                                 on_change=_save_mark, args=(db, actor, view, number, finding, state))
                    else:
                        st.number_input(f"{finding}: confidence it is present ({low}-{high})", min_value=low,
                                        max_value=high, step=1, value=saved.get("confidence"),
                                        label_visibility="collapsed", placeholder=f"{low}-{high}",
                                        key=confidence_key,
                                        on_change=_save_mark, args=(db, actor, view, number, finding, state))
                problem = problems.get((view.case_ref, finding))
                if problem:
                    st.warning(f"Not saved: {problem}")


def _marks_summary(view: reading_service.CaseView) -> None:
    """The marks as submitted, as text: the one renderer after SUBMIT and on a finished case."""
    marks = view.detection["marks"]
    high = view.detection["scale"]["max"]
    st.markdown("**Your submitted marks** (locked)")
    _plain("\n".join(
        f"{finding}: " + ("present" if marks.get(finding, {}).get("present") else "absent")
        + f", confidence {marks.get(finding, {}).get('confidence')} of {high}"
        for finding in view.detection["findings"]))


def _task(db, actor, view: reading_service.CaseView, state: dict) -> None:
    if view.task == "detect":
        if view.detection["shows_draft"]:
            _ai_draft(view)
        _finding_marks(db, actor, view, state)
    elif view.task == "compare":
        _report_pair(view)
    elif view.task == "rate_reasoning":
        _reasoning(view)
    elif view.task == "edit" and view.desk.get("show_draft", True):
        with st.container(key="rs-draft"):
            st.markdown("**Draft as given** (read-only)")
            _plain(view.draft_text)
    if view.task in ("write", "edit"):
        st.markdown("**Findings**" + (" (draft: edit until you would sign it)" if view.task == "edit" else ""))
    editor = {"case_ref": view.case_ref, "text": view.editor_text,
              "mode": view.task if view.task in ("write", "edit") else "none",
              "placeholder": "Write the findings…" if view.task == "write" else "",
              "submit_label": "Submit" if view.questions or view.annotate_errors else "Submit and next"}
    state["showing"] = editor
    with st.container(key="rs-editor"):
        report_editor(**editor, limit=MAX_REPORT_CHARS)


def _after_press(worklist: reading_service.Worklist, state: dict) -> None:
    """The rerun a submit asked for: say what became of this tab's press, once its case left the editor.

    The submission itself went to the server at the press; the page learns the result from the database.
    Whether it was this tab's press or another tab's that was stored only the editor knows: it is called once
    more, out of sight, to read the payload of the rerun it asked for (the case is no longer in progress, so
    the page will not draw the editor again).
    """
    editor = state.get("showing")
    if editor is None:
        return
    item = worklist.item(editor["case_ref"])
    if item is not None and item.status == "in_progress":
        return
    state["showing"] = None
    slot = st.empty()
    with slot:
        payload = report_editor(**editor, limit=MAX_REPORT_CHARS)
    slot.empty()
    outcome = flow.press_outcome(editor["case_ref"], item.status if item is not None else None, payload)
    if outcome.notice:
        state["notice"] = {"text": outcome.notice}
    if outcome.just_done:
        state["just_done"] = outcome.just_done


def _finished(view: reading_service.CaseView) -> None:
    """A finished case reopened because the design allows going back: everything shown, nothing editable."""
    st.info("This case is finished; its report and answers are locked.")
    if view.task == "detect":
        _marks_summary(view)
    if view.task in ("write", "edit"):
        st.markdown("**Your submitted findings** (locked)")
        _plain(view.editor_text)
    for segment in view.error_segments if view.annotate_errors else []:
        mark = view.error_marks.get(segment["segment"], {})
        significance = mark.get("significant")
        st.markdown(f"**Edit {segment['segment']} of {len(view.error_segments)}**")
        _plain(f"Draft: {segment['draft'] or '(nothing)'} / Yours: {segment['final'] or '(deleted)'}: "
               f"{ANNOTATION_CHOICES.get(mark.get('category'), '(not marked)')}"
               + ("" if significance is None else f", {SIGNIFICANCE_LABELS[significance].lower()}"))
    for question in view.questions:
        labels = {o["value"]: o["label"] for o in question.options}
        st.markdown(f"**{question.label}**")
        answer = view.answers.get(question.key, "")
        _plain(answer if question.kind == "vas" and answer else labels.get(answer, "(not answered)"))


def _scale_field(view: reading_service.CaseView, question) -> None:
    """A visual-analogue question: a number from min to max, with its end labels. A field that starts empty, not a
    slider: a slider has to start somewhere, and where it starts pulls the answer towards it."""
    scale = question.scale or {}
    low, high, step = float(scale.get("min", 0)), float(scale.get("max", 100)), float(scale.get("step", 1))
    ends = f"{low:g} = {scale.get('min_label') or 'lowest'}, {high:g} = {scale.get('max_label') or 'highest'}"
    whole = all(float(v).is_integer() for v in (low, high, step))
    st.number_input(question.label + ("" if question.required else " (optional)") + f" ({ends})",
                    min_value=int(low) if whole else low, max_value=int(high) if whole else high,
                    step=int(step) if whole else step, value=None, key=f"answer-{view.case_ref}-{question.key}")


SIGNIFICANCE_CHOICES = {"significant": True, "not_significant": False}


def _edit_marks(view: reading_service.CaseView) -> None:
    """The error annotation of the draft: each edit of the draft-to-final diff, its words before and after, a
    category (or not an error) and a significance. Laid out the same whatever the draft's source; widget keys
    carry only the case's reference and the edit's number."""
    segments = view.error_segments
    with st.container(key="rs-errors"):
        st.markdown("**The errors of the draft**")
        if not segments:
            st.caption("You made no edit to the draft: there is nothing to mark.")
            return
        st.caption(f"You made {len(segments)} edit{'s' if len(segments) != 1 else ''}. For each, say what the draft "
                   "got wrong, or that it is not an error, and whether the error is clinically significant.")
        for segment in segments:
            n = segment["segment"]
            with st.container(border=True, key=f"rs-edit-{n}"):
                st.markdown(f"**Edit {n} of {len(segments)}**")
                if segment["context"]:
                    _plain(f"In: {segment['context']}")
                _plain(f"Draft: {segment['draft'] or '(nothing)'}")
                _plain(f"Yours: {segment['final'] or '(deleted)'}")
                st.radio(f"Edit {n}: what the draft got wrong", options=list(ANNOTATION_CHOICES),
                         format_func=ANNOTATION_CHOICES.get, index=None, key=f"error-{view.case_ref}-{n}-category")
                st.radio(f"Edit {n}: clinical significance (of an error)", options=list(SIGNIFICANCE_CHOICES),
                         format_func=lambda v: SIGNIFICANCE_LABELS[SIGNIFICANCE_CHOICES[v]], index=None,
                         horizontal=True, key=f"error-{view.case_ref}-{n}-significance")


def _collected_marks(view: reading_service.CaseView) -> dict[int, dict]:
    """The marks as the page holds them (a widget's value survives every rerun), for the service to judge."""
    marks = {}
    for segment in view.error_segments:
        n = segment["segment"]
        category = st.session_state.get(f"error-{view.case_ref}-{n}-category")
        significance = st.session_state.get(f"error-{view.case_ref}-{n}-significance")
        marks[n] = {"category": category, "significant": SIGNIFICANCE_CHOICES.get(significance)}
    return marks


def _after_submit(db, actor, view: reading_service.CaseView, state: dict) -> None:
    """Submitted: the text is locked and the (untimed) questions appear; Save and next goes on in one step."""
    if view.task in ("write", "edit"):
        st.markdown("**Your submitted findings** (locked)")
        _plain(view.editor_text)
    elif view.task == "compare":
        _report_pair(view)
    elif view.task == "rate_reasoning":
        _reasoning(view)
    elif view.task == "detect":
        if view.detection["shows_draft"]:
            _ai_draft(view)
        _marks_summary(view)
    st.info("Submitted; the clock has stopped. Please answer the questions below.")
    with st.container(key="rs-answers"), st.form(f"answers-{view.case_ref}"):
        if view.annotate_errors:
            _edit_marks(view)
        for question in view.questions:
            if question.kind == "vas":
                _scale_field(view, question)
                continue
            labels = {o["value"]: o["label"] for o in question.options}
            st.radio(
                question.label + ("" if question.required else " (optional)"),
                options=list(labels), format_func=labels.get, index=None,
                horizontal=question.kind == "likert", key=f"answer-{view.case_ref}-{question.key}",
            )
        with st.container(horizontal=True):
            # Ctrl+Enter presses it from anywhere on the page, a chosen answer included (the viewer's key handler:
            # Streamlit's own shortcuts do not fire while a radio button has the focus). The answers are saved by
            # the press's callback, before the page runs: that run then draws the next case at once, instead of
            # drawing this case again only to save and start over (a whole page run less per case: P8).
            st.form_submit_button(SAVE_AND_NEXT, type="primary", help="Ctrl+Enter",
                                  on_click=_answers_pressed, args=(db, actor, view, state, False))
            st.form_submit_button(SAVE_AND_PAUSE, on_click=_answers_pressed, args=(db, actor, view, state, True))
    problem = state.get("answers_problem")
    if problem is not None and problem["case_ref"] == view.case_ref:
        st.error(problem["text"])


def _answers_pressed(db, actor, view: reading_service.CaseView, state: dict, pause: bool) -> None:
    """Save and next (or Save, then the worklist) pressed: the form's answers (and error marks) are saved."""
    state["answers_problem"] = None
    answers = {}
    for question in view.questions:
        value = st.session_state.get(f"answer-{view.case_ref}-{question.key}")
        if value is not None:
            answers[question.key] = value
    try:
        reading_service.save_answers(db, actor, view.case_ref, answers,
                                     _collected_marks(view) if view.annotate_errors else None)
    except AlreadySubmitted:
        state["notice"] = {"text": "The answers of this case were already saved (in another tab); they stand."}
        return
    except (InvalidInput, DatabaseUnavailable) as error:
        # Said under the form, which keeps every answer chosen (a fault raised from the callback would end the run
        # before the form is drawn, and Streamlit would then forget the answers' widgets).
        state["answers_problem"] = {"case_ref": view.case_ref, "text": str(error)}
        return
    if pause:
        state["to_worklist"] = True  # the page run that follows goes to the worklist (no page switch in a callback)
        return
    state["just_done"] = view.case_ref
