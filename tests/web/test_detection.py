"""AppTest of the detect task's page (issue #15): each finding a row of two choices, saved as the reader marks,
the AI's labels on an aided case only, a disagreeing mark refused with its finding named, and the marks locked and
shown after SUBMIT."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cohorts.findings import CHEXPERT_FINDINGS
from study_app.services import reading
from study_app.store.models import FindingMark
from tests.case_refs import assignment_of
from tests.web.test_pages import start

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _case(study, actor, arm_key):
    return next(i for i in reading.worklist(study.db, actor).items if i.arm_key == arm_key and i.status == "ready")


def _marks(study, case_ref):
    with study.db.read() as session:
        assignment = assignment_of(session, case_ref)
        return {m.finding: (m.present, m.confidence) for m in
                session.scalars(select(FindingMark).where(FindingMark.assignment_id == assignment.id))}


def _radios(at, case_ref):
    present = {r.key: r for r in at.radio if r.key.endswith("-present")}
    confidence = {r.key: r for r in at.radio if r.key.endswith("-confidence")}
    return ([present[f"mark-{case_ref}-{n}-present"] for n in range(1, 15)],
            [confidence[f"mark-{case_ref}-{n}-confidence"] for n in range(1, 15)])


def test_every_finding_is_a_row_of_two_choices_saved_as_marked(detection_study, open_page):
    token, actor = detection_study.sign_in("att1")
    item = _case(detection_study, actor, "attending_unaided")
    at = start(open_page(token, case=item.case_ref))
    assert not at.exception
    present, confidence = _radios(at, item.case_ref)
    assert [r.label for r in present] == [f"{f}: present?" for f in CHEXPERT_FINDINGS]
    assert present[0].options == ["Absent", "Present"] and confidence[0].options == ["1", "2", "3", "4", "5"]
    assert all(r.value is None for r in present + confidence), "nothing is chosen for the reader"
    assert not [m.value for m in at.markdown if "AI:" in m.value], "an unaided read shows no AI label"
    at = present[2].set_value("present").run()
    assert _marks(detection_study, item.case_ref) == {"Cardiomegaly": (True, None)}
    at = _radios(at, item.case_ref)[1][2].set_value(4).run()
    assert _marks(detection_study, item.case_ref) == {"Cardiomegaly": (True, 4)}
    # A reload (a new tab) shows the saved marks.
    again = open_page(token, case=item.case_ref)
    present, confidence = _radios(again, item.case_ref)
    assert (present[2].value, confidence[2].value) == ("present", 4)


def test_a_disagreeing_mark_is_not_saved_and_its_row_says_why(detection_study, open_page):
    token, actor = detection_study.sign_in("att2")
    item = _case(detection_study, actor, "attending_unaided")
    at = start(open_page(token, case=item.case_ref))
    at = _radios(at, item.case_ref)[0][5].set_value("absent").run()
    at = _radios(at, item.case_ref)[1][5].set_value(5).run()
    assert not at.exception
    assert [w.value for w in at.warning] == [
        "Not saved: Edema: marked absent with confidence 5 of 5, which says it is more likely present; change one "
        "of the two"]
    assert _marks(detection_study, item.case_ref) == {"Edema": (False, None)}
    at = _radios(at, item.case_ref)[0][5].set_value("present").run()
    assert not at.warning
    assert _marks(detection_study, item.case_ref) == {"Edema": (True, 5)}


def test_an_aided_case_shows_the_ai_label_of_every_finding(detection_study, open_page):
    token, actor = detection_study.sign_in("att3")
    item = _case(detection_study, actor, "attending_aided")
    at = start(open_page(token, case=item.case_ref))
    labels = reading.case_view(detection_study.db, actor, item.case_ref).detection["ai_labels"]
    shown = [m.value for m in at.markdown if "· AI:" in m.value]
    assert len(shown) == 14
    first = labels["No Finding"]
    assert shown[0] == (f"**No Finding** · AI: {'present' if first['present'] else 'absent'} "
                        f"({first['probability']:.2f})")


def test_after_submit_the_marks_are_locked_and_listed_with_the_question(detection_study, open_page):
    token, actor = detection_study.sign_in("att4")
    item = _case(detection_study, actor, "attending_aided")
    at = start(open_page(token, case=item.case_ref))
    reading.mark_image_shown(detection_study.db, actor, item.case_ref)
    for finding in CHEXPERT_FINDINGS:
        reading.mark_finding(detection_study.db, actor, item.case_ref, finding, present=finding == "Edema",
                             confidence=5 if finding == "Edema" else 1)
    reading.submit(detection_study.db, actor, item.case_ref)
    at = at.run()
    assert not at.exception
    listed = next(t.value for t in at.text if "confidence" in t.value).splitlines()
    assert listed[0] == "No Finding: absent, confidence 1 of 5" and "Edema: present, confidence 5 of 5" in listed
    assert len(listed) == 14
    assert not [r for r in at.radio if r.key.startswith("mark-")], "the marks are no longer editable"
    assert [r.label for r in at.radio] == ["The AI's labels helped me read this case."]
