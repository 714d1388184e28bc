"""Reader-study statistics, figures and report computed from the tidy export tables only.

The names below load on first use (PEP 562), so a module that needs only ``analysis.plan`` (the study
design reads its analysis plan) does not import scipy, statsmodels and plotly: the server and the CLI
start without them.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "AnalysisResult": "analysis.reader_study", "run_analysis": "analysis.reader_study",
    "write_report": "analysis.report",
    "simulate_study": "analysis.simulate", "write_export": "analysis.simulate",
    "simulate_detection_study": "analysis.simulate", "analyse_detection": "analysis.detection",
    "AnalysisInputError": "analysis.tables", "StudyTables": "analysis.tables", "load_tables": "analysis.tables",
    "tables_from_frames": "analysis.tables",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
