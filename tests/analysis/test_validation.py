"""Malformed exports are refused before any number is computed, naming table, row and column; the
one documented exclusion (zero durations) is counted."""

import numpy as np
import pytest

from analysis import AnalysisInputError, load_tables, tables_from_frames
from analysis.simulate import simulate_study, write_export


def frames_of(tables):
    return {n: getattr(tables, n).copy() for n in ("assignments", "answers", "drafts", "cases", "readers")}


@pytest.fixture(scope="module")
def study():
    return simulate_study(n_readers=6, n_cases=30, reads_per_reader=20, seed=5)


def first(frame, mask):
    """Position (0-based) of the first row matching mask: the message names position + 1."""
    return int(np.flatnonzero(mask.to_numpy())[0])


def test_likert_value_off_the_scale_is_refused_with_its_row(study):
    frames = frames_of(study)
    ans = frames["answers"]
    i = first(ans, ans["question_key"].eq("indication_applicability"))
    ans.loc[ans.index[i], "value"] = "50"
    with pytest.raises(AnalysisInputError, match=rf"answers row {i + 1} .*value '50' for 'indication_applicability' "
                                                 r"is outside the question's scale"):
        tables_from_frames(frames, study.meta)


def test_likert_scores_written_as_floats_are_the_same_score(study):
    frames = frames_of(study)
    ans = frames["answers"]
    i = first(ans, ans["question_key"].eq("writing_efficiency") & ans["value"].eq("5"))
    ans.loc[ans.index[i], "value"] = "5.0"
    loaded = tables_from_frames(frames, study.meta)
    assert loaded.answers["value"].iloc[i] == "5"


def test_choice_answer_outside_the_designs_options_is_refused(study):
    frames = frames_of(study)
    ans = frames["answers"]
    i = first(ans, ans["question_key"].eq("edit_reason"))
    ans.loc[ans.index[i], "value"] = "typo"
    with pytest.raises(AnalysisInputError, match=rf"answers row {i + 1} .*'typo' for 'edit_reason'.*options"):
        tables_from_frames(frames, study.meta)
    # The design's own questions (carried by export_meta.json) take precedence over the defaults.
    meta = {**study.meta, "questions": {"edit_reason": {"kind": "choice", "values": ["none", "content", "style",
                                                                                      "both", "typo"]}}}
    tables_from_frames(frames, meta)


def test_preferred_source_contradicting_the_ab_letter_is_refused(study):
    frames = frames_of(study)
    a = frames["assignments"]
    mask = a["preferred"].eq("A") & a["a_source"].eq("model")
    i = first(a, mask)
    a.loc[a.index[i], "preferred_source"] = "reader"
    with pytest.raises(AnalysisInputError, match=rf"assignments row {i + 1} \(assignment_id {a['assignment_id'].iloc[i]}\)"
                                                 r": preferred 'A' .* means preferred_source 'model', but the row "
                                                 r"says 'reader'"):
        tables_from_frames(frames, study.meta)


def test_preference_answer_disagreeing_with_the_assignment_is_refused(study):
    frames = frames_of(study)
    ans = frames["answers"]
    i = first(ans, ans["question_key"].eq("preference") & ans["value"].eq("A"))
    ans.loc[ans.index[i], "value"] = "B"
    with pytest.raises(AnalysisInputError, match="answered preference 'B' but assignments.preferred is 'A'"):
        tables_from_frames(frames, study.meta)


def test_reader_role_disagreeing_with_readers_is_refused(study):
    frames = frames_of(study)
    a = frames["assignments"]
    i = first(a, a["reader_role"].eq("resident"))
    a.loc[a.index[i], "reader_role"] = "attending"
    with pytest.raises(AnalysisInputError, match=rf"assignments row {i + 1} .*reader_role 'attending' disagrees with "
                                                 r"readers.role 'resident'"):
        tables_from_frames(frames, study.meta)


def test_unknown_reader_is_refused(study):
    frames = frames_of(study)
    frames["readers"] = frames["readers"].iloc[1:]
    with pytest.raises(AnalysisInputError, match="reader_id is not in readers"):
        tables_from_frames(frames, study.meta)


@pytest.mark.parametrize("column", ["reader_role", "assignment_id", "reader_id", "case_id", "task", "status"])
def test_empty_key_is_refused_with_its_row(study, column):
    # A NaN role used to drop reads from every by-role statistic while n_reads still counted them.
    frames = frames_of(study)
    a = frames["assignments"]
    a[column] = a[column].astype(object)
    a.loc[a.index[7], column] = np.nan
    with pytest.raises(AnalysisInputError, match=rf"assignments row 8\b.*column {column} is empty"):
        tables_from_frames(frames, study.meta)


def test_empty_answer_key_is_refused(study):
    frames = frames_of(study)
    frames["answers"].loc[frames["answers"].index[3], "question_key"] = None
    with pytest.raises(AnalysisInputError, match="answers row 4 .*column question_key is empty"):
        tables_from_frames(frames, study.meta)


def test_edit_without_draft_source_is_refused(study):
    # It used to become a silent "edit_unknown" condition.
    frames = frames_of(study)
    a = frames["assignments"]
    i = first(a, a["task"].eq("edit") & a["status"].eq("completed"))
    a.loc[a.index[i], "draft_source"] = None
    with pytest.raises(AnalysisInputError, match=rf"assignments row {i + 1} .*edit without draft_source"):
        tables_from_frames(frames, study.meta)


def test_non_finite_and_negative_durations_are_refused(study):
    for bad, message in ((np.inf, "not finite"), (-3.0, "negative")):
        frames = frames_of(study)
        a = frames["assignments"]
        i = first(a, a["duration_s"].notna())
        a.loc[a.index[i], "duration_s"] = bad
        with pytest.raises(AnalysisInputError, match=rf"assignments row {i + 1} .*duration_s is {message}"):
            tables_from_frames(frames, study.meta)


def test_zero_duration_is_an_exclusion_listed_by_assignment(study):
    frames = frames_of(study)
    a = frames["assignments"]
    i = first(a, a["status"].eq("completed") & a["duration_s"].notna())
    a.loc[a.index[i], "duration_s"] = 0.0
    tables = tables_from_frames(frames, study.meta)
    assert tables.exclusions["zero_duration"] == [a["assignment_id"].iloc[i]]


def test_csv_row_number_in_the_message_is_the_csv_data_row(tmp_path, study):
    write_export(study, tmp_path)
    path = tmp_path / "answers.csv"
    lines = path.read_text().splitlines()
    # Line 11 of the file = data row 10 (the header is line 1).
    header = lines[0].split(",")
    fields = lines[10].split(",")
    fields[header.index("value")] = "99"
    fields[header.index("question_key")] = "factuality"
    lines[10] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AnalysisInputError, match=r"answers row 10 .*'99' for 'factuality'"):
        load_tables(tmp_path)


def test_comparison_of_two_model_drafts_is_refused(study):
    frames = frames_of(study)
    a = frames["assignments"]
    i = first(a, a["task"].eq("compare"))
    a.loc[a.index[i], "b_source"] = a["a_source"].iloc[i]
    with pytest.raises(AnalysisInputError, match=rf"assignments row {i + 1} .*a_source == b_source"):
        tables_from_frames(frames, study.meta)


def test_unknown_status_is_refused(study):
    frames = frames_of(study)
    frames["assignments"].loc[frames["assignments"].index[0], "status"] = "done"
    with pytest.raises(AnalysisInputError, match="status has value.*done"):
        tables_from_frames(frames, study.meta)
