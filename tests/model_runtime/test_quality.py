"""One model output's problems: cut by the token limit, not parsed, empty."""

import pytest

from model_runtime import parse_output
from model_runtime.quality import excerpt_end, output_problems

OPTIONS = {"A": "Right upper lobe", "B": "Right lower lobe"}


def problems_of(raw, *, task="findings", mode="reasoning", finish_reason="stop"):
    parsed = parse_output(raw)
    return [(p.code, p.detail) for p in output_problems(
        task=task, mode=mode, parse_status=parsed.status, finish_reason=finish_reason, report=parsed.report,
        answer=parsed.answer, options=OPTIONS if task == "mc" else None)]


def test_a_draft_cut_inside_its_box_names_where_it_ends():
    [(code, detail)] = problems_of("Dense right base.\n\\boxed{Right lower lobe opacity concerning for pneum",
                                   finish_reason="length")
    assert code == "cut"
    assert detail == ("stopped at the token limit (finish_reason = length); its \\boxed{} answer is not closed; "
                      "ends 'Right lower lobe opacity concerning for pneum'")


def test_a_closed_box_at_the_token_limit_is_still_cut():
    assert [c for c, _ in problems_of("Trace.\n\\boxed{No acute findings.}", finish_reason="length")] == ["cut"]


@pytest.mark.parametrize("raw, mode, task, expected", [
    ("Trace.\n\\boxed{No acute findings.}", "reasoning", "findings", []),
    ("No acute findings.", "instruction", "findings", []),  # instruction mode: the whole text is the answer
    ("No acute findings, and no box.", "reasoning", "findings", ["unparsed"]),
    ("Trace.\n\\boxed{}", "reasoning", "findings", ["empty"]),
    ("It projects over the base.\n\\boxed{B}", "reasoning", "mc", []),
    ("It projects over the base.\n\\boxed{the left apex}", "reasoning", "mc", ["unparsed"]),
])
def test_parsed_and_unparsed_outputs(raw, mode, task, expected):
    assert [c for c, _ in problems_of(raw, mode=mode, task=task)] == expected


def test_excerpt_keeps_the_end_on_one_line():
    assert excerpt_end("a\nb  c", 10) == "a b c"
    assert excerpt_end("x" * 60 + " end", 8) == "...xxxx end"
