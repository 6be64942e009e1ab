"""`python -m bench [name ...]`: run every bench module (or the named ones) and print its figures.

A bench module is ``bench/<name>.py`` with ``run() -> list[Figure]``; others are helpers.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench
from bench.report import print_figures


def main(argv: list[str]) -> int:
    wanted = set(argv)
    names = [m.name for m in pkgutil.iter_modules(bench.__path__)
             if m.name not in ("report", "__main__") and not m.name.startswith("_")]
    for name in sorted(names):
        if wanted and name not in wanted:
            continue
        module = importlib.import_module(f"bench.{name}")
        if not callable(getattr(module, "run", None)):
            continue  # a helper module (bench.mesh), not a benchmark
        started = time.perf_counter()
        figures = module.run()
        print(f"\n## {name}  ({time.perf_counter() - started:.1f}s)")
        print_figures(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
