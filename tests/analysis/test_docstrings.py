"""House style of the statistics: every public statistic documents itself like pingouin, and its examples run."""

import doctest
import importlib
import inspect

import pytest

import analysis.stats as stats_pkg

MODULES = ["analysis.stats.descriptive", "analysis.stats.paired", "analysis.stats.proportions",
           "analysis.stats.agreement", "analysis.stats.bootstrap", "analysis.stats.text",
           "analysis.stats.mixed", "analysis.stats.lmm", "analysis.stats.mrmc", "analysis.stats.multiplicity",
           "analysis.simulate", "analysis.power", "analysis.report", "analysis.draft_errors", "analysis.detection"]
SECTIONS = ("Parameters", "Returns", "Notes", "References", "Examples")


@pytest.mark.parametrize("name", stats_pkg.__all__)
def test_statistic_docstring_has_pingouin_sections(name):
    func = getattr(stats_pkg, name)
    doc = inspect.getdoc(func) or ""
    required = SECTIONS if name != "pair_by_key" else ("Parameters", "Returns", "Notes")
    missing = [s for s in required if f"\n{s}\n---" not in doc]
    assert not missing, f"{name} docstring lacks {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


@pytest.mark.parametrize("module", MODULES + ["analysis.tables", "analysis.reader_study", "analysis.plan",
                                              "analysis.endpoints", "analysis.figures", "analysis.methods_text",
                                              "analysis.report_tables", "analysis.text_metrics"])
def test_module_says_its_job_in_one_sentence(module):
    doc = importlib.import_module(module).__doc__
    assert doc and doc.strip().endswith(".") and doc.count("\n") == 0


def test_analysis_imports_nothing_from_the_app():
    import subprocess
    import sys

    code = ("import sys, analysis, analysis.reader_study, analysis.report; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('study_app', 'cohorts', 'model_runtime', 'streamlit')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
