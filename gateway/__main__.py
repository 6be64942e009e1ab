"""`python -m gateway` serves the REST gateway."""

import sys

import uvicorn

from gateway import serving
from gateway.app import build_app
from services.common.config import ConfigError, Settings
from services.common.observability import logs


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}")
        return 2
    logs.configure("gateway", settings.log_level, settings.log_format)
    server = uvicorn.Server(serving.config(build_app(settings), settings))
    server.run()
    return 0 if server.started else 1


sys.exit(main())
