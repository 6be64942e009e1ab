"""`python -m services.jobs worker` runs the jobs worker, `python -m services.jobs scheduler`
the market-clock scheduler (each its own process)."""

import asyncio
import sys

from services.common.config import ConfigError, Settings
from services.common.observability import logs
from services.jobs import scheduler, worker

ROLES = ("worker", "scheduler")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ROLES:
        print("usage: python -m services.jobs worker|scheduler", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(f"jobs-{argv[0]}", settings.log_level, settings.log_format)
    if argv[0] == "worker":
        worker.run(settings)
    else:
        asyncio.run(scheduler.serve(settings))
    return 0


sys.exit(main(sys.argv[1:]))
