"""Reasoning/answer split at the final box, status flags, and draft cleaning on realistic CheXOne outputs."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_runtime.parsing import clean_report_text, extract_choice, normalise_report_text, parse_output

REASONING_OUTPUT = (
    "Let me analyze the chest X-ray systematically.\n\n"
    "1. **Lungs**: No focal consolidation. The costophrenic angles are sharp.\n"
    "2. **Pleura**: No pleural effusion or pneumothorax.\n"
    "3. **Heart**: The cardiac silhouette is normal in size.\n\n"
    "**Final Answer:**\n$$\n"
    "\\boxed{\\text{The lungs are clear. No pleural effusion or pneumothorax. "
    "The cardiomediastinal silhouette is normal.}}\n$$"
)


def test_reasoning_then_box():
    parsed = parse_output(REASONING_OUTPUT)
    assert parsed.status == "ok"
    assert parsed.raw == REASONING_OUTPUT
    assert parsed.reasoning.startswith("Let me analyze")
    assert parsed.reasoning.endswith("normal in size.")
    assert "Final Answer" not in parsed.reasoning and "$$" not in parsed.reasoning
    assert parsed.report == (
        "The lungs are clear. No pleural effusion or pneumothorax. The cardiomediastinal silhouette is normal."
    )


def test_nested_braces_inside_the_box_are_kept_balanced():
    raw = "Thinking.\n\\boxed{Findings: {stable} {{small}} left effusion.} trailing note"
    parsed = parse_output(raw)
    assert parsed.status == "ok"
    assert parsed.answer == "Findings: {stable} {{small}} left effusion."
    assert parsed.report == "stable small left effusion."


def test_double_braced_box():
    parsed = parse_output("Reasoning.\n\\boxed{{Mild cardiomegaly. No edema.}}")
    assert parsed.status == "ok"
    assert parsed.answer == "Mild cardiomegaly. No edema."
    assert parsed.report == "Mild cardiomegaly. No edema."


def test_no_box_instruction_mode_whole_text_is_the_answer():
    raw = "  Findings: The lungs are clear.\nNo effusion.  "
    parsed = parse_output(raw)
    assert parsed.status == "no_box"
    assert parsed.reasoning == ""
    assert parsed.answer == raw.strip()
    assert parsed.report == "The lungs are clear.\nNo effusion."  # line breaks stay where the model put them


def test_unclosed_box_cut_by_token_limit():
    raw = "Step 1: lungs.\n**Final Answer:** \\boxed{\\text{Right lower lobe opacity, possibly"
    parsed = parse_output(raw)
    assert parsed.status == "unclosed_box"
    assert parsed.reasoning == "Step 1: lungs."
    assert parsed.report == "Right lower lobe opacity, possibly"


def test_two_boxes_take_the_last_and_say_so():
    raw = "Maybe \\boxed{A}. On reflection the effusion is left-sided.\nFinal Answer: \\boxed{B}"
    parsed = parse_output(raw)
    assert parsed.status == "multiple_boxes"
    assert parsed.answer == "B"
    assert parsed.reasoning.startswith("Maybe \\boxed{A}.") and parsed.reasoning.endswith("left-sided.")


def test_box_with_space_before_brace_and_inline_math():
    parsed = parse_output("So: $\\boxed {C}$")
    assert (parsed.status, parsed.answer, parsed.reasoning) == ("ok", "C", "So")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**Final Answer:** The lungs are clear.", "The lungs are clear."),
        ("Final Answer: No acute process.", "No acute process."),
        ("## Findings\n- Lungs: clear.\n- *Heart*: normal size.", "Lungs: clear.\nHeart: normal size."),
        ("FINDINGS:\n\nSmall left effusion.\n\nIMPRESSION: stable.", "Small left effusion.\n\nIMPRESSION: stable."),
        ("$$\\text{Mild \\textbf{cardiomegaly}.}$$", "Mild cardiomegaly."),
        ("Trace   effusion,\tstable.\r\n", "Trace   effusion,\tstable."),
        ("Compared to ___, no change. __Stable__ 50\\% smaller.", "Compared to ___, no change. Stable 50% smaller."),
        ("", ""),
    ],
)
def test_clean_report_text_removes_formatting_tells(text, expected):
    assert clean_report_text(text) == expected


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("Final Answer: \\boxed{Cardiomegaly}", "Final Answer: \\boxed{Cardiomegaly}"),  # never parsed
        ("Heart normal.\nLungs clear.", "Heart normal.\nLungs clear."),  # single line breaks kept
        ("\tIndented.\n  - bullet  \t", "Indented.\n  - bullet"),  # indents kept, ends trimmed
        ("A.\r\n\r\n\r\n\r\nB.\r", "A.\n\nB."),  # line endings and blank-line runs normalised
        ("**bold** $x$ {braces}", "**bold** $x$ {braces}"),
        ("Cafe\u0301", "Caf\u00e9"),  # Unicode NFC
        ("   \n\n  ", ""),
    ],
)
def test_a_readers_report_reaches_the_next_reader_as_written(written, shown):
    assert normalise_report_text(written) == shown


# Text with none of the model's markup: letters, digits, punctuation, spaces, tabs and line breaks.
MODEL_MARKUP = re.compile(r"(?im)^\s*(?:[-*+]|\d{1,2}[.)])\s|^\s*findings|^\s*-{3,}\s*$|final\s+answer")
PLAIN = st.text(alphabet=st.sampled_from(list("abcXYZ019 .,;()'%-\t\n\r")), max_size=120).filter(
    lambda t: not MODEL_MARKUP.search(t.replace("\r\n", "\n").replace("\r", "\n")))


@settings(max_examples=300, deadline=None)
@given(PLAIN)
def test_plain_text_is_shown_alike_from_a_model_and_from_a_reader(text):
    from_reader = normalise_report_text(text)
    from_model = normalise_report_text(parse_output(text).report)  # instruction mode: the whole output
    assert from_model == from_reader
    assert normalise_report_text(from_reader) == from_reader  # idempotent: storing twice changes nothing


OPTIONS = {"A": "Right pleural effusion", "B": "Left pleural effusion", "C": "Pneumothorax", "D": "Normal"}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("B", "B"), ("(B)", "B"), ("B.", "B"), ("b) Left pleural effusion", "B"), ("C: Pneumothorax", "C"),
        ("\\text{D}", "D"), ("Left pleural effusion", "B"), ("The answer is A", "A"), ("Option D", "D"),
        ("It is most likely a pneumothorax", "C"), ("A small effusion", None), ("E", None), ("", None),
        ("Right pleural effusion or left pleural effusion", None),
    ],
)
def test_extract_choice(answer, expected):
    assert extract_choice(answer, OPTIONS) == expected
