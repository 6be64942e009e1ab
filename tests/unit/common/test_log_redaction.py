"""The log formatters mask credentials wherever they appear: credential-named fields,
bearer values and anything shaped like a JWT, in the message, the fields and tracebacks."""

import json
import logging

import pytest

from services.common.observability.logs import JsonFormatter, TextFormatter
from tests.support.identity import user_token

TOKEN = user_token("alice")


def record(message: str, fields: dict | None = None, exc_info=None) -> logging.LogRecord:
    entry = logging.LogRecord("t", logging.INFO, __file__, 1, message, (), exc_info)
    if fields is not None:
        entry.fields = fields
    return entry


@pytest.mark.parametrize("formatter", [JsonFormatter("test"), TextFormatter("test")], ids=["json", "text"])
def test_tokens_and_cookies_never_survive_formatting(formatter):
    lines = [
        formatter.format(record(f"calling with Bearer {TOKEN}")),
        formatter.format(record("cookie seen", {"cookie": f"__Host-mbt_session={TOKEN}", "authorization": "Bearer x"})),
        formatter.format(record("nested", {"request": {"headers": [f"__Host-mbt_session={TOKEN}"]}})),
        formatter.format(record("a bare token in text: " + TOKEN)),
    ]
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError:
        import sys

        lines.append(formatter.format(record("failed", exc_info=sys.exc_info())))
    for line in lines:
        assert TOKEN not in line and TOKEN.split(".")[1] not in line, line
        assert "[redacted]" in line


def test_json_lines_stay_json_with_the_fields_masked():
    line = JsonFormatter("test").format(record("login", {"session_token": TOKEN, "user_id": "alice"}))
    entry = json.loads(line)
    assert (entry["session_token"], entry["user_id"], entry["event"]) == ("[redacted]", "alice", "login")
