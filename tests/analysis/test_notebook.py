"""The statistician's notebook runs headless, top to bottom, on a simulated export."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "analysis" / "notebooks" / "reader_study_analysis.ipynb"


@pytest.mark.slow
def test_notebook_executes_and_writes_the_report(tmp_path, monkeypatch):
    from analysis.simulate import simulate_study, write_export

    write_export(simulate_study(seed=2), tmp_path / "export")
    monkeypatch.setenv("READERSTUDY_EXPORT", str(tmp_path / "export"))
    monkeypatch.setenv("READERSTUDY_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.setenv("READERSTUDY_N_BOOT", "100")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert (tmp_path / "report" / "report.html").exists()
    assert (tmp_path / "report" / "results.json").exists()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
