"""Build CheXOne prompts (system text, versioned user-text templates, OpenAI chat messages) as the model was trained."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Iterable, Mapping

SYSTEM_PROMPT = "You are a helpful assistant."
# The leading space matters: CheXOne saw the suffix glued to the end of the user text.
REASONING_SUFFIX = " Please reason step by step, and put your final answer within \\boxed{}."

# What a prompt asks the model for (a request's ``task``, in the CheXOne paper's word): not an arm's task.
PROMPT_KINDS = ("findings", "progression", "mc")
MODES = ("reasoning", "instruction")


@dataclass(frozen=True)
class PromptTemplate:
    """A named, versioned user-text template for one task.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"findings-indication-v1"``. The version is part of the
        name so a stored draft says exactly which wording produced it.
    version : int
        Version number; a changed wording is a new template, never an edit.
    task : str
        ``"findings"``, ``"progression"`` or ``"mc"``.
    text : str
        ``str.format`` template. Fields: ``{indication}`` (findings/progression),
        ``{question}`` and ``{options}`` (mc).
    description : str
        Why this wording exists and where it comes from.
    """

    name: str
    version: int
    task: str
    text: str
    description: str = ""

    def render(self, **fields: str) -> str:
        """Fill the template; missing fields raise ``KeyError`` naming the field."""
        return self.text.format(**fields)


_TEMPLATES: dict[str, PromptTemplate] = {}


def register_template(template: PromptTemplate) -> PromptTemplate:
    """Add a template to the registry.

    Parameters
    ----------
    template : PromptTemplate
        The template. Its ``name`` must be new: a registered wording is frozen so
        that earlier drafts keep meaning what they meant.

    Returns
    -------
    PromptTemplate
        The same template.
    """
    if template.task not in PROMPT_KINDS:
        raise ValueError(f"template {template.name!r}: unknown task {template.task!r}; expected one of {PROMPT_KINDS}")
    existing = _TEMPLATES.get(template.name)
    if existing is not None and existing != template:
        raise ValueError(f"template {template.name!r} is already registered with a different wording; use a new version")
    _TEMPLATES[template.name] = template
    return template


def get_template(name: str) -> PromptTemplate:
    """Return a registered template by name (``ValueError`` listing the known names)."""
    try:
        return _TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt template {name!r}; known: {sorted(_TEMPLATES)}") from None


def available_templates(task: str | None = None) -> list[str]:
    """Names of registered templates, optionally for one task only."""
    return sorted(n for n, t in _TEMPLATES.items() if task is None or t.task == task)


FINDINGS_V1 = register_template(PromptTemplate(
    name="findings-v1", version=1, task="findings",
    text="Write an example findings section for the CXR.",
    description="CheXOne's findings-generation instruction, verbatim; used when the case has no indication.",
))
FINDINGS_INDICATION_V1 = register_template(PromptTemplate(
    name="findings-indication-v1", version=1, task="findings",
    text="Indication: {indication}\nWrite an example findings section for the CXR.",
    description=(
        "The trained instruction preceded by the exam indication on its own line. Readers "
        "see the indication, so the draft should be able to answer it; the instruction "
        "sentence stays verbatim so the model stays in distribution."
    ),
))
PROGRESSION_V1 = register_template(PromptTemplate(
    name="progression-v1", version=1, task="progression",
    text=(
        "The first {n_current} image(s) are the current CXR and the last {n_prior} image(s) "
        "are the prior CXR of the same patient.\n"
        "Write an example findings section for the current CXR, describing interval change "
        "compared with the prior."
    ),
    description=(
        "Project wording (not taken from CheXOne's training data): current images come first, "
        "prior images last, and the text says so; the trained findings sentence is kept."
    ),
))
PROGRESSION_INDICATION_V1 = register_template(PromptTemplate(
    name="progression-indication-v1", version=1, task="progression",
    text="Indication: {indication}\n" + PROGRESSION_V1.text,
    description="progression-v1 preceded by the exam indication, as in findings-indication-v1.",
))
MC_V1 = register_template(PromptTemplate(
    name="mc-v1", version=1, task="mc",
    text="{question}\n{options}",
    description="Question, then one lettered option per line (``A. ...``), as in CheXOne's VQA training items.",
))


def default_template(task: str, *, has_indication: bool) -> str:
    """Name of the template used when the caller does not choose one.

    Findings and progression take the indication variant when the case has one.
    """
    if task == "findings":
        return "findings-indication-v1" if has_indication else "findings-v1"
    if task == "progression":
        return "progression-indication-v1" if has_indication else "progression-v1"
    if task == "mc":
        return "mc-v1"
    raise ValueError(f"unknown task {task!r}; expected one of {PROMPT_KINDS}")


def format_options(options: Mapping[str, str]) -> str:
    """Lettered options, one per line, in letter order: ``A. Pneumothorax``."""
    if not options:
        raise ValueError("a multiple-choice question needs at least one option")
    return "\n".join(f"{letter}. {text}" for letter, text in sorted(options.items()))


def user_text(
    *,
    task: str,
    mode: str,
    template: str | None = None,
    indication: str = "",
    mc_question: str | None = None,
    mc_options: Mapping[str, str] | None = None,
    n_current: int = 1,
    n_prior: int = 0,
) -> tuple[str, str]:
    """Render the user text of a request.

    Parameters
    ----------
    task : str
        ``"findings"``, ``"progression"`` or ``"mc"``.
    mode : str
        ``"reasoning"`` appends :data:`REASONING_SUFFIX`; ``"instruction"`` does not.
    template : str, optional
        Template name; default from :func:`default_template`.
    indication : str
        Exam indication (may be empty).
    mc_question, mc_options : optional
        The question and its lettered options (task ``"mc"`` only).
    n_current, n_prior : int
        Numbers of current and prior images (progression wording).

    Returns
    -------
    tuple of (str, str)
        The rendered text and the template name used.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    indication = (indication or "").strip()
    name = template or default_template(task, has_indication=bool(indication))
    tpl = get_template(name)
    if tpl.task != task:
        raise ValueError(f"template {name!r} is for task {tpl.task!r}, not {task!r}")
    if "{indication}" in tpl.text and not indication:
        raise ValueError(f"template {name!r} needs an indication and the case has none")
    if task == "mc":
        if not mc_question or not mc_options:
            raise ValueError("task 'mc' needs mc_question and mc_options")
        text = tpl.render(question=mc_question.strip(), options=format_options(mc_options))
    else:
        text = tpl.render(indication=indication, n_current=n_current, n_prior=n_prior)
    if mode == "reasoning":
        text += REASONING_SUFFIX
    return text, name


def image_part(png: bytes) -> dict:
    """One OpenAI ``image_url`` content part holding a base64 PNG data URL."""
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}}


def chat_messages(text: str, images: Iterable[bytes]) -> list[dict]:
    """OpenAI chat messages: the system prompt, then one user turn with the images first and the text last."""
    content = [image_part(png) for png in images]
    content.append({"type": "text", "text": text})
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": content},
    ]
