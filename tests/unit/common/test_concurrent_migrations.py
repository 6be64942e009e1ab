"""Services of one process (the embedded mesh, the jobs' records opened from a worker thread)
migrate their databases from several threads at once: each must end at its head. Without the
process-wide lock Alembic's shared ``context`` fails (``KeyError: 'script'``) or crashes the
interpreter, so the migrations run in a child process here."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from alembic.script import ScriptDirectory

from services.common.persistence import migrate

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("jobs", "orders", "accounts", "activities", "matcher", "marketdata")

SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from sqlalchemy import create_engine, text
    from services.common.persistence import migrate

    folder, services = sys.argv[1], sys.argv[2:]
    failures = []

    def run(service, path):
        try:
            migrate.upgrade(service, f"sqlite:///{path}")
        except Exception as exc:
            failures.append(f"{service}: {exc!r}")

    targets = [(s, f"{folder}/{s}-{i}.db") for i in range(3) for s in services]
    threads = [threading.Thread(target=run, args=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for service, path in targets:
        with create_engine(f"sqlite:///{path}").connect() as connection:
            version = connection.execute(text(f"SELECT version_num FROM {migrate.version_table(service)}")).scalar()
            print(service, version)
    print("failures", failures)
    """
)


def test_threads_migrating_at_once_each_reach_their_head(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), *SERVICES], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "failures []", done.stdout
    heads = {}
    for line in lines[:-1]:
        service, version = line.split()
        heads.setdefault(service, set()).add(version)
    assert set(heads) == set(SERVICES)
    for service, versions in heads.items():
        [head] = versions
        script = ScriptDirectory.from_config(migrate.alembic_config(service, "sqlite://"))
        assert head == script.get_current_head(), service
