"""Where a running study stands: per reader and arm (and site), time per case, and readers who have stalled."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pandas as pd
from sqlalchemy import func, select

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.release import study_schedule
from study_app.services.studies import get_study
from study_app.store.models import Arm, Assignment, Case, Event, Reader, Response

STATES = ("completed", "submitted", "in_progress", "ready", "pending")
SCHEDULE_COLUMNS = ["reader", "role", "session", "state", "opens_at", "opened_at", "cases", "done"]
SITE_COLUMNS = ["case_site", "reader_site", *STATES]


@dataclass
class StudyProgress:
    by_reader: pd.DataFrame  # reader, role, arm, and one column per assignment status
    by_arm: pd.DataFrame  # arm, and one column per status
    durations: pd.DataFrame  # reader, arm, duration_s of each submitted case
    stalled: pd.DataFrame  # reader, remaining, last_activity, idle_hours
    total: int
    completed: int
    # With [sessions]: per reader and reading session, its state, when it opens (launch for the first; the end
    # of the washout for a later one, once the earlier sessions are done), when it opened, cases and cases done.
    schedule: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SCHEDULE_COLUMNS))
    # In a multi-site study (any reader or case with a site): per site of the case and site of the reader, one column
    # per status. Empty when nobody and nothing has a site.
    by_site: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SITE_COLUMNS))

    @property
    def schedule_display(self) -> pd.DataFrame:
        """The schedule with its times as text in UTC to the minute (what the console and the CLI print)."""
        shown = self.schedule.copy()
        for column in ("opens_at", "opened_at"):
            shown[column] = [at.strftime("%Y-%m-%d %H:%M") if pd.notna(at) else "" for at in shown[column]]
        return shown

    @property
    def duration_summary(self) -> pd.DataFrame:
        """Per arm: the number of submitted cases and the time per case (seconds): ``n``, ``mean``, ``min``,
        ``q1``, ``median``, ``q3``, ``max``, and the box plot's whiskers ``lower``/``upper`` (the furthest read
        within 1.5 interquartile ranges, Tukey's rule).

        A box plot of thousands of reads drawn from these numbers sends a few per arm to the browser instead of
        every read (the Progress page took seconds to draw at 50 readers x 3,000 cases).
        """
        columns = ["arm", "n", "mean", "min", "q1", "median", "q3", "max", "lower", "upper"]
        rows = []
        for arm, values in self.durations.dropna(subset=["duration_s"]).groupby("arm", sort=True)["duration_s"]:
            q1, median, q3 = values.quantile([0.25, 0.5, 0.75]).tolist()
            iqr = q3 - q1
            rows.append({"arm": arm, "n": int(values.size), "mean": float(values.mean()), "min": float(values.min()),
                         "q1": q1, "median": median, "q3": q3, "max": float(values.max()),
                         "lower": float(values[values >= q1 - 1.5 * iqr].min()),
                         "upper": float(values[values <= q3 + 1.5 * iqr].max())})
        return pd.DataFrame(rows, columns=columns)


def study_progress(db: Database, actor: Actor, study_id: str, *, stalled_after: timedelta = timedelta(hours=48)) -> StudyProgress:
    require_coordinator(actor, "see a study's progress")
    with db.read() as session:
        study = get_study(session, study_id)
        schedule = pd.DataFrame(
            [{"reader": s.reader_key, "role": s.role, "session": s.reading_session, "state": s.state,
              "opens_at": s.opens_at, "opened_at": s.opened_at, "cases": s.n_cases, "done": s.n_completed}
             for s in study_schedule(session, study, db.now())] if study.settings.get("sessions") else [],
            columns=SCHEDULE_COLUMNS)
        counts = session.execute(
            select(Reader.reader_key, Reader.role, Arm.key, Assignment.status, func.count())
            .join(Reader, Assignment.reader_id == Reader.id)
            .join(Arm, Assignment.arm_id == Arm.id)
            .where(Assignment.study_id == study_id)
            .group_by(Reader.reader_key, Reader.role, Arm.key, Assignment.status)
        ).all()
        site_counts = session.execute(
            select(Case.site, Reader.site, Assignment.status, func.count())
            .join(Reader, Assignment.reader_id == Reader.id)
            .join(Case, Assignment.case_id == Case.id)
            .where(Assignment.study_id == study_id)
            .group_by(Case.site, Reader.site, Assignment.status)
        ).all()
        durations = session.execute(
            select(Reader.reader_key, Arm.key, Response.duration_s)
            .join(Assignment, Response.assignment_id == Assignment.id)
            .join(Reader, Assignment.reader_id == Reader.id)
            .join(Arm, Assignment.arm_id == Arm.id)
            .where(Assignment.study_id == study_id)
        ).all()
        last_seen = dict(session.execute(
            select(Reader.reader_key, func.max(Event.at))
            .join(Reader, Event.reader_id == Reader.id)
            .where(Event.study_id == study_id, Event.actor.like("reader:%"))
            .group_by(Reader.reader_key)
        ).all())
    frame = pd.DataFrame(counts, columns=["reader", "role", "arm", "status", "n"])
    # Counts are whole numbers: summed, not averaged (pivot_table's default mean printed 3.0).
    by_reader = (frame.pivot_table(index=["reader", "role", "arm"], columns="status", values="n", aggfunc="sum",
                                   fill_value=0)
                 .reindex(columns=list(STATES), fill_value=0).astype(int).reset_index())
    by_arm = (frame.pivot_table(index="arm", columns="status", values="n", aggfunc="sum", fill_value=0)
              .reindex(columns=list(STATES), fill_value=0).astype(int).reset_index())
    by_reader.columns.name = by_arm.columns.name = None
    by_site = pd.DataFrame(columns=SITE_COLUMNS)
    sites = pd.DataFrame(site_counts, columns=["case_site", "reader_site", "status", "n"])
    if sites[["case_site", "reader_site"]].notna().any().any():
        sites[["case_site", "reader_site"]] = sites[["case_site", "reader_site"]].fillna("(none)")
        by_site = (sites.pivot_table(index=["case_site", "reader_site"], columns="status", values="n", aggfunc="sum",
                                     fill_value=0)
                   .reindex(columns=list(STATES), fill_value=0).astype(int).reset_index())
        by_site.columns.name = None
    remaining = (frame[frame.status.isin(["ready", "in_progress", "submitted"])].groupby("reader")["n"].sum())
    now = db.now()
    stalled_rows = []
    for reader, left in remaining.items():
        seen = last_seen.get(reader)
        seen = seen.replace(tzinfo=now.tzinfo) if seen is not None and seen.tzinfo is None else seen
        if seen is None or now - seen > stalled_after:
            stalled_rows.append({"reader": reader, "remaining": int(left), "last_activity": seen,
                                 "idle_hours": None if seen is None else round((now - seen).total_seconds() / 3600, 1)})
    return StudyProgress(
        by_reader=by_reader,
        by_arm=by_arm,
        durations=pd.DataFrame(durations, columns=["reader", "arm", "duration_s"]),
        stalled=pd.DataFrame(stalled_rows, columns=["reader", "remaining", "last_activity", "idle_hours"]),
        total=int(frame.n.sum()),
        completed=int(frame[frame.status == "completed"].n.sum()),
        schedule=schedule,
        by_site=by_site,
    )
