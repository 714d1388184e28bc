"""Fills a study with model drafts through `model_runtime`: resumable, one stored row per request, with provenance.

Every backend goes through the same path, the replay of outputs recorded in the manifest included,
so a recorded draft carries the same provenance fields as a freshly generated one.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.draft_records import new_draft
from study_app.services.errors import Conflict, InvalidInput, Unavailable
from study_app.services.events import record_event
from study_app.services.studies import get_study, study_manifests
from study_app.store.models import Arm, Assignment, Case, Draft, DraftFailure, Event, Image, MCItem, utcnow

DEFAULT_MODEL_ID = "StanfordAIMI/CheXOne"
# Display size used for model input before Qwen's own smart resize: large enough that the resize
# (max 262,144 pixels) only ever shrinks, so the input hash depends on the image alone.
MODEL_INPUT_MAX_SIZE = (1024, 1024)


# Event kinds of a drafting run in the audit log.
DRAFTING_STARTED = "drafting_started"
DRAFTING_FINISHED = "drafts_generated"
DRAFTING_STOPPED = "drafting_stopped"


@dataclass(frozen=True)
class UnfinishedRun:
    """The study's latest drafting run, started but with no recorded end."""

    started_at: datetime
    actor: str
    backend: str
    model_id: str
    total: int

    def describe(self) -> str:
        return (f"A drafting run started {self.started_at:%Y-%m-%d %H:%M} UTC by {self.actor} ({self.backend}, "
                f"{self.model_id}, {self.total} request(s)) has no recorded end: it is still running in another "
                "process, or its process stopped. What it stored is kept; starting again drafts only the rest.")


@dataclass(frozen=True)
class DraftingSummary:
    total: int
    skipped: int
    succeeded: int
    failed: int
    elapsed_s: float
    failures: list[str]
    # Drafts readers would see that are cut, not parsed, empty or duplicated (draft_review), after the run.
    issues: list = field(default_factory=list)

    @property
    def open_issues(self) -> list:
        """The drafts with problems no coordinator has accepted: launch refuses while there is one."""
        return [i for i in self.issues if not i.accepted]

    def issue_counts(self) -> str:
        """``72 cut, 3 unparsed`` over the open issues (empty when there is none)."""
        counts: dict[str, int] = {}
        for issue in self.open_issues:
            for code in issue.problems:
                counts[code] = counts.get(code, 0) + 1
        return ", ".join(f"{n} {code}" for code, n in sorted(counts.items()))


# Rendering a 16-bit DICOM for model input takes a good fraction of a second; the same image is
# needed by several requests (findings and multiple-choice items) and by reruns of a batch.
_MODEL_INPUT_CACHE: OrderedDict[str, bytes] = OrderedDict()
_MODEL_INPUT_CACHE_SIZE = 64


def model_input_png(path: str, sha256: str) -> bytes:
    """The image rendered for model input (lossless PNG), cached by content hash."""
    from cohorts.images import render_png

    cached = _MODEL_INPUT_CACHE.get(sha256)
    if cached is None:
        cached = render_png(path, max_size=MODEL_INPUT_MAX_SIZE)
        _MODEL_INPUT_CACHE[sha256] = cached
        while len(_MODEL_INPUT_CACHE) > _MODEL_INPUT_CACHE_SIZE:
            _MODEL_INPUT_CACHE.popitem(last=False)
    else:
        _MODEL_INPUT_CACHE.move_to_end(sha256)
    return cached


@dataclass(frozen=True)
class NeededDraft:
    case_id: int
    case_key: str
    task: str  # "findings" or "mc"
    mc_item_id: int | None
    item_key: str | None
    image_paths: tuple[tuple[str, str], ...]  # (path, sha256)
    prior_paths: tuple[tuple[str, str], ...]
    indication: str
    mc_question: str | None
    mc_options: dict | None


def need_key(need: NeededDraft) -> tuple[int, int | None]:
    """What identifies a needed draft: the case and, for a reasoning item, the item (None: the findings)."""
    return (need.case_id, need.mc_item_id)


def needed_drafts(db: Database, study_id: str) -> list[NeededDraft]:
    """The model drafts the study's arms need: findings for cases of model-drafted arms, answers for MC items."""
    with db.read() as session:
        get_study(session, study_id)
        arms = list(session.scalars(select(Arm).where(Arm.study_id == study_id)))
        # (A detect arm with a draft shows the model's findings beside its marks.)
        findings_arms = [a.id for a in arms if a.task in ("edit", "compare", "detect")
                         and any(s["kind"] == "model" for s in a.draft_sources)]
        reasoning_arms = [a.id for a in arms if a.task == "rate_reasoning"]
        findings_cases = set(
            session.scalars(select(Assignment.case_id).where(Assignment.arm_id.in_(findings_arms)).distinct())
        ) if findings_arms else set()
        mc_items = set(
            session.scalars(select(Assignment.mc_item_id).where(Assignment.arm_id.in_(reasoning_arms)).distinct())
        ) if reasoning_arms else set()
        needed: list[NeededDraft] = []
        for case in session.scalars(select(Case).where(Case.study_id == study_id).order_by(Case.id)):
            images = list(session.scalars(select(Image).where(Image.case_id == case.id).order_by(Image.ordinal)))
            current = tuple((i.path, i.sha256) for i in images if not i.is_prior)
            prior = tuple((i.path, i.sha256) for i in images if i.is_prior)
            if case.id in findings_cases:
                needed.append(NeededDraft(case.id, case.case_key, "findings", None, None, current, prior,
                                          case.indication, None, None))
            for item in session.scalars(select(MCItem).where(MCItem.case_id == case.id).order_by(MCItem.ordinal)):
                if item.id in mc_items:
                    needed.append(NeededDraft(case.id, case.case_key, "mc", item.id, item.item_key, current, prior,
                                              case.indication, item.question, dict(item.options)))
    return needed


def _build_requests(needed: list[NeededDraft], *, backend, mode: str, sampling, template: str | None):
    from model_runtime import build_request

    requests = {}
    for need in needed:
        request = build_request(
            case_id=need.case_key,
            task=need.task,
            mode=mode,
            images=[model_input_png(p, h) for p, h in need.image_paths],
            indication=need.indication,
            mc=(
                {"item_id": need.item_key, "question": need.mc_question, "options": need.mc_options}
                if need.task == "mc" else None
            ),
            template=template,
            sampling=sampling,
            model_id=backend.model_id,
            model_revision=backend.model_revision,
        )
        requests[request.key] = (request, need)
    return requests


def generate_drafts(
    db: Database,
    actor: Actor,
    study_id: str,
    backend,
    *,
    mode: str = "reasoning",
    sampling=None,
    template: str | None = None,
    concurrency: int = 16,
    progress: Callable[[int, int], None] | None = None,
    only: set[tuple[int, int | None]] | None = None,
    replace: bool = False,
) -> DraftingSummary:
    """Generate every missing model draft of a study with `backend`; rerunnable, skips what is stored.

    ``only`` limits the run to these needs (:func:`need_key`); with ``replace`` a stored result replaces the draft
    readers would have seen for its need (which stays, superseded): :func:`regenerate_drafts`.
    """
    from model_runtime import SamplingParams, generate_batch

    require_coordinator(actor, "generate drafts")
    with db.read() as session:
        study = get_study(session, study_id)
        if study.status != "draft":
            raise Conflict(f"study '{study_id}' is {study.status}: drafts are frozen at launch")
        seed = study.seed
    if mode not in ("reasoning", "instruction"):
        raise InvalidInput(f"mode must be reasoning or instruction, not '{mode}'")
    sampling = sampling or SamplingParams(seed=seed)
    check_backend(backend)
    needed = [n for n in needed_drafts(db, study_id) if only is None or need_key(n) in only]
    requests = _build_requests(needed, backend=backend, mode=mode, sampling=sampling, template=template)
    with db.read() as session:
        done = set(
            session.scalars(
                select(Draft.request_key).where(Draft.study_id == study_id, Draft.request_key.is_not(None))
            )
        )
    failures: list[str] = []

    def on_result(result) -> None:
        _request, need = requests[result.key]
        _store_result(db, study_id, need, result, replace=replace)

    def on_failure(request, error: str) -> None:
        _request, need = requests[request.key]
        failures.append(f"{need.case_key} ({need.task}{' ' + need.item_key if need.item_key else ''}): {error}")
        _store_failure(db, study_id, need, request.key, backend.name, error)

    run_id = uuid.uuid4().hex
    with db.transaction() as session:
        # Paired with drafts_generated or drafting_stopped below; a start without either is a run that is
        # still going in another process or whose process died (see `unfinished_drafting_run`).
        record_event(
            session, study_id=study_id, actor=actor, kind=DRAFTING_STARTED,
            payload={"run_id": run_id, **backend_settings(backend), "mode": mode, "total": len(requests),
                     "already_stored": len(done & set(requests)), "sampling": sampling.to_dict(),
                     "replace": replace},
        )
    try:
        summary = generate_batch(
            [r for r, _ in requests.values()], backend, done_keys=done, on_result=on_result, on_failure=on_failure,
            concurrency=concurrency, progress=progress,
        )
    except BaseException as error:  # Ctrl-C included: the log says the run stopped, and why
        try:
            with db.transaction() as session:
                record_event(session, study_id=study_id, actor=actor, kind=DRAFTING_STOPPED,
                             payload={"run_id": run_id, "error": f"{type(error).__name__}: {error}"[:500]})
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    from study_app.services.draft_review import review_drafts

    with db.transaction() as session:
        issues = review_drafts(session, study_id)
        record_event(
            session, study_id=study_id, actor=actor, kind=DRAFTING_FINISHED,
            payload={"run_id": run_id, "backend": backend.name, "model_id": backend.model_id, "total": summary.total,
                     "skipped": summary.skipped, "succeeded": summary.succeeded, "failed": summary.failed,
                     "drafts_with_problems": sum(1 for i in issues if not i.accepted)},
        )
    return DraftingSummary(summary.total, summary.skipped, summary.succeeded, summary.failed, summary.elapsed_s,
                           failures, issues)


def regenerate_drafts(
    db: Database,
    actor: Actor,
    study_id: str,
    backend,
    *,
    sampling,
    case_keys: list[str] | None = None,
    problems_only: bool = False,
    mode: str = "reasoning",
    concurrency: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> DraftingSummary:
    """Generate again the model drafts of some cases (``case_keys``) or of every draft with a problem
    (``problems_only``), with other sampling settings (a larger ``max_tokens`` for drafts cut by the token limit);
    each new draft replaces the one readers would have seen, which is kept, superseded. Only before launch.

    Raises
    ------
    InvalidInput
        Nothing to regenerate (no such case, no draft with a problem), or sampling settings that give the same
        requests as the drafts already stored (they would come back identical: raise ``max_tokens``).
    """
    from study_app.services.draft_review import review_drafts

    require_coordinator(actor, "regenerate drafts")
    if not case_keys and not problems_only:
        raise InvalidInput("name the cases to regenerate (--case) or ask for every draft with a problem (--problems)")
    with db.read() as session:
        study = get_study(session, study_id)
        if study.status != "draft":
            raise Conflict(f"study '{study_id}' is {study.status}: drafts are frozen at launch")
        problem_needs: set[tuple[int, int | None]] = set()
        if problems_only:
            flagged = [i.draft_id for i in review_drafts(session, study_id) if i.task != "manifest" and not i.accepted]
            problem_needs = {(d.case_id, d.mc_item_id) for d in session.scalars(select(Draft).where(
                Draft.id.in_(flagged)))} if flagged else set()
    needed = needed_drafts(db, study_id)
    unknown = sorted(set(case_keys or []) - {n.case_key for n in needed})
    if unknown:
        raise InvalidInput(f"no model draft is needed for case(s) {', '.join(unknown)}")
    # A named case: all its model drafts (findings and items); --problems: only the drafts that have one.
    only = {need_key(n) for n in needed if n.case_key in set(case_keys or [])} | problem_needs
    if not only:
        raise InvalidInput("no draft has a problem: nothing to regenerate")
    with db.read() as session:
        stored_sampling = {
            (d.case_id, d.mc_item_id): d.sampling for d in session.scalars(
                select(Draft).where(Draft.study_id == study_id, Draft.source_kind == "model",
                                    Draft.superseded_at.is_(None)))
        }
    same = [k for k in only if stored_sampling.get(k) == sampling.to_dict()]
    if same and len(same) == len(only):
        raise InvalidInput(f"the drafts of these cases were made with these very settings (max_tokens "
                           f"{sampling.max_tokens}); generating again would give the same text: raise --max-tokens")
    return generate_drafts(db, actor, study_id, backend, mode=mode, sampling=sampling, concurrency=concurrency,
                           progress=progress, only=only, replace=True)


def check_determinism(db: Database, actor: Actor, study_id: str, backend, *, sample: int = 32, low: int = 1,
                      high: int = 64, mode: str = "reasoning", sampling=None):
    """Generate a seeded sample of the study's requests at two concurrencies and compare the outputs.

    Greedy decoding is deterministic only if the server's batching does not change the numbers
    (vLLM's batch-invariant mode); this shows whether it holds on the study's own inputs. Nothing is stored.
    """
    import asyncio
    import random

    from model_runtime import SamplingParams, determinism_check

    require_coordinator(actor, "check determinism")
    with db.read() as session:
        seed = get_study(session, study_id).seed
    needed = needed_drafts(db, study_id)
    chosen = random.Random(f"{seed}:determinism").sample(needed, min(sample, len(needed)))
    check_backend(backend)
    requests = _build_requests(chosen, backend=backend, mode=mode, sampling=sampling or SamplingParams(seed=seed),
                               template=None)
    return asyncio.run(determinism_check(backend, [r for r, _ in requests.values()], low=low, high=high))


# Backends that generate drafts (the registry also holds ``replay``, which only stores recorded outputs).
RECORDED_OUTPUTS_BACKEND = "replay"


def generating_backends() -> list[str]:
    """The registered backends that generate drafts, asked of the registry (``model_runtime``)."""
    from model_runtime import available_backends

    return [name for name in available_backends() if name != RECORDED_OUTPUTS_BACKEND]


# How long a drafting run waits for a vLLM server to be reachable and healthy before it stops with one error.
# Short: a server that is up answers /health at once; one still loading its weights is worth a longer wait,
# given on purpose (--connect-timeout).
DEFAULT_CONNECT_TIMEOUT_S = 30.0
# How long one request waits for the server's answer (the response is not streamed: its first byte is the answer).
DEFAULT_FIRST_RESPONSE_TIMEOUT_S = 600.0


def drafting_backend(name: str, *, url: str | None = None, urls: list[str] | None = None,
                     served_model_name: str | None = None, model_id: str | None = None,
                     model_revision: str | None = None, concurrency: int = 16, ready_timeout_s: float | None = None,
                     first_response_timeout_s: float | None = None, api_key: str | None = None):
    """The one place a drafting backend is built, for the CLI (``drafts generate``, ``model check-determinism``),
    the console and the drafting worker alike: the registry's backend with the study's provenance defaults.

    With several vLLM-server URLs (``urls``), one backend per server, each capped at ``concurrency`` requests in
    flight, behind a :class:`model_runtime.backends.server_pool.ServerPool` that spreads requests by load and fails
    a dead server over.

    ``ready_timeout_s`` bounds the wait for a vLLM server to be reachable and healthy (the connect timeout);
    ``first_response_timeout_s`` bounds one request's wait for its answer; ``api_key`` is sent as the bearer
    token (default: ``$READERSTUDY_VLLM_API_KEY``, the key ``model serve-command`` starts the server with).

    Raises InvalidInput for an unknown backend or a vLLM-server URL that is not http(s).
    """
    import os

    from model_runtime.serving import API_KEY_ENV

    from model_runtime import DEFAULT_MODEL_ID, DEFAULT_MODEL_REVISION, get_backend

    known = generating_backends()
    if name not in known:
        raise InvalidInput(f"unknown drafting backend '{name}' (available: {', '.join(known)})")
    options: dict = {"model_id": model_id or DEFAULT_MODEL_ID, "model_revision": model_revision or DEFAULT_MODEL_REVISION}
    if name != "vllm-server":
        return get_backend(name, **options)
    servers = [u.strip() for u in (urls or ([url] if url else [])) if u and u.strip()]
    if not servers:
        raise InvalidInput("a vllm-server backend needs the server's URL")
    for server in servers:
        if not server.startswith(("http://", "https://")):
            raise InvalidInput(f"'{server}' is not an http(s) URL of a vLLM server")
    if len(set(servers)) != len(servers):
        raise InvalidInput("the same vLLM server URL is given twice")
    wait = DEFAULT_CONNECT_TIMEOUT_S if ready_timeout_s is None else ready_timeout_s
    options.update(served_model_name=served_model_name or None, max_in_flight=concurrency,
                   request_timeout_s=first_response_timeout_s or DEFAULT_FIRST_RESPONSE_TIMEOUT_S,
                   connect_timeout_s=min(10.0, wait))
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if key:
        options["api_key"] = key
    if len(servers) == 1:
        return get_backend(name, base_url=servers[0], ready_timeout_s=wait, **options)
    from model_runtime.backends.server_pool import ServerPool

    # Each server waits only briefly for itself, so a dead one fails over fast; the pool waits for the first.
    members = [get_backend(name, base_url=server, ready_timeout_s=5.0, max_retries=1, **options) for server in servers]
    return ServerPool(members, ready_timeout_s=wait)


def backend_settings(backend) -> dict:
    """What a drafting run ran against, for the audit log (never the API key)."""
    settings = {"backend": backend.name, "model_id": backend.model_id, "model_revision": backend.model_revision}
    for attribute in ("root_url", "served_model_name", "ready_timeout_s", "request_timeout_s", "max_in_flight"):
        if hasattr(backend, attribute):
            settings[attribute] = getattr(backend, attribute)
    if hasattr(backend, "api_key"):
        settings["api_key_set"] = getattr(backend, "api_key") not in (None, "", "EMPTY")
    return settings


def check_backend(backend) -> None:
    """Check once that the backend can serve (server healthy, model served) before a batch of requests,
    so a wrong URL or model name is one clear error, not a failure recorded for every case."""
    import asyncio

    from model_runtime import BackendUnavailable

    ensure_ready = getattr(backend, "ensure_ready", None)
    if ensure_ready is None:
        return

    async def check() -> None:
        try:
            await ensure_ready()
        finally:
            await backend.aclose()

    try:
        asyncio.run(check())
    except BackendUnavailable as error:
        raise Unavailable(str(error)) from None


def _store_failure(db: Database, study_id: str, need: NeededDraft, key: str, backend: str, error: str) -> None:
    with db.transaction() as session:
        session.add(DraftFailure(study_id=study_id, case_id=need.case_id, task=need.task, mc_item_id=need.mc_item_id,
                                 request_key=key, backend=backend, error=str(error)[:2000]))


def _store_result(db: Database, study_id: str, need: NeededDraft, result, *, replace: bool = False) -> None:
    if result.error:
        _store_failure(db, study_id, need, result.key, result.backend, result.error)
        return
    try:
        with db.transaction() as session:
            if get_study(session, study_id, for_update=True).status != "draft":
                # Launched while this request was in flight: the study's drafts are frozen, so the late answer is
                # dropped. Launch refuses while a needed draft is missing, so a needed draft is never dropped here.
                return
            if replace and (result.choice_index or 0) == 0:
                # The regenerated draft is the one readers will see; the earlier ones stay, with their provenance.
                now = utcnow()
                for earlier in session.scalars(select(Draft).where(
                        Draft.study_id == study_id, Draft.case_id == need.case_id, Draft.source_kind == "model",
                        Draft.task == need.task, Draft.superseded_at.is_(None),
                        Draft.mc_item_id.is_(None) if need.mc_item_id is None
                        else Draft.mc_item_id == need.mc_item_id)):
                    earlier.superseded_at = now
            session.add(new_draft(
                study_id=study_id, case_id=need.case_id, source_kind="model", text=result.report,
                raw_output=result.raw_output, mc_item_id=need.mc_item_id, task=need.task, model_id=result.model_id,
                model_revision=result.model_revision, backend=result.backend, server_version=result.server_version,
                mode=result.mode, prompt=result.prompt, sampling=result.sampling, seed=result.seed,
                reasoning=result.reasoning, answer=getattr(result, "answer", None), parse_status=result.parse_status,
                finish_reason=result.finish_reason, prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens, latency_s=result.latency_s, input_hash=result.input_hash,
                request_key=result.key, choice_index=getattr(result, "choice_index", 0) or 0,
            ))
    except IntegrityError:
        # A concurrent or earlier run stored this request already: the first one stands.
        pass


def import_recorded_drafts(db: Database, actor: Actor, study_id: str) -> DraftingSummary:
    """Store the model outputs recorded in the study's manifest, through the replay backend."""
    from cohorts.manifest import load_manifest


    require_coordinator(actor, "import drafts")
    with db.read() as session:
        manifests = study_manifests(get_study(session, study_id))
    recorded: dict[tuple[str, str, str | None], str] = {}
    model_ids = set()
    mode = "reasoning"
    for case in (c for manifest in manifests for c in load_manifest(manifest).cases):
        for draft in case.drafts:
            if draft.source == "model" and draft.raw_output:
                recorded[(case.case_id, "findings", None)] = draft.raw_output
                model_ids.add(draft.model_id or DEFAULT_MODEL_ID)
                mode = draft.mode or mode
        for item in case.mc_items:
            if item.model_output:
                recorded[(case.case_id, "mc", item.item_id)] = item.model_output
    if len(model_ids) > 1:
        raise InvalidInput(f"the manifest records outputs of several models ({', '.join(sorted(model_ids))}); "
                           "import one model per study")
    from model_runtime.backends.replay import ReplayBackend

    backend = ReplayBackend(recorded, name="manifest")
    # Provenance names the model that produced the recorded text; `backend` says it was replayed.
    backend.model_id = next(iter(model_ids), DEFAULT_MODEL_ID)
    return generate_drafts(db, actor, study_id, backend, mode=mode, concurrency=4)


@dataclass(frozen=True)
class DraftStatusRow:
    case_key: str
    task: str
    item_key: str | None
    stored: bool
    model_id: str | None
    model_revision: str | None
    backend: str | None
    mode: str | None
    parse_status: str | None
    finish_reason: str | None
    failures: int
    last_error: str | None
    # Problem codes (draft_review) and what exactly is wrong; "accepted" when a coordinator recorded why it may
    # be shown as it is.
    problems: str = ""
    problem_details: str = ""
    accepted: str = ""


def drafts_status(db: Database, actor: Actor, study_id: str) -> list[DraftStatusRow]:
    """Which model drafts the study needs, which are stored (with their provenance), and which failed; drafts
    with a problem (cut, not parsed, empty, duplicated) first, then missing ones, then the rest in case order."""
    from study_app.services.draft_review import review_drafts
    from study_app.services.release import model_drafts_by_need

    require_coordinator(actor, "see the drafts")
    needed = needed_drafts(db, study_id)
    rows = []
    with db.read() as session:
        shown = model_drafts_by_need(session, study_id)
        issues = {i.draft_id: i for i in review_drafts(session, study_id)}
        for need in needed:
            draft = shown.get(need_key(need))
            issue = issues.get(draft.id) if draft is not None else None
            failures = list(session.scalars(
                select(DraftFailure).where(
                    DraftFailure.case_id == need.case_id, DraftFailure.task == need.task,
                    DraftFailure.mc_item_id.is_(None) if need.mc_item_id is None
                    else DraftFailure.mc_item_id == need.mc_item_id,
                ).order_by(DraftFailure.id)
            ))
            rows.append(DraftStatusRow(
                case_key=need.case_key, task=need.task, item_key=need.item_key, stored=draft is not None,
                model_id=draft.model_id if draft else None, model_revision=draft.model_revision if draft else None,
                backend=draft.backend if draft else None, mode=draft.mode if draft else None,
                parse_status=draft.parse_status if draft else None,
                finish_reason=draft.finish_reason if draft else None,
                failures=len(failures), last_error=failures[-1].error if failures else None,
                problems=", ".join(issue.problems) if issue else "",
                problem_details="; ".join(issue.details) if issue else "",
                accepted=f"{issue.accepted_by}: {issue.accepted_reason}" if issue and issue.accepted else "",
            ))
    # What needs the coordinator first: problems no one has accepted, then missing drafts, then the rest.
    return sorted(rows, key=lambda r: (0 if r.problems and not r.accepted else 1 if not r.stored else 2))


def unfinished_drafting_run(db: Database, actor: Actor, study_id: str) -> UnfinishedRun | None:
    """The study's latest drafting run when it has no recorded end (finished or stopped), else None.

    Only the latest start counts: a run that died and was followed by a complete one is moot.
    """
    require_coordinator(actor, "see drafting runs")
    with db.read() as session:
        get_study(session, study_id)
        events = session.scalars(
            select(Event).where(Event.study_id == study_id,
                                Event.kind.in_((DRAFTING_STARTED, DRAFTING_FINISHED, DRAFTING_STOPPED)))
            .order_by(Event.id)
        ).all()
    starts = [e for e in events if e.kind == DRAFTING_STARTED]
    if not starts:
        return None
    latest = starts[-1]
    run_id = latest.payload.get("run_id")
    if any(e.kind != DRAFTING_STARTED and e.payload.get("run_id") == run_id for e in events):
        return None
    return UnfinishedRun(started_at=latest.at, actor=latest.actor, backend=str(latest.payload.get("backend")),
                         model_id=str(latest.payload.get("model_id")), total=int(latest.payload.get("total") or 0))


@dataclass(frozen=True)
class StudyRevision:
    """The model revision a study records, and where it was found."""

    model_id: str
    revision: str
    source: str  # "drafts" (its stored model drafts) or "drafting run" (the latest run's start, nothing stored yet)
    served_model_name: str | None = None


def study_model_revision(db: Database, actor: Actor, study_id: str) -> StudyRevision:
    """The model and revision a study's drafts were made with: what ``model serve-command --study`` serves again.

    The stored model drafts decide (those readers would see); before any is stored, the latest drafting run's
    start. Raises NotFound when the study records neither, and Conflict when its drafts come from several
    revisions (a study must not mix them: ``docs/model-serving.md``).
    """
    from study_app.services.errors import NotFound

    require_coordinator(actor, "see a study's model revision")
    with db.read() as session:
        get_study(session, study_id)
        found = session.execute(
            select(Draft.model_id, Draft.model_revision).where(
                Draft.study_id == study_id, Draft.source_kind == "model", Draft.superseded_at.is_(None),
                Draft.backend != "manifest").distinct()
        ).all()
        started = session.scalars(
            select(Event).where(Event.study_id == study_id, Event.kind == DRAFTING_STARTED).order_by(Event.id.desc())
        ).first()
    served = (started.payload or {}).get("served_model_name") if started is not None else None
    pairs = sorted({(m or DEFAULT_MODEL_ID, r) for m, r in found if r})
    if len(pairs) > 1:
        raise Conflict(f"study '{study_id}' has drafts of several model revisions ("
                       + ", ".join(f"{m}@{r}" for m, r in pairs) + "); regenerate them from one")
    if pairs:
        served = served if served and served != pairs[0][0] else None
        return StudyRevision(pairs[0][0], pairs[0][1], "drafts", served)
    if started is not None and started.payload.get("model_revision"):
        payload = started.payload
        model_id = str(payload.get("model_id") or DEFAULT_MODEL_ID)
        served = served if served and served != model_id else None
        return StudyRevision(model_id, str(payload["model_revision"]), "drafting run", served)
    raise NotFound(f"study '{study_id}' records no model revision yet (no model draft, no drafting run): "
                   "give the commit to serve with --revision")
