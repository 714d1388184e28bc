"""The drafting contract every backend implements: sampling settings, requests, results, the Backend protocol and its registry."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from model_runtime.parsing import parse_output
from model_runtime.preprocess import CHEXONE_MAX_PIXELS, MIN_PIXELS, prepare_image
from model_runtime.prompts import MODES, SYSTEM_PROMPT, PROMPT_KINDS, chat_messages, user_text

DEFAULT_MODEL_ID = "StanfordAIMI/CheXOne"
# The revision used when none is given: the repository's main branch, which is NOT a pin (is_pinned_revision
# says so, and every command that uses it prints unpinned_revision_warning). A study passes the 40-hex commit
# of huggingface.co/StanfordAIMI/CheXOne it ran (no network here to look it up).
DEFAULT_MODEL_REVISION = "main"
_COMMIT = re.compile(r"[0-9a-f]{40}")


def is_pinned_revision(revision: str | None) -> bool:
    """True when ``revision`` is a full 40-hex commit hash, i.e. names one set of weights for good.

    A branch or tag (``main``, ``v1``) can move, so drafts recorded under it cannot be traced to the
    weights that wrote them; callers warn before a batch (see docs/model-serving.md).

    Examples
    --------
    >>> is_pinned_revision("main"), is_pinned_revision("0123456789abcdef0123456789abcdef01234567")
    (False, True)
    """
    return bool(revision) and _COMMIT.fullmatch(revision) is not None


def unpinned_revision_warning(revision: str | None) -> str | None:
    """The warning to show before drafting under ``revision``, or None when it is a pinned commit."""
    if is_pinned_revision(revision):
        return None
    return (f"model revision '{revision}' is not a commit hash, so the drafts cannot be traced to one set of "
            "weights; give the 40-hex commit the server was started with")


class DraftingError(RuntimeError):
    """A draft could not be generated.

    Attributes
    ----------
    transient : bool
        True when the cause may go away by itself (connection, timeout, 429, 5xx).
    attempts : int
        How many attempts were made.
    """

    def __init__(self, message: str, *, transient: bool = False, attempts: int = 1):
        super().__init__(message)
        self.transient = transient
        self.attempts = attempts


class BackendUnavailable(DraftingError):
    """The backend cannot run: server not ready before the deadline, model not served, package missing."""


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings, always sent explicitly so a server default never decides a draft.

    Attributes
    ----------
    temperature : float
        0 = greedy (the study default: every reader sees one reproducible draft).
    top_p : float
    top_k : int
        -1 = disabled (vLLM convention).
    repetition_penalty : float
    max_tokens : int
        Generation cap; a cut output is recorded with ``finish_reason="length"``.
    seed : int
        Per-request seed (vLLM seeds a generator per request).
    n : int
        Number of samples per request (self-consistency uses n > 1).
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    repetition_penalty: float = 1.0
    max_tokens: int = 1024
    seed: int = 0
    n: int = 1

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k == 0 or self.top_k < -1:
            raise ValueError(f"top_k must be -1 (off) or >= 1, got {self.top_k}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")

    def to_dict(self) -> dict[str, Any]:
        """All seven parameters, by name (the stored ``sampling`` JSON)."""
        return asdict(self)


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def input_hash(
    *,
    image_hashes: Sequence[str],
    prior_image_hashes: Sequence[str] = (),
    prompt: str,
    mode: str,
    sampling: SamplingParams,
    model_id: str,
    model_revision: str | None,
) -> str:
    """Digest of everything that determines a model output.

    Parameters
    ----------
    image_hashes, prior_image_hashes : sequence of str
        :attr:`PreparedImage.sha256` of each prepared image, in prompt order.
    prompt : str
        The user text (template, indication, question and mode suffix included).
    mode : str
    sampling : SamplingParams
    model_id, model_revision : str

    Returns
    -------
    str
        Hex SHA-256 over the canonical JSON of those fields. Two requests with the
        same input hash must give the same output on a batch-invariant server.
    """
    payload = {
        "images": list(image_hashes),
        "prior_images": list(prior_image_hashes),
        "prompt": prompt,
        "system": SYSTEM_PROMPT,
        "mode": mode,
        "sampling": sampling.to_dict(),
        "model_id": model_id,
        "model_revision": model_revision,
    }
    return hashlib.sha256(_canonical_json(payload)).hexdigest()


def request_key(*, case_id: str, task: str, item_id: str | None, input_hash: str) -> str:
    """Identity of one draft request: the case, task and item plus the input hash.

    Notes
    -----
    The case id is part of the key on purpose: two cases whose images happen to be
    byte-identical still each need their own draft, while a rerun of the same case
    with the same inputs maps to the same key and is skipped (idempotent batches).
    Changing any input (template, sampling, model revision) gives a new key.
    """
    payload = {"case_id": case_id, "task": task, "item_id": item_id, "input_hash": input_hash}
    return hashlib.sha256(_canonical_json(payload)).hexdigest()[:32]


@dataclass(frozen=True)
class DraftRequest:
    """One generation request, images already prepared.

    Attributes
    ----------
    key : str
        :func:`request_key`; the idempotency key of batch runs.
    case_id : str
    task : str
        ``findings``, ``progression`` or ``mc``.
    mode : str
        ``reasoning`` or ``instruction``.
    images, prior_images : tuple of bytes
        Prepared PNGs (current study first, then prior study).
    indication : str
    mc_question : str or None
    mc_options : dict or None
        Letter -> option text.
    item_id : str or None
        Question id for ``mc`` (several questions per case).
    template : str
        Prompt template name (see :mod:`model_runtime.prompts`).
    sampling : SamplingParams
    input_hash : str
        :func:`input_hash`; stored with every result.
    """

    key: str
    case_id: str
    task: str
    mode: str
    images: tuple[bytes, ...]
    prior_images: tuple[bytes, ...] = ()
    indication: str = ""
    mc_question: str | None = None
    mc_options: dict | None = None
    item_id: str | None = None
    template: str = ""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    input_hash: str = ""

    @property
    def prompt_text(self) -> str:
        """The user text sent with the images."""
        text, _ = user_text(
            task=self.task, mode=self.mode, template=self.template or None, indication=self.indication,
            mc_question=self.mc_question, mc_options=self.mc_options,
            n_current=len(self.images), n_prior=len(self.prior_images),
        )
        return text

    def messages(self) -> list[dict]:
        """OpenAI chat messages: system prompt, then the images (current, then prior) and the user text."""
        return chat_messages(self.prompt_text, (*self.images, *self.prior_images))


def utc_now_iso() -> str:
    """Current UTC time, ISO 8601 with milliseconds (the export's time format)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class DraftResult:
    """One generated draft with its full provenance (the ``drafts`` table of the export)."""

    key: str
    case_id: str
    item_id: str | None
    task: str
    model_id: str
    model_revision: str | None
    backend: str
    server_version: str | None
    mode: str
    prompt: str
    sampling: dict
    seed: int
    raw_output: str
    reasoning: str
    report: str
    parse_status: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float | None
    input_hash: str
    error: str | None = None
    choice_index: int = 0
    created_at: str = field(default_factory=utc_now_iso)
    template: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready) of every field."""
        return asdict(self)


def make_result(
    request: DraftRequest,
    *,
    raw_output: str,
    backend: str,
    model_id: str,
    model_revision: str | None,
    server_version: str | None = None,
    finish_reason: str | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    latency_s: float | None = None,
    choice_index: int = 0,
    error: str | None = None,
) -> DraftResult:
    """Parse a raw output and wrap it with the request's provenance (shared by all backends)."""
    parsed = parse_output(raw_output)
    return DraftResult(
        key=request.key, case_id=request.case_id, item_id=request.item_id, task=request.task,
        model_id=model_id, model_revision=model_revision, backend=backend, server_version=server_version,
        mode=request.mode, prompt=request.prompt_text, sampling=request.sampling.to_dict(),
        seed=request.sampling.seed, raw_output=raw_output, reasoning=parsed.reasoning, report=parsed.report,
        parse_status=parsed.status, finish_reason=finish_reason, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, latency_s=latency_s, input_hash=request.input_hash,
        error=error, choice_index=choice_index, template=request.template,
    )


@runtime_checkable
class Backend(Protocol):
    """What the batch runner and the app need from any model backend."""

    name: str
    model_id: str
    model_revision: str | None

    async def generate(self, request: DraftRequest) -> list[DraftResult]:
        """Generate ``request.sampling.n`` results; raise :class:`DraftingError` on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads or GPU memory; the backend may be used again afterwards."""
        ...


_REGISTRY: dict[str, Callable[..., Backend]] = {}


def register_backend(name: str) -> Callable[[type], type]:
    """Class decorator adding a backend to the registry under ``name``."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"backend {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        _REGISTRY[name] = cls
        return cls

    return decorate


def get_backend(name: str, **options: Any) -> Backend:
    """Instantiate a registered backend.

    Parameters
    ----------
    name : str
        ``vllm-server``, ``vllm-offline``, ``transformers``, ``replay`` or any
        name registered with :func:`register_backend`.
    **options
        Passed to the backend's constructor.

    Returns
    -------
    Backend
    """
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; available: {available_backends()}") from None
    return factory(**options)


def available_backends() -> list[str]:
    """Names of the registered backends."""
    return sorted(_REGISTRY)


def build_request(
    *,
    case_id: str,
    task: str,
    mode: str,
    images: Sequence[bytes],
    prior_images: Sequence[bytes] = (),
    indication: str = "",
    mc: Mapping[str, Any] | None = None,
    template: str | None = None,
    sampling: SamplingParams = SamplingParams(),
    model_id: str = DEFAULT_MODEL_ID,
    model_revision: str | None = DEFAULT_MODEL_REVISION,
    max_pixels: int = CHEXONE_MAX_PIXELS,
    min_pixels: int = MIN_PIXELS,
) -> DraftRequest:
    """Prepare the images, render the prompt and compute the keys of one request.

    Parameters
    ----------
    case_id : str
    task : str
        ``findings``, ``progression`` (needs ``prior_images``) or ``mc`` (needs ``mc``).
    mode : str
        ``reasoning`` or ``instruction``.
    images : sequence of bytes
        Encoded 8-bit PNG/JPEG views of the current study (at least one).
    prior_images : sequence of bytes
        Views of the prior study (progression).
    indication : str
    mc : mapping, optional
        ``{"item_id": ..., "question": ..., "options": {"A": ..., ...}}``.
    template : str, optional
        Prompt template name; default chosen by task and indication.
    sampling : SamplingParams
    model_id, model_revision : str
    max_pixels, min_pixels : int
        Smart-resize budget (CheXOne: 262144 / 3136).

    Returns
    -------
    DraftRequest
    """
    if task not in PROMPT_KINDS:
        raise ValueError(f"unknown task {task!r}; expected one of {PROMPT_KINDS}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    if not images:
        raise ValueError(f"case {case_id!r}: at least one image is required")
    if task == "progression" and not prior_images:
        raise ValueError(f"case {case_id!r}: task 'progression' needs prior_images")
    mc_question = mc_options = item_id = None
    if task == "mc":
        if not mc or not mc.get("question") or not mc.get("options"):
            raise ValueError(f"case {case_id!r}: task 'mc' needs mc={{'question': ..., 'options': {{...}}}}")
        mc_question = str(mc["question"])
        mc_options = {str(k).upper(): str(v) for k, v in dict(mc["options"]).items()}
        item_id = mc.get("item_id")
        item_id = str(item_id) if item_id is not None else None
    prepared = [prepare_image(data, min_pixels=min_pixels, max_pixels=max_pixels) for data in images]
    prepared_prior = [prepare_image(data, min_pixels=min_pixels, max_pixels=max_pixels) for data in prior_images]
    text, template_name = user_text(
        task=task, mode=mode, template=template, indication=indication,
        mc_question=mc_question, mc_options=mc_options,
        n_current=len(prepared), n_prior=len(prepared_prior),
    )
    digest = input_hash(
        image_hashes=[p.sha256 for p in prepared], prior_image_hashes=[p.sha256 for p in prepared_prior],
        prompt=text, mode=mode, sampling=sampling, model_id=model_id, model_revision=model_revision,
    )
    return DraftRequest(
        key=request_key(case_id=case_id, task=task, item_id=item_id, input_hash=digest),
        case_id=case_id, task=task, mode=mode,
        images=tuple(p.png for p in prepared), prior_images=tuple(p.png for p in prepared_prior),
        indication=(indication or "").strip(), mc_question=mc_question, mc_options=mc_options,
        item_id=item_id, template=template_name, sampling=sampling, input_hash=digest,
    )
