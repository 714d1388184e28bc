"""Prompts are rendered exactly as CheXOne was trained, and templates are versioned."""

import base64

import pytest

from model_runtime.backends import build_request
from model_runtime.prompts import (
    REASONING_SUFFIX,
    SYSTEM_PROMPT,
    PromptTemplate,
    available_templates,
    get_template,
    register_template,
    user_text,
)


def test_system_prompt_and_reasoning_suffix_are_verbatim():
    assert SYSTEM_PROMPT == "You are a helpful assistant."
    assert REASONING_SUFFIX == " Please reason step by step, and put your final answer within \\boxed{}."


def test_findings_without_indication_reasoning_and_instruction():
    text, name = user_text(task="findings", mode="reasoning")
    assert name == "findings-v1"
    assert text == "Write an example findings section for the CXR. Please reason step by step, and put your final answer within \\boxed{}."
    text, _ = user_text(task="findings", mode="instruction")
    assert text == "Write an example findings section for the CXR."


def test_findings_with_indication_uses_the_indication_template():
    text, name = user_text(task="findings", mode="instruction", indication="  Fever, cough. ")
    assert name == "findings-indication-v1"
    assert text == "Indication: Fever, cough.\nWrite an example findings section for the CXR."


def test_explicit_template_without_indication_is_refused():
    with pytest.raises(ValueError, match="needs an indication"):
        user_text(task="findings", mode="instruction", template="findings-indication-v1")


def test_template_of_another_task_is_refused():
    with pytest.raises(ValueError, match="is for task"):
        user_text(task="findings", mode="instruction", template="mc-v1")


def test_multiple_choice_lists_lettered_options_in_order():
    text, name = user_text(task="mc", mode="reasoning", mc_question="Which side is the effusion on?",
                           mc_options={"B": "Left", "A": "Right", "C": "Both"})
    assert name == "mc-v1"
    assert text == ("Which side is the effusion on?\nA. Right\nB. Left\nC. Both" + REASONING_SUFFIX)


def test_progression_names_current_and_prior_image_counts():
    text, name = user_text(task="progression", mode="instruction", n_current=2, n_prior=1)
    assert name == "progression-v1"
    assert "first 2 image(s) are the current CXR" in text and "last 1 image(s) are the prior" in text


def test_registered_wording_cannot_change_under_the_same_name():
    with pytest.raises(ValueError, match="new version"):
        register_template(PromptTemplate("findings-v1", 1, "findings", "Describe the CXR."))
    assert get_template("findings-v1").text == "Write an example findings section for the CXR."
    assert {"findings-v1", "findings-indication-v1"} <= set(available_templates("findings"))
    with pytest.raises(ValueError, match="unknown prompt template"):
        get_template("nope-v9")


def test_messages_hold_system_then_images_as_png_data_urls_then_text(frontal_png):
    request = build_request(case_id="c1", task="progression", mode="reasoning",
                            images=[frontal_png, frontal_png], prior_images=[frontal_png], indication="Dyspnea")
    messages = request.messages()
    assert messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    content = messages[1]["content"]
    assert messages[1]["role"] == "user"
    assert [part["type"] for part in content] == ["image_url", "image_url", "image_url", "text"]
    url = content[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert content[-1]["text"] == request.prompt_text
    assert content[-1]["text"].startswith("Indication: Dyspnea\n") and content[-1]["text"].endswith(REASONING_SUFFIX)
