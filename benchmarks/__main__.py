"""Runs every benchmarks/bench_*.py module's main() and prints its figures as JSON lines.

Usage: python -m benchmarks [NAME ...]   (NAME: e.g. images, drafting, analysis)
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(p.stem for p in here.glob("bench_*.py"))
    wanted = [f"bench_{n}" if not n.startswith("bench_") else n for n in argv]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(n[6:] for n in names)}", file=sys.stderr)
        return 2
    print(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                      "cpus": __import__("os").cpu_count()}))
    for name in wanted or names:
        module = importlib.import_module(f"benchmarks.{name}")
        started = time.perf_counter()
        figures = module.main()
        print(json.dumps({"benchmark": name, "wall_s": round(time.perf_counter() - started, 2), **figures}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
