"""The blinding audit's ground truth and its verdict: which cases are blinded, and whether anything a reader is
sent about them predicts where their draft came from.

The audit itself (what each reader's browser receives: pages, identifiers, URLs, sizes, states, messages,
release times) is collected by ``study_app.web.blinding_audit`` on a snapshot of the database, through the
same services, HTTP routes and page scripts a browser uses. This module says which cases to look at and what
their true source is, makes the snapshot, and tests every collected feature for association with the source.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select

from study_app.designs import draft_origin
from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database, open_database
from study_app.services.studies import get_study
from study_app.store.models import Arm, Assignment, Base, Draft, Event, Reader

DEFAULT_ALPHA = 0.05
DEFAULT_PERMUTATIONS = 5000
# Kinds of collected features: presentation (must not depend on the source: a leak if it does) and content
# (the drafts' own text, the study's subject: described, never called a leak).
PRESENTATION_KINDS = ("state", "order", "identifier", "structure", "size", "message", "timing", "release")


@dataclass(frozen=True)
class BlindedCase:
    """One case a reader must not be able to place: its true label is for the audit only.

    ``label`` is the draft's source for an edit (``model`` / ``reader``) and the source standing as Report A
    for a comparison (``model_as_a`` / ``reader_as_a``). ``group`` is what the reader cannot tell apart
    (role and task); ``released_s`` is when the case became openable, in seconds after launch (None while
    held).
    """

    reader_key: str
    reader_id: int
    case_ref: str
    group: str
    task: str
    label: str
    arm: str
    status: str
    position: int
    worklist_length: int
    reading_round: int
    released_s: float | None
    texts: tuple[str, ...] = ()


def blinded_cases(db: Database, actor: Actor, study_id: str) -> list[BlindedCase]:
    """Every assignment whose draft source a reader must not be able to tell, with its true label.

    Edit (and any one-draft) cases count when the reader's role has arms of that task with drafts of more
    than one origin; every comparison counts (which source stands as A).
    """
    require_coordinator(actor, "audit a study's blinding")
    with db.read() as session:
        study = get_study(session, study_id)
        arms = {a.id: a for a in session.scalars(select(Arm).where(Arm.study_id == study_id))}
        origins_of_group: dict[tuple[str, str], set[str]] = defaultdict(set)
        for arm in arms.values():
            for source in arm.draft_sources:
                origins_of_group[(arm.role, arm.task)].add(draft_origin(source["kind"]))
        readers = {r.id: r for r in session.scalars(select(Reader).where(Reader.study_id == study_id))}
        rows = list(session.scalars(select(Assignment).where(Assignment.study_id == study_id)))
        length: dict[int, int] = defaultdict(int)
        for a in rows:
            length[a.reader_id] += 1
        opened = defaultdict(list)
        for event in session.scalars(select(Event).where(Event.study_id == study_id, Event.kind == "round_opened")):
            opened[(event.reader_id, int(event.payload.get("round", 0)))].append(event.at)
        drafts = {d.id: d for d in session.scalars(select(Draft).where(Draft.study_id == study_id))}
        launched = study.launched_at
    cases = []
    for a in rows:
        arm = arms[a.arm_id]
        group = (arm.role, arm.task)
        if arm.task == "compare":
            origins = [draft_origin(s["kind"]) for s in arm.draft_sources]
            label = f"{origins[a.a_source_index or 0]}_as_a"
            texts = tuple(drafts[d].report for d in (a.a_draft_id, a.b_draft_id) if d is not None)
        elif len(origins_of_group[group]) > 1:
            label = draft_origin(arm.draft_sources[0]["kind"])
            texts = (drafts[a.draft_id].report,) if a.draft_id is not None else ()
        else:
            continue
        released = None
        if a.status != "pending" and launched is not None:
            moments = opened.get((a.reader_id, arm.reading_round)) or [launched]
            released = max(0.0, (max(moments) - launched).total_seconds())
        cases.append(BlindedCase(
            reader_key=readers[a.reader_id].reader_key, reader_id=a.reader_id, case_ref=a.case_ref,
            group=f"{arm.role}/{arm.task}", task=arm.task, label=label, arm=arm.key, status=a.status,
            position=a.position, worklist_length=length[a.reader_id], reading_round=arm.reading_round,
            released_s=released, texts=texts,
        ))
    return sorted(cases, key=lambda c: (c.reader_key, c.position))


def snapshot_database(db: Database, actor: Actor, out: str | Path) -> Database:
    """A private SQLite copy of the whole database at one moment, to audit without touching the study.

    SQLite is copied with its online backup API; any other backend row by row into a migrated SQLite file
    (foreign keys checked once every table is in). Opening cases in the copy changes nothing in the study.
    """
    require_coordinator(actor, "copy the study database")
    out = Path(out)
    if out.exists():
        out.unlink()
    if db.engine.dialect.name == "sqlite":
        raw = db.engine.raw_connection()
        try:
            target = sqlite3.connect(out)
            try:
                raw.driver_connection.backup(target, pages=-1)
                target.execute("PRAGMA journal_mode = DELETE")
            finally:
                target.close()
        finally:
            raw.close()
        return open_database(f"sqlite:///{out}")
    copy = open_database(f"sqlite:///{out}")
    with db.engine.connect() as source, copy.engine.connect() as target:
        # Rows go in table by table; tables refer to each other (drafts and assignments both ways), so the
        # foreign keys are checked once at the end rather than row by row.
        target.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")
        with target.begin():
            for table in Base.metadata.sorted_tables:
                rows = [dict(r._mapping) for r in source.execute(table.select())]
                if rows:
                    target.execute(table.insert(), rows)
        broken = target.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        target.rollback()
    if broken:
        copy.dispose()
        raise RuntimeError(f"the copy of the database has broken references ({broken[:3]})")
    copy.dispose()
    return open_database(f"sqlite:///{out}")


@dataclass
class FeatureVerdict:
    feature: str
    kind: str
    group: str
    n_readers: int
    n_cases: int
    n_by_label: dict
    statistic: float
    p_val: float
    p_holm: float
    exact: bool
    separates: bool
    leak: bool
    values_by_label: dict


@dataclass
class BlindingReport:
    """What the audit found: one verdict per presentation feature, and the drafts' content described."""

    study_id: str
    alpha: float
    permutations: int
    n_readers: int
    n_cases: int
    n_held: int
    verdicts: list[FeatureVerdict]
    content: pd.DataFrame
    cannot_see: list[str] = field(default_factory=list)

    @property
    def leaks(self) -> list[FeatureVerdict]:
        return [v for v in self.verdicts if v.leak]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "group": v.group, "feature": v.feature, "kind": v.kind, "readers": v.n_readers, "cases": v.n_cases,
            "by_label": ", ".join(f"{k} {n}" for k, n in sorted(v.n_by_label.items())),
            "p": v.p_val, "p_holm": v.p_holm, "exact": v.exact, "separates": v.separates, "leak": v.leak,
        } for v in self.verdicts])

    def to_dict(self) -> dict:
        return {
            "study_id": self.study_id, "alpha": self.alpha, "permutations": self.permutations,
            "n_readers": self.n_readers, "n_cases": self.n_cases, "n_held": self.n_held,
            "leaks": [v.feature for v in self.leaks],
            "verdicts": [{**vars(v), "values_by_label": {k: list(map(str, vals))[:5]
                                                          for k, vals in v.values_by_label.items()}}
                         for v in self.verdicts],
            "content": self.content.to_dict(orient="records"),
            "cannot_see": self.cannot_see,
        }


def assess(features: pd.DataFrame, *, study_id: str, alpha: float = DEFAULT_ALPHA,
           permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0, cannot_see: list[str] | None = None,
           content: pd.DataFrame | None = None) -> BlindingReport:
    """Test every presentation feature for association with the true label, within readers.

    A feature is a leak when its Holm-adjusted p-value is below ``alpha``, or when it separates the labels
    outright: a categorical feature whose values for one label never occur for the other, with at least two
    cases of each and some value shared by several cases. Such a feature names the source of every case
    once a reader has seen one of each, whatever the p-value a small study allows (four readers with three
    cases of each source cannot give an exact p below 1e-4).

    Parameters
    ----------
    features : pandas.DataFrame
        Long table, one row per (case, feature): ``group``, ``reader``, ``case_ref``, ``label``, ``feature``,
        ``kind`` (one of PRESENTATION_KINDS), ``scale`` (``categorical`` or ``numeric``), ``value``.
    alpha : float
        Family-wise error rate: a feature is a leak when its Holm-adjusted p-value (over every feature of
        the audit) is below alpha.
    permutations : int
        Monte-Carlo permutations when exact enumeration is larger.

    Returns
    -------
    BlindingReport
    """
    from analysis.stats.association import stratified_permutation_test
    from analysis.stats.multiplicity import adjust_pvalues

    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    raw = []
    for (group, feature), rows in features.groupby(["group", "feature"], sort=True):
        kind, scale = rows["kind"].iloc[0], rows["scale"].iloc[0]
        result = stratified_permutation_test(rows["value"].tolist(), rows["label"].str.startswith("model").tolist(),
                                             rows["reader"].tolist(), kind=scale, n_permutations=permutations,
                                             seed=seed)
        values_by_label = {str(label): sorted({str(v) for v in g["value"]})[:5] for label, g in rows.groupby("label")}
        value_sets = [set(map(str, g["value"])) for _, g in rows.groupby("label")]
        separates = (scale == "categorical" and len(value_sets) == 2 and not (value_sets[0] & value_sets[1])
                     and rows.groupby("label").size().min() >= 2 and rows["value"].astype(str).nunique() < len(rows))
        raw.append((group, feature, kind, rows, {**result, "separates": separates}, values_by_label))
    adjusted = adjust_pvalues([r[4]["p_val"] for r in raw], "holm") if raw else np.array([])
    verdicts = [
        FeatureVerdict(
            feature=feature, kind=kind, group=group, n_readers=int(rows["reader"].nunique()),
            n_cases=int(rows["case_ref"].nunique()), n_by_label=rows.groupby("label")["case_ref"].nunique().to_dict(),
            statistic=result["statistic"], p_val=result["p_val"], p_holm=float(p_holm), exact=result["exact"],
            separates=bool(result["separates"]), leak=bool(p_holm < alpha or result["separates"]),
            values_by_label=values_by_label,
        )
        for (group, feature, kind, rows, result, values_by_label), p_holm in zip(raw, adjusted)
    ]
    cases = features.drop_duplicates("case_ref")
    held = features[(features["feature"] == "worklist.state")]
    return BlindingReport(
        study_id=study_id, alpha=alpha, permutations=permutations, n_readers=int(cases["reader"].nunique()),
        n_cases=int(len(cases)), n_held=int(held["value"].astype(str).str.contains("next reading round").sum()),
        verdicts=verdicts, content=content if content is not None else pd.DataFrame(), cannot_see=cannot_see or [],
    )


def describe_content(cases: list[BlindedCase]) -> pd.DataFrame:
    """The drafts' own text by true label (the study's subject, so described, not tested as a leak)."""
    rows = []
    for case in cases:
        for text_ in case.texts:
            rows.append({"group": case.group, "label": case.label, "chars": len(text_), "words": len(text_.split()),
                         "lines": text_.count("\n") + 1 if text_ else 0})
    if not rows:
        return pd.DataFrame(columns=["group", "label", "drafts", "chars_mean", "words_mean", "lines_mean"])
    frame = pd.DataFrame(rows)
    out = frame.groupby(["group", "label"]).agg(drafts=("chars", "size"), chars_mean=("chars", "mean"),
                                                words_mean=("words", "mean"), lines_mean=("lines", "mean"))
    return out.round(1).reset_index()
