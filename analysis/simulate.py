"""Simulate a reader study with known effects as tidy tables conforming to the data dictionary."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from analysis.stats.text import edit_metrics
from analysis.tables import StudyTables, tables_from_frames

_SENTENCES = (
    "The lungs are clear.", "No focal consolidation.", "No pleural effusion or pneumothorax.",
    "Heart size is normal.", "Mild cardiomegaly.", "Small left pleural effusion.",
    "Right lower lobe opacity concerning for pneumonia.", "Mediastinal contours are within normal limits.",
    "Endotracheal tube terminates 4 cm above the carina.", "Degenerative changes of the thoracic spine.",
    "Bibasilar atelectasis.", "Pulmonary vascular congestion.", "Left-sided central venous catheter in place.",
    "No acute osseous abnormality.",
)
_FIXES = ("Trace bilateral pleural effusions.", "Moderate pulmonary edema.", "Stable position of support devices.")
_INDICATIONS = ("Shortness of breath.", "Fever and cough.", "Line placement.", "Chest pain.", "Post-operative.")
_LIKERT_ITEMS = ("indication_applicability", "writing_efficiency", "interpretation_efficiency")
_REASONING_ITEMS = ("factuality", "causal_support")
_LIKERT_CODES = np.array([-10, -5, 0, 5, 10])
_LIKERT_LABELS = {10: "Strongly agree", 5: "Agree", 0: "Neutral", -5: "Disagree", -10: "Strongly disagree"}
_REASON_LABELS = {"none": "No editing needed", "content": "Content (false/missing finding, severity)",
                  "style": "Style", "both": "Content and style"}

DEFAULT_EDIT_REASONS = {
    "model": {"none": 0.40, "content": 0.30, "style": 0.20, "both": 0.10},
    "reader": {"none": 0.30, "content": 0.25, "style": 0.30, "both": 0.15},
}
DEFAULT_PREFERENCE = {"model": 0.45, "reader": 0.35, "equivalent": 0.20}
# Latent Likert means on the -10..+10 code scale, by draft source.
DEFAULT_LIKERT_MEANS = {"model": 4.0, "reader": 2.0}


def _likert(latent: np.ndarray) -> np.ndarray:
    """Round a latent score to the nearest of +10, +5, 0, -5, -10."""
    return _LIKERT_CODES[np.abs(latent[:, None] - _LIKERT_CODES[None, :]).argmin(axis=1)]


def _iso(base: pd.Timestamp, seconds: np.ndarray) -> pd.Series:
    stamps = base + pd.to_timedelta(np.round(seconds, 3), unit="s")
    text = pd.Series(stamps).dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str.slice(0, 23) + "Z"
    return text.where(~np.isnan(seconds), None)


def simulate_study(n_readers: int = 11, n_cases: int = 80, seed: int = 0, time_ratio: float = 0.7, *,
                   n_residents: int | None = None, reads_per_reader: int = 46,
                   attending_time_ratio: float = 0.9, reader_sd: float = 0.3, case_sd: float = 0.25,
                   residual_sd: float = 0.35, reader_condition_sd: float = 0.0, preference: dict | None = None, position_bias: float = 0.0,
                   edit_reasons: dict | None = None, likert_means: dict | None = None,
                   likert_reader_sd: float = 2.0, likert_case_sd: float = 2.0, likert_noise_sd: float = 3.0,
                   share_submitted_only: float = 0.03, share_unfinished: float = 0.02,
                   reference_findings: bool = False, site_time_ratios: dict[str, float] | None = None,
                   draft_errors: dict | None = None,
                   study_id: str = "simulated-chexone") -> StudyTables:
    """Simulate a CheXOne-style reader study with known effects.

    Parameters
    ----------
    n_readers : int
        Readers; the first ``n_residents`` are residents, the rest attendings.
    n_cases : int
        Cases in the cohort.
    seed : int
        Seed of the :class:`numpy.random.Generator`; same seed, same tables.
    time_ratio : float
        True ratio of geometric-mean durations, resident edit-model / write-from-scratch.
    n_residents : int, optional
        Default: ``n_readers - n_readers // 2`` (6 of 11).
    reads_per_reader : int
        Assignments per reader. Residents: half write, half edit a model draft (never
        the same case twice). Attendings: 30 % edit resident drafts, 30 % edit model
        drafts (half of them on cases whose resident draft they also edit, giving
        paired outcomes), 25 % compare, 15 % reasoning review.
    attending_time_ratio : float
        True ratio attending edit-model / edit-reader-draft.
    reader_sd, case_sd, residual_sd : float
        Standard deviations of reader, case and residual effects on log(duration_s).
    reader_condition_sd : float
        Standard deviation of a reader x condition effect on log(duration_s): readers
        differ in how much a condition (e.g. a model draft) speeds them up. Drawn from
        its own stream, so 0 leaves every other draw of a seed unchanged.
    preference : dict, optional
        Probabilities of preferred_source ``model``/``reader``/``equivalent``.
    position_bias : float
        Probability that a non-tied comparison is decided for position A whatever
        the sources (0: no position effect).
    edit_reasons : dict, optional
        ``{draft_source: {reason: probability}}``.
    likert_means : dict, optional
        Latent Likert mean by draft source (code scale -10..+10).
    likert_reader_sd, likert_case_sd, likert_noise_sd : float
        Latent Likert variation; the true latent ICC of a rating is
        case_sd^2 / (reader_sd^2 + case_sd^2 + noise_sd^2) before rounding.
    share_submitted_only, share_unfinished : float
        Shares of assignments left ``submitted`` (no answers) and ``in_progress``.
    reference_findings : bool
        Give every case a reference Findings text (``cases.reference_findings``, as a cohort manifest may): the
        model draft's first two sentences and, for half the cases, a third that a content edit may also write
        (one of the simulated fixes), else the draft's own third. Drawn from its own stream, so the other tables
        of a seed do not change.
    site_time_ratios : dict, optional
        A multi-site study: ``{site: true time ratio of the site's cases}`` (e.g. ``{"site_a": 1.0, "site_b":
        1.5}``: site_b's cases take 1.5 times as long, in every condition). Cases and readers are dealt to the
        sites in turn (``cases.site``, ``readers.site``); no random draw is added, so the other tables of a seed
        do not change except the durations, multiplied by their case's site's ratio.
    draft_errors : dict, optional
        Error annotation of the drafts (ReXVal): ``{draft_source: (significant, not_significant)}``, the mean
        numbers of clinically significant and of other errors a reader marks in one draft (Poisson, with a
        reader effect of SD 0.3 on the log rate), plus one edit marked not an error in a third of the drafts.
        Every completed edit is then annotated (``assignments.errors_annotated``) and the marks are the
        ``draft_errors`` table. Drawn from its own stream, so the other tables of a seed do not change.
    study_id : str

    Returns
    -------
    StudyTables
        Validated tables; ``meta['simulation']`` records every true parameter.

    Examples
    --------
    >>> from analysis.simulate import simulate_study
    >>> t = simulate_study(seed=1)
    >>> sorted(t.readers["role"].unique())
    ['attending', 'resident']
    """
    rng = np.random.default_rng(seed)
    preference = preference or DEFAULT_PREFERENCE
    edit_reasons = edit_reasons or DEFAULT_EDIT_REASONS
    likert_means = likert_means or DEFAULT_LIKERT_MEANS
    n_residents = n_readers - n_readers // 2 if n_residents is None else n_residents
    if not 1 <= n_residents < n_readers:
        raise ValueError("need at least one resident and one attending")
    width = max(2, len(str(max(n_readers, n_cases))))
    reader_ids = [f"{'R' if i < n_residents else 'A'}{i + 1:0{width}d}" for i in range(n_readers)]
    roles = ["resident" if i < n_residents else "attending" for i in range(n_readers)]
    case_ids = np.array([f"C{j + 1:0{width}d}" for j in range(n_cases)])
    reader_effect = rng.normal(0, reader_sd, n_readers)
    case_effect = rng.normal(0, case_sd, n_cases)
    lk_reader = rng.normal(0, likert_reader_sd, n_readers)
    lk_case = rng.normal(0, likert_case_sd, n_cases)
    model_text = [" ".join(rng.choice(_SENTENCES, size=3, replace=False)) for _ in range(n_cases)]

    base_log = {("resident", "write"): np.log(180.0),
                ("resident", "edit_model"): np.log(180.0 * time_ratio),
                ("attending", "edit_reader"): np.log(90.0),
                ("attending", "edit_model"): np.log(90.0 * attending_time_ratio),
                ("attending", "compare"): np.log(60.0), ("attending", "rate_reasoning"): np.log(45.0)}
    arms = {"write": ("resident_scratch", "write", None), "edit_model": (None, "edit", "model"),
            "edit_reader": ("attending_edit_resident", "edit", "reader"),
            "compare": ("attending_compare", "compare", None),
            "rate_reasoning": ("reasoning_review", "rate_reasoning", None)}

    rows: list[dict] = []
    counter = 0
    # Residents first: their written reports become the reader drafts attendings see.
    for i in range(n_residents):
        m = min(reads_per_reader, n_cases)
        chosen = rng.choice(n_cases, size=m, replace=False)
        for k, j in enumerate(chosen):
            cond = "write" if k < m // 2 else "edit_model"
            counter += 1
            rows.append({"reader": i, "case": int(j), "condition": cond, "n": counter})
    frame = pd.DataFrame(rows)
    written = frame.loc[frame["condition"] == "write"]
    reader_draft_of_case = written.drop_duplicates("case").set_index("case")["n"].to_dict()
    cases_with_draft = np.array(sorted(reader_draft_of_case))
    att_rows = []
    for i in range(n_residents, n_readers):
        q_er = int(round(0.30 * reads_per_reader))
        q_em = int(round(0.30 * reads_per_reader))
        q_cmp = int(round(0.25 * reads_per_reader))
        q_rr = max(0, reads_per_reader - q_er - q_em - q_cmp)
        er = rng.choice(cases_with_draft, size=min(q_er, cases_with_draft.size), replace=False)
        overlap = er[: q_em // 2]
        others = np.setdiff1d(np.arange(n_cases), overlap)
        em = np.concatenate([overlap, rng.choice(others, size=min(q_em - overlap.size, others.size), replace=False)])
        cmp_ = rng.choice(cases_with_draft, size=min(q_cmp, cases_with_draft.size), replace=False)
        rr = rng.choice(n_cases, size=min(q_rr, n_cases), replace=False)
        for cond, chosen in (("edit_reader", er), ("edit_model", em), ("compare", cmp_), ("rate_reasoning", rr)):
            for j in chosen:
                counter += 1
                att_rows.append({"reader": i, "case": int(j), "condition": cond, "n": counter})
    frame = pd.concat([frame, pd.DataFrame(att_rows)], ignore_index=True)
    n = len(frame)
    r_idx = frame["reader"].to_numpy()
    c_idx = frame["case"].to_numpy()
    cond = frame["condition"].to_numpy()
    role = np.array(roles)[r_idx]
    a = pd.DataFrame({
        "study_id": study_id,
        "assignment_id": [f"S{k:07d}" for k in frame["n"]],
        "reader_id": np.array(reader_ids)[r_idx],
        "reader_role": role,
        "case_id": case_ids[c_idx],
    })
    a["arm"] = [arms[c][0] or f"{rl}_edit_model" for c, rl in zip(cond, role)]
    a["task"] = [arms[c][1] for c in cond]
    # Worklist order: a random permutation within each reader.
    a["position"] = (pd.Series(rng.random(n)).groupby(r_idx).rank(method="first").astype(int)).to_numpy()
    u = rng.random(n)
    status = np.where(u < share_unfinished, "in_progress",
                      np.where(u < share_unfinished + share_submitted_only, "submitted", "completed"))
    # A resident report that attendings see was necessarily submitted (phase dependency).
    status[np.isin(frame["n"].to_numpy(), list(reader_draft_of_case.values()))] = "completed"
    a["status"] = status
    draft_source = np.array([arms[c][2] for c in cond], dtype=object)
    a["draft_source"] = draft_source
    reader_draft_n = np.array([reader_draft_of_case.get(j, -1) for j in c_idx])
    is_edit_reader = cond == "edit_reader"
    is_edit_model = cond == "edit_model"
    is_compare = cond == "compare"
    model_draft_ids = np.array([f"M{j + 1:0{width}d}" for j in range(n_cases)])
    reader_draft_ids = np.where(reader_draft_n > 0, [f"D{k:07d}" for k in reader_draft_n], None)
    a["draft_id"] = np.where(is_edit_model | (cond == "rate_reasoning"), model_draft_ids[c_idx],
                             np.where(is_edit_reader, reader_draft_ids, None))
    author = {k: reader_ids[r] for k, r in zip(written["n"], written["reader"])}
    a["draft_author_id"] = np.where(is_edit_reader, [author.get(k) for k in reader_draft_n], None)
    a_is_model = rng.random(n) < 0.5
    a["a_source"] = np.where(is_compare, np.where(a_is_model, "model", "reader"), None)
    a["b_source"] = np.where(is_compare, np.where(a_is_model, "reader", "model"), None)
    a["a_draft_id"] = np.where(is_compare, np.where(a_is_model, model_draft_ids[c_idx], reader_draft_ids), None)
    a["b_draft_id"] = np.where(is_compare, np.where(a_is_model, reader_draft_ids, model_draft_ids[c_idx]), None)
    cats = list(preference)
    pref = rng.choice(cats, size=n, p=[preference[c] for c in cats])
    biased = (rng.random(n) < position_bias) & (pref != "equivalent")
    pref = np.where(biased, np.where(a_is_model, "model", "reader"), pref)
    preferred = np.where(pref == "equivalent", "equivalent",
                         np.where((pref == "model") == a_is_model, "A", "B"))
    done = status != "in_progress"
    a["preferred"] = np.where(is_compare & done, preferred, None)
    a["preferred_source"] = np.where(is_compare & done, pref, None)

    log_d = np.array([base_log[(rl, c)] for rl, c in zip(role, cond)]) + reader_effect[r_idx] + \
        case_effect[c_idx] + rng.normal(0, residual_sd, n)
    site_names = list(site_time_ratios or {})
    case_sites = np.array([site_names[j % len(site_names)] for j in range(n_cases)]) if site_names else None
    if site_names:
        log_d = log_d + np.log(np.array([site_time_ratios[case_sites[j]] for j in c_idx], dtype=float))
    if reader_condition_sd > 0:
        cond_codes = pd.Categorical(cond, categories=list(arms)).codes
        rc_effect = np.random.default_rng([seed, 1]).normal(0, reader_condition_sd, (n_readers, len(arms)))
        log_d = log_d + rc_effect[r_idx, cond_codes]
    duration = np.where(done, np.round(np.exp(log_d), 3), np.nan)
    gaps = rng.exponential(30.0, n)
    order = np.lexsort((a["position"].to_numpy(), r_idx))
    start = np.empty(n)
    clock = {}
    for k in order:
        r = r_idx[k]
        t0 = clock.get(r, r * 3600.0)
        start[k] = t0 + gaps[k]
        clock[r] = start[k] + (duration[k] if done[k] else 60.0) + 20.0
    base = pd.Timestamp("2024-06-01T08:00:00Z")
    a["opened_at"] = _iso(base, start - 2.0)
    a["first_shown_at"] = _iso(base, start)
    a["submitted_at"] = _iso(base, np.where(done, start + np.nan_to_num(duration), np.nan))
    a["completed_at"] = _iso(base, np.where(status == "completed", start + np.nan_to_num(duration) + 15.0, np.nan))
    a["duration_s"] = duration
    hidden = np.where(done, np.round(duration * rng.uniform(0, 0.05, n), 3), np.nan)
    idle = np.where(done, np.round(duration * rng.uniform(0, 0.1, n), 3), np.nan)
    a["active_s"] = np.round(duration - hidden - idle, 3)
    a["hidden_s"] = hidden
    a["idle_s"] = idle
    a["sessions"] = np.where(done, 1 + (rng.random(n) < 0.05), np.nan)

    # Edit reasons drive the text change, so edit metrics agree with the answers.
    reason = np.full(n, None, dtype=object)
    for src in ("model", "reader"):
        mask = (draft_source == src)
        probs = edit_reasons[src]
        reason[mask] = rng.choice(list(probs), size=int(mask.sum()), p=list(probs.values()))
    shown = np.full(n, None, dtype=object)
    final = np.full(n, None, dtype=object)
    fixes = rng.choice(_FIXES, size=n)
    for k in range(n):
        c = cond[k]
        if c in ("compare", "rate_reasoning"):
            continue
        j = c_idx[k]
        if c == "write":
            text = " ".join(rng.choice(_SENTENCES, size=3, replace=False)) if done[k] else None
            final[k] = text
            shown[k] = ""
            continue
        src_text = model_text[j] if c == "edit_model" else None
        shown[k] = src_text  # reader drafts filled below, once residents' texts are known
        if not done[k]:
            continue
        final[k] = src_text
    # Reader drafts are the residents' submitted texts (row of assignment n is n - 1).
    for k in np.flatnonzero(is_edit_reader):
        shown[k] = final[reader_draft_n[k] - 1]
        if done[k]:
            final[k] = shown[k]
    for k in np.flatnonzero((is_edit_model | is_edit_reader) & done):
        text = final[k]
        if reason[k] in ("content", "both"):
            parts = text.split(". ")
            text = ". ".join(parts[:-1] + [fixes[k]]) if len(parts) > 1 else fixes[k]
        if reason[k] in ("style", "both"):
            text = "FINDINGS: " + text.replace("The ", "the ").replace("No ", "There is no ")
        final[k] = text
    a["shown_text"] = shown
    a["final_text"] = final
    a = edit_metrics(a)
    a.loc[~done, ["edit_chars", "edit_words", "unchanged"]] = pd.NA

    # Answers: only completed assignments have saved feedback.
    completed = status == "completed"
    answers = []
    is_edit = is_edit_model | is_edit_reader
    ids = a["assignment_id"].to_numpy()
    for k in np.flatnonzero(completed & is_edit):
        answers.append((ids[k], "edit_reason", _REASON_LABELS[reason[k]], reason[k]))
    edit_k = np.flatnonzero(completed & is_edit)
    for item_shift, item in zip((0.0, -1.0, -2.0), _LIKERT_ITEMS):
        mean = np.array([likert_means[draft_source[k]] for k in edit_k]) + item_shift
        latent = mean + lk_reader[r_idx[edit_k]] + lk_case[c_idx[edit_k]] + rng.normal(0, likert_noise_sd, edit_k.size)
        for k, v in zip(edit_k, _likert(latent)):
            answers.append((ids[k], item, _LIKERT_LABELS[int(v)], str(int(v))))
    rr_k = np.flatnonzero(completed & (cond == "rate_reasoning"))
    for item in _REASONING_ITEMS:
        latent = 3.0 + lk_reader[r_idx[rr_k]] + lk_case[c_idx[rr_k]] + rng.normal(0, likert_noise_sd, rr_k.size)
        for k, v in zip(rr_k, _likert(latent)):
            answers.append((ids[k], item, _LIKERT_LABELS[int(v)], str(int(v))))
    for k in np.flatnonzero(completed & is_compare):
        answers.append((ids[k], "preference", preferred[k], preferred[k]))
    ans = pd.DataFrame(answers, columns=["assignment_id", "question_key", "label", "value"])
    ans["answered_at"] = a.set_index("assignment_id").loc[ans["assignment_id"], "completed_at"].to_numpy()

    drafts_model = pd.DataFrame({
        "draft_id": model_draft_ids, "case_id": case_ids, "source_kind": "model", "author_reader_id": None,
        "model_id": "StanfordAIMI/CheXOne", "model_revision": "simulated", "backend": "replay",
        "mode": "reasoning", "prompt": "Write the Findings section.", "sampling": json.dumps({"temperature": 0}),
        "seed": seed, "raw_output": model_text, "reasoning": "simulated reasoning", "report": model_text,
        "parse_status": "ok", "finish_reason": "stop", "prompt_tokens": 512, "completion_tokens": 96,
        "latency_s": 1.0, "input_hash": [hashlib.sha256(c.encode()).hexdigest()[:16] for c in case_ids],
        "created_at": "2024-05-31T12:00:00.000Z"})
    w = a.loc[a["task"].eq("write") & a["status"].isin(["submitted", "completed"])]
    drafts_reader = pd.DataFrame({
        "draft_id": "D" + w["assignment_id"].str.slice(1), "case_id": w["case_id"], "source_kind": "reader",
        "author_reader_id": w["reader_id"], "report": w["final_text"], "created_at": w["submitted_at"]})
    drafts = pd.concat([drafts_model, drafts_reader], ignore_index=True)
    cases = pd.DataFrame({
        "case_id": case_ids, "n_images": rng.integers(1, 3, n_cases),
        "views": np.where(rng.random(n_cases) < 0.6, "PA;LATERAL", "AP"),
        "has_prior": rng.random(n_cases) < 0.3, "indication": rng.choice(_INDICATIONS, n_cases),
        "comparison": None, "reference_findings": None})
    if reference_findings:
        ref_rng = np.random.default_rng([seed, 2])
        kept = ref_rng.random(n_cases) < 0.5
        fix = ref_rng.choice(_FIXES, size=n_cases)
        sentences = [text.split(". ") for text in model_text]
        cases["reference_findings"] = [". ".join(s[:2] + [s[2] if keep else f.rstrip(".")]) + ("" if keep else ".")
                                       for s, keep, f in zip(sentences, kept, fix)]
    readers = pd.DataFrame({"reader_id": reader_ids, "role": roles,
                            "label": [f"{r.title()} {i + 1}" for i, r in enumerate(roles)]})
    if site_names:
        cases["site"] = case_sites
        readers["site"] = [site_names[i % len(site_names)] for i in range(n_readers)]
    truth = {
        "time_ratio": time_ratio, "attending_time_ratio": attending_time_ratio, "reader_sd": reader_sd,
        "reader_condition_sd": reader_condition_sd,
        "case_sd": case_sd, "residual_sd": residual_sd, "preference": preference,
        "position_bias": position_bias, "edit_reasons": edit_reasons, "likert_means": likert_means,
        "likert_latent_icc": likert_case_sd ** 2 / (likert_reader_sd ** 2 + likert_case_sd ** 2 + likert_noise_sd ** 2),
    }
    if site_names:  # (only then: the hash of a study without sites stays what it was)
        truth["site_time_ratios"] = dict(site_time_ratios)
    frames = {"assignments": a, "answers": ans, "drafts": drafts, "cases": cases, "readers": readers}
    if draft_errors is not None:
        truth["draft_errors"] = {k: list(v) for k, v in draft_errors.items()}
        frames["draft_errors"] = _simulated_draft_errors(a, completed & is_edit, draft_errors, r_idx, n_readers,
                                                         np.random.default_rng([seed, 15]))
    meta = {"schema_version": 1, "study_id": study_id, "seed": seed,
            "design_file_hash": hashlib.sha256(json.dumps(truth, sort_keys=True).encode()).hexdigest()[:16],
            "exported_at": "2024-07-01T00:00:00.000Z", "package_version": "simulated",
            "simulation": {"n_readers": n_readers, "n_cases": n_cases, "n_residents": n_residents,
                           "reads_per_reader": reads_per_reader, **truth}}
    return tables_from_frames(frames, meta)


def _simulated_draft_errors(a: pd.DataFrame, annotated: np.ndarray, rates: dict, r_idx: np.ndarray, n_readers: int,
                            rng: np.random.Generator) -> pd.DataFrame:
    """The marks of simulated readers: Poisson numbers of significant and other errors per annotated draft, by its
    source's rates, with a reader effect; categories at random (sets ``a['errors_annotated']``)."""
    from analysis.draft_errors import DRAFT_ERROR_COLUMNS, ERROR_CATEGORIES, NOT_AN_ERROR

    a["errors_annotated"] = pd.array(np.where(annotated, True, pd.NA), dtype="boolean")
    reader_effect = rng.normal(0, 0.3, n_readers)
    rows = []
    source = a["draft_source"].to_numpy()
    for k in np.flatnonzero(annotated):
        significant, minor = rates[source[k]]
        scale = np.exp(reader_effect[r_idx[k]])
        flags = [True] * rng.poisson(significant * scale) + [False] * rng.poisson(minor * scale)
        marks = [(str(rng.choice(list(ERROR_CATEGORIES))), flag) for flag in flags]
        if rng.random() < 1 / 3:
            marks.append((NOT_AN_ERROR, None))
        for n, (category, flag) in enumerate(marks, 1):
            rows.append({"assignment_id": a["assignment_id"].iloc[k], "draft_id": a["draft_id"].iloc[k],
                         "segment": n, "edit_kind": "replace", "draft_text": "draft words", "final_text": "final words",
                         "category": category, "significant": flag, "annotated_at": a["completed_at"].iloc[k]})
    return pd.DataFrame(rows, columns=DRAFT_ERROR_COLUMNS)


def write_export(tables: StudyTables, folder, fmt: str = "csv") -> None:
    """Write tables as an export folder (``<table>.csv`` or ``.parquet`` + ``export_meta.json``).

    Parameters
    ----------
    tables : StudyTables
    folder : str or pathlib.Path
        Created if needed.
    fmt : {'csv', 'parquet'}
    """
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("assignments", "answers", "drafts", "cases", "readers", "events", "draft_errors", "detection_marks",
                 "case_labels"):
        frame = getattr(tables, name)
        if frame is None:
            continue
        if fmt == "parquet":
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            frame.to_csv(folder / f"{name}.csv", index=False)
    (folder / "export_meta.json").write_text(json.dumps(tables.meta, indent=2, default=str))


def simulate_timed_reads(n_readers: int = 6, n_cases: int = 80, *, time_ratio: float = 1.0, reader_sd: float = 0.3,
                         reader_condition_sd: float = 0.0, case_sd: float = 0.25, residual_sd: float = 0.35,
                         base_s: float = 180.0, conditions: tuple[str, str] = ("write", "edit_model"),
                         seed: int = 0) -> pd.DataFrame:
    """Durations of one role's two-condition comparison under the CheXOne allocation, fast.

    Parameters
    ----------
    n_readers, n_cases : int
        Readers of the role; every case is read once in each condition, by two
        different readers, and each reader has the same number of cases per
        condition (within one), as the shipped design allocates residents.
    time_ratio : float
        True ratio of geometric means, ``conditions[1]`` / ``conditions[0]``.
    reader_sd, reader_condition_sd, case_sd, residual_sd : float
        SDs of the reader, reader x condition, case and residual effects on
        log(duration); reader x condition is each reader's own deviation in each
        condition (readers differ in how much the second condition helps them).
    base_s : float
        Geometric-mean duration of ``conditions[0]``.
    conditions : tuple of str
    seed : int

    Returns
    -------
    pandas.DataFrame
        ``reader_id``, ``reader_role`` (``'resident'``), ``case_id``, ``condition``,
        ``duration_s``: one row per read, ``2 * n_cases`` rows. Used by the
        type-I/coverage simulations and the power simulation.

    Examples
    --------
    >>> from analysis.simulate import simulate_timed_reads
    >>> d = simulate_timed_reads(seed=1)
    >>> len(d), bool(d.groupby("case_id")["reader_id"].nunique().eq(2).all())
    (160, True)
    """
    if n_readers < 2:
        raise ValueError("need at least 2 readers: each case is read by two different readers")
    rng = np.random.default_rng(seed)
    cases = rng.permutation(n_cases)
    writer = np.arange(n_cases) % n_readers
    # The second condition's reader is the first one shifted by a per-case offset 1..R-1, so it
    # is never the same reader and the per-reader counts stay balanced within one.
    shift = 1 + (np.arange(n_cases) // n_readers) % (n_readers - 1)
    editor = (writer + shift) % n_readers
    reader = np.concatenate([writer, editor])
    case = np.concatenate([cases, cases])
    cond = np.repeat([0, 1], n_cases)
    u = rng.normal(0, reader_sd, n_readers)
    uc = rng.normal(0, reader_condition_sd, (n_readers, 2))
    v = rng.normal(0, case_sd, n_cases)
    log_y = (np.log(base_s) + cond * np.log(time_ratio) + u[reader] + uc[reader, cond] + v[case]
             + rng.normal(0, residual_sd, 2 * n_cases))
    width = max(2, len(str(max(n_readers, n_cases))))
    return pd.DataFrame({"reader_id": [f"R{r + 1:0{width}d}" for r in reader], "reader_role": "resident",
                         "case_id": [f"C{c + 1:0{width}d}" for c in case],
                         "condition": np.asarray(conditions)[cond], "duration_s": np.exp(log_y)})


#: The findings of a simulated detection study unless told otherwise: few, so a calibration run stays quick.
SIMULATED_FINDINGS = ("Cardiomegaly", "Edema", "Pleural Effusion")


def simulate_detection_reads(n_readers: int = 5, n_cases: int = 100, *, findings: tuple[str, ...] = SIMULATED_FINDINGS,
                             conditions: tuple[str, ...] = ("none", "labels"), auc: dict | None = None,
                             prevalence: float = 0.35, reader_sd: float = 0.3, reader_condition_sd: float = 0.15,
                             case_sd: float = 0.6, case_finding_sd: float = 0.6, case_condition_sd: float = 0.3,
                             noise_sd: float = 0.6, model_auc: float = 0.85, seed: int = 0) -> pd.DataFrame:
    """The reads of a fully crossed detection study drawn from a Roe-Metz model, one row per read x finding, fast.

    Parameters
    ----------
    n_readers, n_cases : int
        Every reader reads every case in every condition.
    findings : tuple of str
    conditions : tuple of str
        The ``ai_shown`` of each condition; the first is the unaided one.
    auc : dict, optional
        True AUC of each condition ``{ai_shown: AUC}``, the mean over the population of readers of a reader's AUC
        for each finding (default 0.80 unaided, 0.85 for every aided condition).
    prevalence : float
        Probability that a case has a finding (drawn per case and finding).
    reader_sd, reader_condition_sd : float
        SDs of each reader's and reader x condition's shift of the separation between positive and negative cases
        (readers differ in skill, and in how much the AI helps them).
    case_sd, case_finding_sd, case_condition_sd, noise_sd : float
        SDs of the latent rating's case effect (shared by a case's findings, so they are correlated), case x finding
        effect, case x finding x condition effect and read-level noise.
    model_auc : float
        True AUC of the model's probabilities for every finding; the model shares the case x finding effect with the
        readers (both find the same images hard).
    seed : int

    Returns
    -------
    pandas.DataFrame
        ``reader_id``, ``case_id``, ``ai_shown``, ``finding``, ``reference`` (0/1), ``latent`` (the reader's latent
        rating), ``confidence`` (0-100, one decimal: 100 times the normal CDF of the standardised latent rating),
        ``present`` (confidence >= 50), ``model_probability`` (three decimals) and ``model_present``
        (probability >= 0.5).

    Notes
    -----
    The latent rating of reader :math:`j` in condition :math:`i` of case :math:`k` and finding :math:`f` is
    :math:`X = (\\mu_i + R_j + (TR)_{ij}) D_{kf} + C_k + C_{kf} + (TC)_{ikf} + \\epsilon_{ijkf}` (Roe & Metz 1997,
    with the reader effects on the separation so readers differ in accuracy). A reader's AUC of a finding is
    :math:`\\Phi((\\mu_i + R_j + (TR)_{ij})/\\sqrt{2\\sigma^2})` with :math:`\\sigma^2` the sum of the case and noise
    variances, so the readers' mean is :math:`\\Phi(\\mu_i/\\sqrt{2\\sigma^2 + \\sigma^2_R + \\sigma^2_{TR}})`, which
    fixes :math:`\\mu_i` from the condition's true AUC. Two conditions with the same AUC have a true difference of
    exactly 0, whatever the other parameters.

    References
    ----------
    Roe, C. A., & Metz, C. E. (1997). Dorfman-Berbaum-Metz method for statistical analysis of multireader,
    multimodality receiver operating characteristic data: validation with computer simulation. Academic
    Radiology, 4(4), 298-303.

    Examples
    --------
    >>> from analysis.simulate import simulate_detection_reads
    >>> d = simulate_detection_reads(n_readers=2, n_cases=10, seed=1)
    >>> len(d), sorted(d["ai_shown"].unique())
    (120, ['labels', 'none'])
    """
    from scipy import stats

    auc = auc or {c: (0.80 if k == 0 else 0.85) for k, c in enumerate(conditions)}
    rng = np.random.default_rng(seed)
    t, r, n, f = len(conditions), n_readers, n_cases, len(findings)
    sigma2 = case_sd ** 2 + case_finding_sd ** 2 + case_condition_sd ** 2 + noise_sd ** 2
    spread = np.sqrt(2 * sigma2 + reader_sd ** 2 + reader_condition_sd ** 2)
    mu = np.array([stats.norm.ppf(auc[c]) * spread for c in conditions])
    truth = (rng.random((n, f)) < prevalence).astype(int)
    skill = mu[:, None] + rng.normal(0, reader_sd, r)[None, :] + rng.normal(0, reader_condition_sd, (t, r))
    c_k = rng.normal(0, case_sd, n)
    c_kf = rng.normal(0, case_finding_sd, (n, f))
    c_ikf = rng.normal(0, case_condition_sd, (t, n, f))
    latent = (skill[:, :, None, None] * truth[None, None] + c_k[None, None, :, None] + c_kf[None, None]
              + c_ikf[:, None] + rng.normal(0, noise_sd, (t, r, n, f)))
    scale = np.sqrt(sigma2 + (mu.mean() / 2) ** 2)
    confidence = np.round(100 * stats.norm.cdf((latent - mu.mean() / 2) / scale), 1)
    # The model: its own separation, the readers' case x finding effect plus its own noise of the same size.
    model_sigma2 = case_finding_sd ** 2 + noise_sd ** 2
    model_mu = stats.norm.ppf(model_auc) * np.sqrt(2 * model_sigma2)
    model_latent = model_mu * truth + c_kf + rng.normal(0, noise_sd, (n, f))
    probability = np.round(stats.norm.cdf((model_latent - model_mu / 2) / np.sqrt(model_sigma2)), 3)
    ti, ri, ki, fi = (a.ravel() for a in np.meshgrid(np.arange(t), np.arange(r), np.arange(n), np.arange(f),
                                                     indexing="ij"))
    width = max(2, len(str(max(n_readers, n_cases))))
    return pd.DataFrame({
        "reader_id": [f"R{j + 1:0{width}d}" for j in ri], "case_id": [f"C{k + 1:0{width}d}" for k in ki],
        "ai_shown": np.asarray(conditions)[ti], "finding": np.asarray(findings)[fi], "reference": truth[ki, fi],
        "latent": latent.ravel(), "confidence": confidence.ravel(), "present": confidence.ravel() >= 50,
        "model_probability": probability[ki, fi], "model_present": probability[ki, fi] >= 0.5})


def simulate_detection_study(n_readers: int = 5, n_cases: int = 100, seed: int = 0, *,
                             findings: tuple[str, ...] = SIMULATED_FINDINGS, conditions: tuple[str, ...] = ("none", "labels"),
                             auc: dict | None = None, model_auc: float = 0.85, prevalence: float = 0.35,
                             unknown_reference: float = 0.0, study_id: str = "simulated-detection",
                             **effects) -> StudyTables:
    """A detection study (the ``detect`` task) with known AUCs, as the export's tables, validated like an export.

    Parameters
    ----------
    n_readers, n_cases, seed : int
    findings, conditions, auc, model_auc, prevalence
        As :func:`simulate_detection_reads`; one arm per condition, named ``detect_<ai_shown>``.
    unknown_reference : float
        Share of case x finding references left empty (not known: that case leaves that finding's analysis).
    study_id : str
    **effects
        The variance parameters of :func:`simulate_detection_reads` (``reader_sd``, ``case_sd``, ...).

    Returns
    -------
    StudyTables
        ``assignments`` (task ``detect``, ``ai_shown``), ``detection_marks``, ``case_labels``, ``cases``,
        ``readers`` and empty ``answers`` and ``drafts``; ``meta['detection']`` is a 0-100 scale with the model
        threshold 0.5 and the readers' own presence marks, ``meta['simulation']`` every true parameter.

    Examples
    --------
    >>> from analysis.simulate import simulate_detection_study
    >>> t = simulate_detection_study(n_readers=2, n_cases=10, seed=1)
    >>> len(t.detection_marks), len(t.case_labels), t.detection.findings[0]
    (120, 30, 'Cardiomegaly')
    """
    reads = simulate_detection_reads(n_readers, n_cases, findings=findings, conditions=conditions, auc=auc,
                                     model_auc=model_auc, prevalence=prevalence, seed=seed, **effects)
    one = reads.drop_duplicates(["reader_id", "case_id", "ai_shown"])[["reader_id", "case_id", "ai_shown"]]
    rng = np.random.default_rng([seed, 16])
    n = len(one)
    a = pd.DataFrame({
        "assignment_id": [f"A{k + 1:06d}" for k in range(n)], "reader_id": one["reader_id"].to_numpy(),
        "reader_role": "radiologist", "case_id": one["case_id"].to_numpy(),
        "arm": "detect_" + one["ai_shown"].to_numpy().astype(object), "task": "detect", "status": "submitted",
        "ai_shown": one["ai_shown"].to_numpy(), "draft_id": None, "draft_source": None, "a_source": None,
        "b_source": None, "preferred": None, "preferred_source": None,
        "duration_s": np.round(np.exp(rng.normal(np.log(60), 0.4, n)), 3), "shown_text": None, "final_text": None,
        "reading_session": 1, "submitted_at": "2024-06-01T10:00:00.000Z"})
    ids = a.set_index(["reader_id", "case_id", "ai_shown"])["assignment_id"]
    marks = pd.DataFrame({
        "assignment_id": ids.loc[list(zip(reads["reader_id"], reads["case_id"], reads["ai_shown"]))].to_numpy(),
        "finding": reads["finding"].to_numpy(), "present": reads["present"].to_numpy(),
        "confidence": reads["confidence"].to_numpy(), "marked_at": "2024-06-01T10:00:00.000Z"})
    labels = reads.drop_duplicates(["case_id", "finding"])[["case_id", "finding", "reference", "model_probability",
                                                             "model_present"]].reset_index(drop=True)
    labels["reference"] = labels["reference"].astype("Int64")
    if unknown_reference:
        labels.loc[rng.random(len(labels)) < unknown_reference, "reference"] = pd.NA
    case_ids = sorted(reads["case_id"].unique())
    reader_ids = sorted(reads["reader_id"].unique())
    cases = pd.DataFrame({"case_id": case_ids})
    readers = pd.DataFrame({"reader_id": reader_ids, "role": "radiologist",
                            "label": [f"Radiologist {k + 1}" for k in range(len(reader_ids))]})
    answers = pd.DataFrame(columns=["assignment_id", "question_key", "label", "value"])
    drafts = pd.DataFrame(columns=["draft_id", "case_id", "source_kind"])
    truth = {"auc": auc or {c: (0.80 if k == 0 else 0.85) for k, c in enumerate(conditions)}, "model_auc": model_auc,
             "prevalence": prevalence, "unknown_reference": unknown_reference, **effects}
    meta = {"schema_version": 1, "study_id": study_id, "seed": seed,
            "exported_at": "2024-07-01T00:00:00.000Z", "package_version": "simulated",
            "detection": {"findings": list(findings),
                          "confidence": {"min": 0, "max": 100, "min_label": "Certainly absent",
                                         "max_label": "Certainly present"},
                          "model_threshold": 0.5, "reader_threshold": None},
            "simulation": {"n_readers": n_readers, "n_cases": n_cases, **truth}}
    frames = {"assignments": a, "answers": answers, "drafts": drafts, "cases": cases, "readers": readers,
              "detection_marks": marks, "case_labels": labels}
    return tables_from_frames(frames, meta)
