"""Reading a request body: at most ``MAX_BODY_BYTES``, ``application/json`` only, strict
JSON (no NaN or Infinity, no key twice in one object, no string that is not Unicode text
such as a lone UTF-16 surrogate escape ``"\\ud800"``), an empty body being ``{}``."""

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
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except InvalidInput:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidInput("body", "the request body is not valid JSON") from None
    _check_text(data)
    return data


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object; a key given twice is refused (parsers disagree on which one wins)."""
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise InvalidInput(key, f"{key[:64]!r} appears twice in one JSON object")
        result[key] = value
    return result


def _check_text(data: object) -> None:
    """Every key and string is Unicode text: a JSON escape of a lone surrogate parses into a
    Python string that cannot be encoded, so it is refused here, naming where it is."""
    pending: list[tuple[object, str]] = [(data, "body")]
    while pending:
        value, path = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _encodable(key, path)
                pending.append((item, key))
        elif isinstance(value, list):
            pending.extend((item, path) for item in value)
        elif isinstance(value, str):
            _encodable(value, path)


def _encodable(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(path, f"{path[:64]!r} is not valid Unicode text (a lone surrogate)") from None
