"""Structured logs: one JSON object per line with the request id; never a secret."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

from services.common.rpc import context

_SECRET_KEYS = re.compile(r"(authorization|cookie|token|secret|password|api[_-]?key|credential)", re.I)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


K = TypeVar("K")


@overload
def redact(value: str) -> str: ...
@overload
def redact(value: dict[K, Any]) -> dict[K, object]: ...
@overload
def redact(value: object) -> object: ...
def redact(value: object) -> object:
    """Mask anything that looks like a credential, recursively."""
    if isinstance(value, dict):
        return {k: ("[redacted]" if _SECRET_KEYS.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _JWT.sub("[redacted]", _BEARER.sub(r"\1[redacted]", value))
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        rid = context.request_id()
        if rid:
            entry["request_id"] = rid
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(redact(fields))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.msg = redact(record.getMessage())
        record.args = ()
        line = redact(super().format(record))  # the traceback too, not only the message
        fields = getattr(record, "fields", None)
        rid = context.request_id()
        extras = {**({"request_id": rid} if rid else {}), **(redact(fields) if fields else {})}
        return line + ("" if not extras else " " + " ".join(f"{k}={v}" for k, v in extras.items()))


def configure(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("sqlalchemy.engine", "alembic.runtime.migration", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def fields(**values: object) -> dict:
    """``log.info("order accepted", extra=fields(order_id=...))``."""
    return {"fields": values}
