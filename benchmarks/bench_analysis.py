"""Benchmark P5 (paper-sized full analysis, OR/Hillis for every endpoint, <= 5 s) and P6 (100 readers x 5,000 cases, <= 60 s, <= 4 GB)."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

P5 = {"n_readers": 11, "n_cases": 80, "reads_per_reader": 46}
P6 = {"n_readers": 100, "n_cases": 5000, "reads_per_reader": 1000}


def _current_rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def run_scenario(name: str, repeats: int) -> dict:
    """Simulate one scenario (not timed), then time run_analysis (the plan's endpoints, OR/Hillis for
    every endpoint, 1,000 resamples, ICCs, mixed models, figures) and write_report; returns figures
    incl. the process's peak RSS."""
    from analysis import run_analysis, simulate_study, write_report

    params = P5 if name == "P5" else P6
    tables = simulate_study(seed=0, **params)
    rss_data = _current_rss_mb()
    times, report_times = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run_analysis(tables, n_boot=1000)
        times.append(time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            write_report(result, tmp)
            report_times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    mixed = result.results["duration"]["resident"]["comparisons"]["write_vs_edit_model"]["mixed_model"]
    mrmc = result.results["mrmc"]

    def count(node):
        if isinstance(node, dict):
            return 1 if "conclusions" in node or ("error" in node and "label" in node) else sum(
                count(v) for v in node.values())
        return 0

    return {
        "scenario": name, "reads": result.results["design"]["n_reads"], "repeats": repeats,
        "analysis_s_median": round(statistics.median(times), 2), "analysis_s_all": [round(t, 2) for t in times],
        "report_s_median": round(statistics.median(report_times), 2),
        "rss_after_simulation_mb": round(rss_data, 0), "peak_rss_mb": round(peak, 0),
        "mixed_model_reads": mixed.get("n_reads"), "mixed_model_subsampled": mixed.get("subsampled"),
        "or_analyses": count(mrmc) + sum(1 for e in result.results["endpoints"] if e.get("or")),
        "endpoints": len(result.results["endpoints"]),
    }


def main() -> dict:
    """Run P5 (median of 5) and P6 (median of 3), each in a fresh process so peak memory is its own.

    Returns
    -------
    dict
        ``P5_*`` and ``P6_*`` figures and whether each target is met.
    """
    figures: dict = {}
    for name, repeats, limit_s in (("P5", 5, 5.0), ("P6", 3, 60.0)):
        out = subprocess.run([sys.executable, __file__, name, str(repeats)], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[1])
        res = json.loads(out.stdout.strip().splitlines()[-1])
        for key, value in res.items():
            if key != "scenario":
                figures[f"{name}_{key}"] = value
        figures[f"{name}_target_s"] = limit_s
        figures[f"{name}_met"] = res["analysis_s_median"] <= limit_s and (name == "P5" or res["peak_rss_mb"] <= 4096)
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps(run_scenario(sys.argv[1], int(sys.argv[2]))))
    else:
        print(json.dumps(main(), indent=2))
