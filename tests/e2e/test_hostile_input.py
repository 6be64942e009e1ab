"""Hostile input at the gateway: every malformed body, wrong type, unknown field, oversized
body, bad path or query parameter, bad enum, huge number, bad decimal and absurd URL or
header is a 4xx with the error envelope, never reaches a service, and never leaks a trace."""

import json

import pytest

from tests.support.hostile import MALFORMED_DECIMALS
from tests.support.identity import rest_headers

JSON = {"Content-Type": "application/json"}
VALID_ORDER = {
    "client_order_id": "c-1",
    "symbol": "AMZN",
    "side": "buy",
    "qty": "10",
    "order_type": "limit",
    "limit_price": "220.00",
    "time_in_force": "day",
}


def order(**changes) -> bytes:
    return json.dumps({**VALID_ORDER, **changes}).encode()


REFUSED = [
    # bodies
    ("POST", "/api/mbt/orders", b"{", JSON, 400),
    ("POST", "/api/mbt/orders", b"[]", JSON, 400),
    ("POST", "/api/mbt/orders", b'"order"', JSON, 400),
    ("POST", "/api/mbt/orders", b"\xff\xfe{}", JSON, 400),
    ("POST", "/api/mbt/orders", b"[" * 100_000 + b"]" * 100_000, JSON, 413),
    ("POST", "/api/mbt/orders", b"[" * 20_000 + b"]" * 20_000, JSON, 400),
    ("POST", "/api/mbt/orders", b'{"qty": NaN}', JSON, 400),
    ("POST", "/api/mbt/orders", b'{"qty": Infinity}', JSON, 400),
    ("POST", "/api/mbt/orders", order(unknown_field=1), JSON, 400),
    ("POST", "/api/mbt/orders", order(__proto__={}), JSON, 400),
    ("POST", "/api/mbt/orders", order(qty=10), JSON, 400),
    ("POST", "/api/mbt/orders", order(qty=True), JSON, 400),
    ("POST", "/api/mbt/orders", order(qty=["10"]), JSON, 400),
    ("POST", "/api/mbt/orders", order(side="sideways"), JSON, 400),
    ("POST", "/api/mbt/orders", order(side=1), JSON, 400),
    ("POST", "/api/mbt/orders", order(legs={"a": 1}), JSON, 400),
    ("POST", "/api/mbt/orders", order(legs=[{"ratio": 2**40}]), JSON, 400),
    ("POST", "/api/mbt/orders", order(legs=[{"ratio": "x"}]), JSON, 400),
    ("POST", "/api/mbt/orders", order(legs=[{}] * 1001), JSON, 400),
    ("POST", "/api/mbt/orders", order(symbol="A" * 5000), JSON, 400),
    ("POST", "/api/mbt/orders", b'{"qty": "' + b"9" * 5000 + b'"}', JSON, 400),
    ("POST", "/api/mbt/orders", b'{"legs": [{"ratio": ' + b"9" * 5000 + b"}]}", JSON, 400),
    ("POST", "/api/mbt/orders", b"x" * 70_000, JSON, 413),
    ("POST", "/api/mbt/orders", order(), {"Content-Type": "text/plain"}, 400),
    ("POST", "/api/mbt/orders", order(), {**JSON, "Content-Length": "99999999"}, 413),
    ("PATCH", "/api/mbt/orders/ord_1", json.dumps({"order_id": 5}).encode(), JSON, 400),
    # JSON that parsers read differently, and strings that are not text
    ("POST", "/api/mbt/orders", b'{"qty": "1", "qty": "1000"}', JSON, 400),
    ("POST", "/api/mbt/orders", b'{"legs": [{"ratio": 1, "ratio": 2}]}', JSON, 400),
    ("POST", "/api/mbt/orders", order(client_order_id="\ud800"), JSON, 400),
    ("POST", "/api/mbt/orders", b'{"client_order_id": "a\\udc00b"}', JSON, 400),
    ("POST", "/api/mbt/orders", b'{"\\ud800": "1"}', JSON, 400),
    ("POST", "/api/mbt/orders", b'{"legs": [{"symbol": "\\udfff"}]}', JSON, 400),
    # decimal strings
    *[("POST", "/api/mbt/orders", order(qty=bad), JSON, 400) for bad in MALFORMED_DECIMALS],
    ("PATCH", "/api/mbt/orders/ord_1", json.dumps({"limit_price": "-"}).encode(), JSON, 400),
    # query parameters
    ("GET", "/api/mbt/orders?status=sideways", b"", {}, 400),
    ("GET", "/api/mbt/orders?page_size=ten", b"", {}, 400),
    ("GET", "/api/mbt/orders?page_size=99999999999999999999", b"", {}, 400),
    ("GET", "/api/mbt/orders?page_size=1e3", b"", {}, 400),
    ("GET", "/api/mbt/orders?unknown=1", b"", {}, 400),
    ("GET", "/api/mbt/orders?status.x=1", b"", {}, 400),
    ("GET", "/api/mbt/activities?from=yesterday", b"", {}, 400),
    ("GET", "/api/mbt/activities?from=2024-13-45T00:00:00Z", b"", {}, 400),
    ("GET", "/api/mbt/activities?type=everything", b"", {}, 400),
    ("GET", "/api/mbt/positions?include_closed=maybe", b"", {}, 400),
    ("GET", "/api/mbt/calendar?from=2024-02-30", b"", {}, 400),
    ("GET", "/api/mbt/orders?page_token=" + "x" * 5000, b"", {}, 400),
    ("POST", "/api/mbt/orders?status=filled", order(), JSON, 400),
    # path parameters, URLs, headers
    ("GET", "/api/mbt/orders/" + "x" * 300, b"", {}, 400),
    ("GET", "/api/mbt/orders/" + "x" * 9000, b"", {}, 414),
    ("GET", "/api/mbt/orders?symbol=" + "A" * 9000, b"", {}, 414),
    ("GET", "/api/mbt/orders", b"", {"X-Padding": "p" * 20_000}, 431),
    ("PUT", "/api/mbt/orders/ord_1", b"", {}, 405),
    ("GET", "/api/mbt/orders/a/b/c", b"", {}, 404),
    ("GET", "/api/mbt/orders/%ED%A0%80", b"", {}, 400),
    ("GET", "/api/mbt/orders/%FF", b"", {}, 400),
    ("GET", "/api/mbt/orders?symbol=%C0%AF", b"", {}, 400),
    ("GET", "/api/mbt/..%2f..%2fetc%2fpasswd", b"", {}, 404),
]


@pytest.mark.parametrize(
    "method, path, body, headers, status", REFUSED, ids=[f"{m} {p[:60]} {b[:40]!r}" for m, p, b, _, _ in REFUSED]
)
async def test_hostile_requests_are_refused_at_the_gateway_with_the_envelope(
    client, upstream, method, path, body, headers, status
):
    response = await client.request(method, path, content=body or None, headers={**rest_headers("alice"), **headers})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"] and error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert upstream.api_calls() == []


# (as sent in the path, as the service receives it). Whether such an id exists is the
# service's to say (tests/e2e/test_isolation.py: not_found); the gateway only decodes it.
ODD_IDS = [
    ("ünïcødé", "ünïcødé"),
    ("%00", "\x00"),
    ("a%0Ab", "a\nb"),
    ("<script>", "<script>"),
    ("' OR 1=1 --", "' OR 1=1 --"),
    ("😀" * 10, "😀" * 10),
    ("%E2%80%AE", "\u202e"),
    ("%25", "%"),
    ("a b", "a b"),
]


@pytest.mark.parametrize("odd, decoded", ODD_IDS)
async def test_odd_characters_in_a_path_parameter_reach_the_service_decoded_and_unchanged(
    client, upstream, odd, decoded
):
    response = await client.get(f"/api/mbt/orders/{odd}", headers=rest_headers("alice"))
    assert response.status_code == 200, response.text  # the scripted upstream's empty success
    [(method, request, _)] = upstream.api_calls()
    assert (method, request.order_id) == ("/mbt.orders.v1.OrdersService/GetOrder", decoded)


async def test_a_dot_segment_is_no_id_and_routes_nowhere(client, upstream):
    response = await client.get("/api/mbt/orders/..", headers=rest_headers("alice"))
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    assert upstream.api_calls() == []


async def test_valid_decimal_strings_pass_through_unchanged(client, upstream):
    for qty in ("10", "0.5", "-3", "12345678901234.0123456789", ""):
        response = await client.post(
            "/api/mbt/orders", content=order(qty=qty), headers={**rest_headers("alice"), **JSON}
        )
        assert response.status_code == 200, (qty, response.text)
        assert upstream.api_calls()[-1][1].qty == qty


async def test_a_body_that_lies_about_its_length_is_cut_at_the_limit(client, upstream):
    async def chunks():
        for _ in range(100):
            yield b"x" * 1024

    response = await client.post("/api/mbt/orders", content=chunks(), headers={**rest_headers("alice"), **JSON})
    assert response.status_code == 413
    assert upstream.api_calls() == []
