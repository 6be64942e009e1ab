"""`python -m gateway` serves the REST gateway."""

import sys

import uvicorn

from gateway.app import build_app
from services.common import logs
from services.common.config import ConfigError, Settings


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}")
        return 2
    logs.configure("gateway", settings.log_level, settings.log_format)
    uvicorn.run(build_app(settings), host=settings.bind_host, port=settings.gateway_port, log_config=None,
                access_log=False, server_header=False, timeout_graceful_shutdown=int(settings.grace_seconds))
    return 0


sys.exit(main())
