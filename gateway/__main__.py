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
    # Keep-alive longer than the clients' and proxies' idle timeouts, so the gateway is not
    # the side that closes a connection a client is about to reuse.
    uvicorn.run(build_app(settings), host=settings.bind_host, port=settings.gateway_port, log_config=None,
                access_log=False, server_header=False, timeout_graceful_shutdown=int(settings.grace_seconds),
                timeout_keep_alive=75)
    return 0


sys.exit(main())
