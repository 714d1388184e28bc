"""Reader-study statistics, figures and report computed from the tidy export tables only."""

from analysis.reader_study import AnalysisResult, run_analysis
from analysis.report import write_report
from analysis.simulate import simulate_study, write_export
from analysis.tables import AnalysisInputError, StudyTables, load_tables, tables_from_frames

__all__ = ["AnalysisInputError", "AnalysisResult", "StudyTables", "load_tables", "run_analysis",
           "simulate_study", "tables_from_frames", "write_export", "write_report"]
