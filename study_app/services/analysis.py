"""The study's data through the analysis: the one path from the store to `analysis`, for the CLI and the console."""

from __future__ import annotations

from study_app.services.actors import Actor
from study_app.services.database import Database
from study_app.services.errors import InvalidInput, Unavailable
from study_app.services.export import build_tables, export_meta


def study_tables(db: Database, actor: Actor, study_id: str):
    """The study's tidy tables as the analysis reads them (exactly what an export would hold), validated.

    Raises InvalidInput naming the table, row and column when the data fail the analysis's checks, and
    Unavailable when the `analysis` package is missing.
    """
    try:
        from analysis import AnalysisInputError, tables_from_frames
    except ImportError as error:
        raise Unavailable(f"the analysis package is not available here ({error})") from None
    frames = build_tables(db, actor, study_id)
    try:
        return tables_from_frames(frames, export_meta(db, actor, study_id, frames))
    except AnalysisInputError as error:
        raise InvalidInput(f"the study cannot be analysed: {error}") from None


def analyse_study(db: Database, actor: Actor, study_id: str, *, seed: int | None = None, n_boot: int = 1000,
                  in_progress: bool = False):
    """Run the reader-study analysis on the study as it stands (``analysis.run_analysis``).

    Parameters
    ----------
    seed : int, optional
        Default: the study's own seed, recorded in the export, so the figures reproduce from an export too.
    in_progress : bool
        Analyse a study still running (arms without reads are left out).

    Returns
    -------
    analysis.AnalysisResult
    """
    from analysis import AnalysisInputError, run_analysis

    tables = study_tables(db, actor, study_id)
    try:
        return run_analysis(tables, seed=seed, n_boot=n_boot, require_all_arms=not in_progress)
    except AnalysisInputError as error:
        raise InvalidInput(f"the study cannot be analysed yet: {error}") from None
