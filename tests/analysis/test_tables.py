"""Loading and validating export folders: good folders load, bad input is refused with a clear message."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis import AnalysisInputError, load_tables, run_analysis, tables_from_frames
from analysis.simulate import simulate_study, write_export


def frames_of(tables):
    return {n: getattr(tables, n) for n in ("assignments", "answers", "drafts", "cases", "readers")}


@pytest.fixture(scope="module")
def small_study():
    return simulate_study(n_readers=6, n_cases=30, reads_per_reader=20, seed=5)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_folder_round_trip(tmp_path, small_study, fmt):
    write_export(small_study, tmp_path, fmt=fmt)
    loaded = load_tables(tmp_path)
    a, b = loaded.assignments, small_study.assignments
    assert len(a) == len(b) and loaded.meta["study_id"] == small_study.meta["study_id"]
    assert np.allclose(a["duration_s"].to_numpy(), b["duration_s"].to_numpy(), equal_nan=True)
    # Missing is empty, never a sentinel: empty cells come back as missing values.
    assert a["draft_author_id"].isna().sum() == b["draft_author_id"].isna().sum()
    assert loaded.events is None


def test_missing_meta_is_refused(tmp_path, small_study):
    write_export(small_study, tmp_path)
    (tmp_path / "export_meta.json").unlink()
    with pytest.raises(AnalysisInputError, match="export_meta.json"):
        load_tables(tmp_path)


def test_missing_table_is_named(tmp_path, small_study):
    write_export(small_study, tmp_path)
    (tmp_path / "answers.csv").unlink()
    with pytest.raises(AnalysisInputError, match="missing table.*answers"):
        load_tables(tmp_path)


def test_missing_column_is_named(small_study):
    frames = frames_of(small_study)
    frames["assignments"] = frames["assignments"].drop(columns=["duration_s"])
    with pytest.raises(AnalysisInputError, match="'assignments' lacks column.*duration_s"):
        tables_from_frames(frames, small_study.meta)


def test_duplicated_read_is_refused(small_study):
    frames = frames_of(small_study)
    a = frames["assignments"]
    dup = a.iloc[[0]].assign(assignment_id="another-id")
    frames["assignments"] = pd.concat([a, dup], ignore_index=True)
    with pytest.raises(AnalysisInputError, match="duplicated read: reader"):
        tables_from_frames(frames, small_study.meta)


def test_duplicated_answer_is_refused(small_study):
    frames = frames_of(small_study)
    frames["answers"] = pd.concat([frames["answers"], frames["answers"].iloc[[0]]], ignore_index=True)
    with pytest.raises(AnalysisInputError, match="duplicated answer"):
        tables_from_frames(frames, small_study.meta)


def test_sentinel_duration_is_refused(small_study):
    frames = frames_of(small_study)
    a = frames["assignments"].copy()
    a["duration_s"] = a["duration_s"].astype(object)
    a.loc[a.index[0], "duration_s"] = "-999"
    frames["assignments"] = a
    with pytest.raises(AnalysisInputError, match="sentinel"):
        tables_from_frames(frames, small_study.meta)


def test_unknown_vocabulary_is_refused(small_study):
    frames = frames_of(small_study)
    frames["assignments"] = frames["assignments"].assign(
        task=lambda d: d["task"].where(d.index != d.index[0], "dictate"))
    with pytest.raises(AnalysisInputError, match="task.*dictate"):
        tables_from_frames(frames, small_study.meta)


def test_empty_arm_is_refused_unless_study_in_progress(small_study):
    frames = frames_of(small_study)
    a = frames["assignments"].copy()
    a.loc[a["arm"] == "reasoning_review", "status"] = "pending"
    a.loc[a["arm"] == "reasoning_review", "duration_s"] = np.nan
    frames["assignments"] = a
    frames["answers"] = frames["answers"][frames["answers"]["assignment_id"].isin(a["assignment_id"])]
    tables = tables_from_frames(frames, small_study.meta)
    with pytest.raises(AnalysisInputError, match="reasoning_review"):
        run_analysis(tables, n_boot=20)
    result = run_analysis(tables, n_boot=20, require_all_arms=False)
    assert "reasoning" not in result.results or not result.results["reasoning"]


def test_no_counted_reads_is_refused(small_study):
    frames = frames_of(small_study)
    frames["assignments"] = frames["assignments"].assign(status="ready")
    with pytest.raises(AnalysisInputError, match="nothing to analyse"):
        run_analysis(tables_from_frames(frames, small_study.meta), n_boot=20)


def test_meta_json_is_plain_json(tmp_path, small_study):
    write_export(small_study, tmp_path)
    assert json.loads((tmp_path / "export_meta.json").read_text())["schema_version"] == 1
