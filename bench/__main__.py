"""`python -m bench [name ...]`: run every benchmark (or the named ones) and print its figures.

A benchmark is a module ``bench/<name>.py`` with ``run() -> list[Figure]``; the others are
helpers. ``make bench [name ...]`` runs this.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from types import ModuleType

import bench
from bench.report import print_figures


def benchmarks() -> dict[str, ModuleType]:
    found = {}
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda info: info.name):
        if info.name in ("report", "__main__") or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "run", None)):  # else a helper (bench.mesh)
            found[info.name] = module
    return found


def summary(module: ModuleType) -> str:
    """The first sentence of a benchmark's docstring."""
    paragraph = " ".join((module.__doc__ or "").strip().split("\n\n")[0].split())
    return paragraph.split(". ")[0].rstrip(".") + "."


def parser(found: dict[str, ModuleType]) -> argparse.ArgumentParser:
    width = max(map(len, found), default=0)
    listing = "\n".join(f"  {name:<{width}}  {summary(module)}" for name, module in found.items())
    root = argparse.ArgumentParser(
        prog="python -m bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run MBT's benchmarks and print their figures (each the median of several runs). "
        "`make bench [name ...]` does the same.",
        epilog=f"benchmarks:\n{listing}",
    )
    root.add_argument("names", nargs="*", metavar="name", help="benchmarks to run (default: all)")
    return root


def main(argv: list[str]) -> int:
    found = benchmarks()
    cli = parser(found)
    wanted = cli.parse_args(argv).names
    unknown = [name for name in wanted if name not in found]
    if unknown:
        cli.error(f"no benchmark named {', '.join(unknown)} (choose from {', '.join(found)})")
    for name, module in found.items():
        if wanted and name not in wanted:
            continue
        started = time.perf_counter()
        figures = module.run()
        print(f"\n## {name}  ({time.perf_counter() - started:.1f}s)")
        print_figures(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
