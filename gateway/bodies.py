"""Reading a request body: at most ``MAX_BODY_BYTES``, ``application/json`` only, strict
JSON (no NaN or Infinity), an empty body being ``{}``."""

from __future__ import annotations

import json

from starlette.requests import Request

from gateway.transcoding import InvalidInput

MAX_BODY_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    pass


async def read_json(request: Request) -> object:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise BodyTooLarge()
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge()
    if not body.strip():
        return {}
    if content_type not in ("application/json", ""):
        raise InvalidInput("body", "Content-Type must be application/json")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidInput("body", "the request body is not valid JSON") from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")
