"""Normalized-entropy self-consistency, checked against hand-computed values."""

import math

import pytest

from model_runtime.consistency import consistency_score

LETTERS = ["A", "B", "C", "D"]


def test_all_agree_is_one_and_uniform_is_zero():
    assert consistency_score(["B"] * 8, LETTERS) == 1.0
    assert consistency_score(["A", "B", "C", "D"] * 2, LETTERS) == 0.0


def test_half_and_half_over_four_options():
    # H = log 2, normalised by log 4 -> 1 - 1/2
    assert consistency_score(["A", "A", "B", "B"], LETTERS) == pytest.approx(0.5)


def test_three_to_one_over_four_options():
    p = [0.75, 0.25]
    expected = 1 - (-sum(x * math.log(x) for x in p)) / math.log(4)  # 0.5944
    assert consistency_score(["C", "C", "C", "A"], LETTERS) == pytest.approx(expected)
    assert expected == pytest.approx(0.59436, abs=1e-5)


def test_binary_options_split_evenly_is_zero():
    assert consistency_score(["yes", "no"], ["yes", "no"]) == 0.0


def test_unreadable_answers_are_dropped_and_all_unreadable_is_nan():
    assert consistency_score(["A", None, "A", "Z"], LETTERS) == 1.0
    assert math.isnan(consistency_score([None, None], LETTERS))


def test_needs_two_options():
    with pytest.raises(ValueError, match="at least 2"):
        consistency_score(["A"], ["A"])
