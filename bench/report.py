"""Figures and how they are measured and printed."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    runs: int
    config: str
    aim: str = ""


def median_of(runs: int, measure: Callable[[], float]) -> float:
    """Median of ``runs`` measurements (each a number the caller defines, e.g. ops/s)."""
    return statistics.median(measure() for _ in range(runs))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {platform.python_version()}"


def print_figures(figures: list[Figure]) -> None:
    width = max((len(f.name) for f in figures), default=10)
    for f in figures:
        aim = f"   (aim {f.aim})" if f.aim else ""
        print(f"  {f.name:<{width}}  {f.value:>14,.1f} {f.unit:<10} median of {f.runs}; {f.config}{aim}")
