"""Report-text surface metrics per read (each draft shown against the reader's final text, and each against the reference findings) and their summary by draft source with random-reader intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.defaults import DEFAULT_SEED
from analysis.endpoints import or_digest
from analysis.stats.bootstrap import bootstrap_ci
from analysis.stats.descriptive import describe
from analysis.stats.text import bleu, bleu_signature, corpus_bleu, edit_distances, rouge_l

#: The text pairs compared: (hypothesis column, reference column). BLEU scores the first against the second;
#: the edit distances and ROUGE-L F are symmetric.
PAIRS = {
    "draft_final": ("shown_text", "final_text"),
    "draft_reference": ("shown_text", "reference_findings"),
    "final_reference": ("final_text", "reference_findings"),
}
PAIR_DESCRIPTIONS = {
    "draft_final": "the draft shown (hypothesis) against the reader's submitted text (reference): how much of the "
                   "draft survived the edit",
    "draft_reference": "the draft shown against the case's reference findings (one row per draft, not per read)",
    "final_reference": "the reader's submitted text (written from scratch or edited) against the reference findings",
}
METRICS = ("edit_chars", "edit_words", "bleu", "rouge_l")
#: The range of each metric: random-reader intervals of a mean are truncated to it.
METRIC_BOUNDS = {"edit_chars": (0.0, math.inf), "edit_words": (0.0, math.inf), "bleu": (0.0, 100.0),
                 "rouge_l": (0.0, 1.0)}
METRIC_DESCRIPTIONS = {
    "edit_chars": "character Levenshtein distance after whitespace normalisation (0 = identical)",
    "edit_words": "word Levenshtein distance (0 = identical)",
    "bleu": "sentence BLEU, sacreBLEU defaults, 0-100 (100 = identical)",
    "rouge_l": "ROUGE-L F-measure, rouge-score, 0-1 (1 = identical)",
}
#: The condition a model draft defines; the summaries compare it with every other condition of a role.
MODEL_CONDITION = "edit_model"
TABLE_COLUMNS = ["pair", "case_id", "assignment_id", "reader_id", "reader_role", "condition", "draft_source",
                 "draft_id", "hypothesis", "reference", "hypothesis_words", "reference_words", *METRICS]
#: The compared texts, kept in memory for the corpus BLEU and left out of ``text_metrics.csv``: the report folder
#: may travel further than the export, and the texts are one join away (``assignment_id``).
TEXT_COLUMNS = ["hypothesis_text", "reference_text"]
MODEL_BASED_NOTE = (
    "Model-based metrics (RadGraph F1 on clinical entities and relations, CheXbert label agreement on the 14 "
    "CheXpert observations) are not computed: they need model weights the platform does not ship. They are "
    "planned as plug-ins that run on weights a site provides locally.")


def _words(text) -> int:
    return 0 if text is None or text is pd.NA or (isinstance(text, float) and text != text) else len(str(text).split())


def text_metrics_table(reads: pd.DataFrame, cases: pd.DataFrame) -> pd.DataFrame:
    """The tidy per-read table of report-text metrics: one row per read (or draft) and text pair.

    Parameters
    ----------
    reads : pandas.DataFrame
        Counted reads (:meth:`analysis.tables.StudyTables.counted_reads`), with ``condition``, ``shown_text`` and
        ``final_text``. Only ``write`` and ``edit`` reads have texts to compare.
    cases : pandas.DataFrame
        The cases table; its optional ``reference_findings`` (imported from the cohort manifest) is the reference.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS` and :data:`TEXT_COLUMNS`: ``pair`` (a key of :data:`PAIRS`), the read's
        ids and ``condition``, ``draft_source`` (empty for ``write``), ``hypothesis`` and ``reference`` (the columns compared),
        ``hypothesis_words`` and ``reference_words`` (whitespace-separated words), and the metrics
        ``edit_chars``, ``edit_words`` (:func:`~analysis.stats.text.edit_distances`, the definition the export's
        columns use), ``bleu`` (:func:`~analysis.stats.text.bleu`, 0-100) and ``rouge_l``
        (:func:`~analysis.stats.text.rouge_l`, 0-1). ``draft_final`` rows: every submitted edit.
        ``final_reference`` rows: every submitted write or edit of a case with reference findings.
        ``draft_reference`` rows: each distinct draft shown in an edit of such a case, once (its first read's
        ids): the draft's text does not depend on who read it. ``hypothesis_text`` and ``reference_text`` are the
        two texts compared.
    """
    ref = pd.Series(dtype="string")
    if "reference_findings" in cases.columns:
        ref = cases.set_index(cases["case_id"].astype(str))["reference_findings"]
        ref = ref.loc[ref.notna() & ref.astype("string").str.strip().ne("")]
    texts = reads.loc[reads["task"].isin(["write", "edit"]) & reads["final_text"].notna()].copy()
    texts["reference_findings"] = texts["case_id"].astype(str).map(ref)
    edits = texts.loc[texts["task"].eq("edit")]
    drafts = edits.loc[edits["reference_findings"].notna()].copy()
    # One row per draft: a draft without an id (an older export) is one per case and source.
    drafts["draft_key"] = drafts["draft_id"].astype("string").fillna(
        drafts["case_id"].astype(str) + ":" + drafts["draft_source"].astype(str))
    drafts = drafts.drop_duplicates("draft_key")
    parts = {"draft_final": edits, "draft_reference": drafts,
             "final_reference": texts.loc[texts["reference_findings"].notna()]}
    rows = []
    for pair, frame in parts.items():
        hyp_col, ref_col = PAIRS[pair]
        columns = [frame[c].tolist() if c in frame else [None] * len(frame) for c in (
            "case_id", "assignment_id", "reader_id", "reader_role", "condition", "draft_source", "draft_id", hyp_col,
            ref_col)]
        for case, aid, reader, role, cond, source, draft, hyp, ref_text in zip(*columns):
            chars, words, _ = edit_distances(hyp, ref_text)
            rows.append((pair, case, aid, reader, role, cond, source, draft, hyp_col, ref_col, _words(hyp),
                         _words(ref_text), chars, words, bleu(hyp, ref_text), rouge_l(hyp, ref_text), hyp, ref_text))
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS + TEXT_COLUMNS)
    for col in ("edit_chars", "edit_words", "hypothesis_words", "reference_words"):
        table[col] = table[col].astype("Int64")
    for col in ("bleu", "rouge_l"):
        table[col] = table[col].astype(float)
    return table


def _comparisons(conditions) -> list[tuple[str, str]]:
    """The model-draft condition against each other condition of a role (first - second)."""
    present = sorted(set(conditions))
    if MODEL_CONDITION not in present:
        return []
    return [(MODEL_CONDITION, c) for c in present if c != MODEL_CONDITION]


def _per_read_block(g: pd.DataFrame) -> dict:
    out = {metric: describe(g[metric].astype(float)) for metric in METRICS}
    out["corpus_bleu"] = corpus_bleu(g["hypothesis_text"], g["reference_text"])
    return out


def summarise_text_metrics(table: pd.DataFrame, *, confidence: float = 0.95, seed: int = DEFAULT_SEED,
                           n_boot: int = 1000) -> tuple[dict, dict]:
    """Summaries of the per-read table: per read by role and condition, and per reader with OR/Hillis intervals.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`text_metrics_table`.
    confidence : float
        Level of the random-reader intervals.
    seed, n_boot : int
        The per-draft bootstrap of ``draft_reference`` (the draft does not depend on its reader, so its only
        random factor is the case).

    Returns
    -------
    (dict, dict)
        ``text_metrics`` (``pairs``, ``metrics``, ``settings``, ``reference_available``, ``n_cases_with_reference``,
        ``model_based_metrics``, and per pair: ``draft_final`` and ``final_reference`` by role and condition, each
        metric's describe keys and ``corpus_bleu``; ``draft_reference`` by draft source, each metric's describe
        keys with a per-draft bootstrap ``ci_low``/``ci_high``/``ci_method``, ``n_drafts`` and ``corpus_bleu``),
        and the OR digests for ``mrmc.text_metrics``: ``<pair>.<role>.<metric>.<condition>`` (the condition's
        mean) and ``.<first>_minus_<second>`` (the model-draft condition minus each other condition of the role).
    """
    with_ref = table.loc[table["pair"].ne("draft_final")]
    block: dict = {
        "pairs": dict(PAIR_DESCRIPTIONS), "metrics": dict(METRIC_DESCRIPTIONS),
        "settings": {"bleu_signature": bleu_signature(),
                     "rouge": "rouge-score rougeL F-measure, no stemming, its default tokenizer (lowercase, a-z0-9)",
                     "edit_distance": "Levenshtein, whitespace runs collapsed and ends stripped first"},
        "reference_available": bool(len(with_ref)),
        "n_cases_with_reference": int(with_ref["case_id"].nunique()),
        "model_based_metrics": MODEL_BASED_NOTE,
        "draft_final": {}, "final_reference": {}, "draft_reference": {},
    }
    mrmc: dict = {"draft_final": {}, "final_reference": {}}
    for pair in ("draft_final", "final_reference"):
        sub = table.loc[table["pair"].eq(pair)]
        for (role, cond), g in sub.groupby(["reader_role", "condition"]):
            block[pair].setdefault(str(role), {})[str(cond)] = _per_read_block(g)
        for role, g in sub.groupby("reader_role"):
            conds = sorted(set(g["condition"]))
            by_metric = {}
            for metric in METRICS:
                frame = g.assign(value=g[metric].astype(float)).dropna(subset=["value"])
                digests = {c: or_digest(frame, (c,), bounds=METRIC_BOUNDS[metric], label=f"{pair} {metric}: {c}")
                           for c in conds}
                for first, second in _comparisons(conds):
                    digests[f"{first}_minus_{second}"] = or_digest(
                        frame, (first, second), label=f"{pair} {metric}: {first} - {second}")
                by_metric[metric] = digests
            mrmc[pair][str(role)] = by_metric
    drafts = table.loc[table["pair"].eq("draft_reference")]
    for src, g in drafts.groupby("draft_source"):
        per = {}
        for metric in METRICS:
            values = g[metric].astype(float).dropna().to_numpy()
            d = describe(values)
            if d["n"] >= 2 and np.ptp(values) > 0:
                boot = bootstrap_ci(values, "mean", n_boot=n_boot, seed=seed, confidence=confidence)
                d.update(ci_low=boot["ci_low"], ci_high=boot["ci_high"], ci_method=boot["ci_method"])
            else:
                d.update(ci_low=float("nan"), ci_high=float("nan"), ci_method="none")
            per[metric] = d
        per["n_drafts"] = int(len(g))
        per["corpus_bleu"] = corpus_bleu(g["hypothesis_text"], g["reference_text"])
        block["draft_reference"][str(src)] = per
    return block, mrmc

