"""The tools around MBT answer --help, refuse what they do not know with exit code 2, and
run only what was asked: `python -m bench` and `make bench`."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ("expiration", "marketdata", "matcher", "matcher_options", "orders")


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_bench_help_lists_every_benchmark():
    result = run(sys.executable, "-m", "bench", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m bench")
    for name in BENCHMARKS:
        assert f"\n  {name} " in result.stdout


def test_an_unknown_benchmark_is_refused_with_the_names_that_exist():
    result = run(sys.executable, "-m", "bench", "matcher", "nosuch")
    assert result.returncode == 2
    assert result.stdout == ""  # nothing ran
    assert "no benchmark named nosuch" in result.stderr and "matcher" in result.stderr


def test_make_bench_runs_only_the_named_benchmarks():
    result = run("make", "-n", "bench", "matcher", "orders")
    assert result.returncode == 0, result.stderr
    assert "-m bench matcher orders" in result.stdout
