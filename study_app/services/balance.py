"""A study's allocation balance, as `study describe` and the console's Launch page show it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import select

from study_app.designs import draft_origin
from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.release import reader_rounds
from study_app.services.studies import get_study, StudySummary, summarise
from study_app.store.models import Arm, Assignment, Case, Reader

@dataclass
class StudyBalance:
    """The allocation's balance, as `study describe` prints it."""

    summary: StudySummary
    reads_per_case: pd.DataFrame  # index case, columns arms: number of readers
    reads_per_reader: pd.DataFrame  # index reader, columns arms: number of cases
    ab_balance: pd.DataFrame  # per compare arm and reader: model / reader as A, overall and per worklist half
    overlap: pd.DataFrame  # reader x reader: cases both read (any arm)
    rounds: pd.DataFrame = field(default_factory=pd.DataFrame)  # per arm: its reading round and what it waits on
    reader_rounds: pd.DataFrame = field(default_factory=pd.DataFrame)  # per reader and round: open or waiting

    @property
    def readers_per_case_spread(self) -> pd.DataFrame:
        """Per arm: how many cases it reads, and the fewest and most readers of one of those cases.

        Over the arm's own cases only: an arm that samples 20 of 80 cases has 60 cases with no reader of it, which
        says nothing about its overlap (the Launch page used to show "fewest readers per case 0" for it).
        """
        rows = []
        for arm in self.reads_per_case.columns:
            read = self.reads_per_case[arm][self.reads_per_case[arm] > 0]
            rows.append({"arm": arm, "cases": int(len(read)),
                         "fewest readers per case": int(read.min()) if len(read) else 0,
                         "most readers per case": int(read.max()) if len(read) else 0})
        return pd.DataFrame(rows, columns=["arm", "cases", "fewest readers per case", "most readers per case"])


def _opens_when(arm: Arm, by_key: dict[str, Arm]) -> str:
    waits = sorted({s["arm"] for s in arm.draft_sources if s["kind"] == "arm"})
    peers = sorted(k for k, other in by_key.items() if other.key != arm.key and other.role == arm.role
                   and other.task == arm.task and other.reading_round == arm.reading_round
                   and any(s["kind"] == "arm" for s in other.draft_sources))
    if waits:
        return "per reader, when every report it needs from " + ", ".join(waits) + " is submitted"
    if peers:
        return "with " + ", ".join(peers) + " (same role and task: one round)"
    return "at launch" if not arm.draft_sources or arm.reading_round == 1 else "with its round"


def describe_study(db: Database, actor: Actor, study_id: str) -> StudyBalance:
    require_coordinator(actor, "describe a study")
    with db.read() as session:
        study = get_study(session, study_id)
        rows = session.execute(
            select(Reader.reader_key, Reader.role, Case.case_key, Arm.key, Arm.task, Arm.draft_sources,
                   Assignment.a_source_index, Assignment.position)
            .join(Reader, Assignment.reader_id == Reader.id)
            .join(Case, Assignment.case_id == Case.id)
            .join(Arm, Assignment.arm_id == Arm.id)
            .where(Assignment.study_id == study_id)
            .order_by(Arm.ordinal, Case.id, Reader.id)
        ).all()
        arm_keys = [a.key for a in study.arms]
        by_key = {a.key: a for a in study.arms}
        rounds = pd.DataFrame(
            [{"round": a.reading_round, "arm": a.key, "role": a.role, "task": a.task,
              "drafts": ", ".join(f"arm:{s['arm']}" if s["kind"] == "arm" else s["kind"] for s in a.draft_sources)
              or "none", "opens": _opens_when(a, by_key)} for a in study.arms],
            columns=["round", "arm", "role", "task", "drafts", "opens"],
        ).sort_values(["round", "role", "arm"], kind="stable")
        readers = list(session.scalars(select(Reader).where(Reader.study_id == study_id).order_by(Reader.id)))
        reader_round_rows = [
            {"reader": r.reader_key, "session": status.reading_session, "round": status.reading_round,
             "cases": status.n_cases, "open": status.n_open, "drafts_missing": status.n_drafts_missing,
             "waits_on": ", ".join(status.waits_on_arms + (("earlier sessions and washout",)
                                                           if status.held_by_session else ()))}
            for r in readers for status in reader_rounds(session, r.id)
        ]
        reader_keys = [r.reader_key for r in readers]
        summary = summarise(session, study)
    frame = pd.DataFrame(rows, columns=["reader", "role", "case", "arm", "task", "sources", "a_source_index",
                                        "position"])
    per_case = pd.crosstab(frame["case"], frame["arm"]).reindex(columns=arm_keys, fill_value=0)
    per_reader = pd.crosstab(frame["reader"], frame["arm"]).reindex(index=reader_keys, columns=arm_keys, fill_value=0)
    length = frame.groupby("reader").size()
    ab_rows = []
    for (arm, reader), group in frame[frame["task"] == "compare"].groupby(["arm", "reader"], sort=False):
        sources = group["sources"].iloc[0]
        origins = [draft_origin(s["kind"]) for s in sources]
        model_a = group["a_source_index"].map(lambda i: origins[int(i)] == "model")
        first_half = group["position"] <= length[reader] / 2
        ab_rows.append({
            "arm": arm, "reader": reader,
            "model_as_a": int(model_a.sum()), "reader_as_a": int((~model_a).sum()),
            "model_as_a_first_half": int(model_a[first_half].sum()), "first_half": int(first_half.sum()),
            "model_as_a_second_half": int(model_a[~first_half].sum()), "second_half": int((~first_half).sum()),
        })
    ab = pd.DataFrame(ab_rows, columns=["arm", "reader", "model_as_a", "reader_as_a", "model_as_a_first_half",
                                        "first_half", "model_as_a_second_half", "second_half"])
    cases_of: dict[str, set[str]] = defaultdict(set)
    for reader, case in zip(frame["reader"], frame["case"]):
        cases_of[reader].add(case)
    overlap = pd.DataFrame(
        [[len(cases_of[a] & cases_of[b]) for b in reader_keys] for a in reader_keys],
        index=reader_keys,
        columns=reader_keys,
    )
    reader_rounds_frame = pd.DataFrame(reader_round_rows,
                                       columns=["reader", "session", "round", "cases", "open", "drafts_missing",
                                                "waits_on"])
    return StudyBalance(summary, per_case, per_reader, ab, overlap, rounds.reset_index(drop=True), reader_rounds_frame)
