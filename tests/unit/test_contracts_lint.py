"""The contracts stay buf-lint clean (STANDARD rules). `make test` installs buf first."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "build" / "node" / "node_modules" / ".bin" / "buf"


def test_buf_lint_is_clean():
    assert BUF.exists(), "buf is installed by `make test` (npm @bufbuild/buf)"
    result = subprocess.run(
        [sys.executable, "-m", "services.common.rpc.protogen", "--lint", "protos", str(BUF)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
