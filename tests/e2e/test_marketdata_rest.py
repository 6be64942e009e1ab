"""Market data through the gateway: quotes (delayed for a Free user), symbols, chains,
clock, calendar and dividends as REST envelopes, and clear errors for bad symbols and
bad windows."""

import pytest

from tests.support.identity import rest_headers
from tests.support.mesh import mesh_settings, start_mesh

USER = rest_headers("alice")  # a Free user


@pytest.fixture
async def mesh(databases, tmp_path):
    mesh = await start_mesh(mesh_settings(databases, tmp_path, MBT_REPLAY_MODE="stepped"))
    yield mesh
    await mesh.stop()


async def get(mesh, path, **params):
    return await mesh.http.get(path, params=params, headers=USER)


async def test_quotes_symbols_chain_clock_calendar_and_dividends_over_rest(mesh):
    quote = await get(mesh, "/api/mbt/quotes/amzn")
    assert quote.status_code == 200, quote.text
    data = quote.json()["data"]
    assert (data["symbol"], data["condition"], data["source"], data["delayed"]) == ("AMZN", "usable", "replay", True)
    assert data["quote_at"] <= "2012-06-21T13:45:00Z" and data["bid_price"] and data["sequence"]

    quotes = await get(mesh, "/api/mbt/quotes", symbols="AMZN,GOOG")
    assert [q["symbol"] for q in quotes.json()["data"]] == ["AMZN", "GOOG"]

    symbol = (await get(mesh, "/api/mbt/symbols/SPY230915P00440000")).json()["data"]
    assert (
        symbol["asset_class"],
        symbol["option_type"],
        symbol["strike_price"],
        symbol["expiration_date"],
        symbol["multiplier"],
    ) == ("us_option", "put", "440.00", "2023-09-15", "100")

    chain = await get(mesh, "/api/mbt/options/chain", underlying="SPY", expiry="2023-09-15")
    body = chain.json()["data"]
    assert body["source"] == "snapshot" and body["as_of"] == "2023-09-14T20:31:00Z" and body["contracts"]
    assert {c["expiration_date"] for c in body["contracts"]} == {"2023-09-15"}

    clock = (await get(mesh, "/api/mbt/clock")).json()["data"]
    assert (clock["now"], clock["is_open"], clock["next_close_at"]) == (
        "2012-06-21T14:00:00Z",
        True,
        "2012-06-21T20:00:00Z",
    )
    assert clock["state"]["mode"] == "stepped"

    days = (await get(mesh, "/api/mbt/calendar", **{"from": "2012-07-02", "to": "2012-07-05"})).json()["data"]
    assert [(d["date"], d["early_close"]) for d in days] == [
        ("2012-07-02", False),
        ("2012-07-03", True),
        ("2012-07-05", False),
    ]

    dividends = await get(
        mesh, "/api/mbt/corporate-actions/dividends", symbols="MSFT", **{"from": "2012-01-01", "to": "2012-06-30"}
    )
    assert [(d["ex_date"], d["cash_amount"]) for d in dividends.json()["data"]] == [
        ("2012-02-14", "0.20"),
        ("2012-05-15", "0.20"),
    ]


async def test_the_model_option_chain_with_quotes_and_greeks_over_rest(mesh):
    response = await get(mesh, "/api/mbt/options/chain", underlying="amzn", expiry="2012-06-22")
    assert response.status_code == 200, response.text
    body = response.json()["data"]
    assert (body["underlying"], body["source"], body["risk_free_rate"]) == ("AMZN", "model", "0.001")
    # alice is Free: the chain is the model at AMZN's quote of 15 minutes before now (10:00).
    assert body["as_of"] <= "2012-06-21T13:45:00Z" and body["as_of"] == body["underlying_quote"]["quote_at"]
    call = next(c for c in body["contracts"] if c["symbol"] == "AMZN120622C00220000")
    assert (call["option_type"], call["strike_price"], call["expiration_date"], call["root"]) == (
        "call",
        "220.00",
        "2012-06-22",
        "AMZN",
    )
    quote, model = call["quote"], call["quote"]["model"]
    # Labelled as alice's quotes are: 15 minutes late, each quote says so.
    assert body["underlying_quote"]["delayed"] is True and all(c["quote"]["delayed"] for c in body["contracts"])
    same = (await get(mesh, "/api/mbt/quotes/AMZN120622C00220000")).json()["data"]
    assert (same["delayed"], same["bid_price"], same["quote_at"]) == (True, quote["bid_price"], quote["quote_at"])
    assert quote["source"] == "model" and model["model"] == "black_scholes_merton"
    assert float(quote["bid_price"]) <= float(model["model_price"]) <= float(quote["ask_price"])
    assert set(call["greeks"]) == {"delta", "gamma", "theta", "vega", "implied_volatility"}
    assert call["greeks"]["implied_volatility"] == model["volatility"]
    symbol = (await get(mesh, "/api/mbt/symbols/AMZN  120622C00220000")).json()["data"]
    assert (symbol["symbol"], symbol["exercise_style"], symbol["settlement_type"], symbol["last_trade_time"]) == (
        "AMZN120622C00220000",
        "american",
        "physical",
        "2012-06-22T20:00:00Z",
    )


async def test_bars_over_rest_page_with_the_envelope_and_free_users_see_them_15_minutes_late(mesh):
    params = {"timeframe": "5Min", "from": "2012-06-21T13:30:00Z", "to": "2012-06-21T14:00:00Z", "page_size": "2"}
    first = await get(mesh, "/api/mbt/bars/amzn", **params)
    assert first.status_code == 200, first.text
    body = first.json()
    assert [(b["start_time"], b["end_time"]) for b in body["data"]] == [
        ("2012-06-21T13:30:00Z", "2012-06-21T13:35:00Z"),
        ("2012-06-21T13:35:00Z", "2012-06-21T13:40:00Z"),
    ]
    bar = body["data"][0]
    assert (bar["symbol"], bar["timeframe"], bar["basis"], bar["source"], bar["open"]) == (
        "AMZN",
        "5Min",
        "trades",
        "replay",
        "223.82",
    )
    assert bar["volume"] and bar["vwap"] and bar["trade_count"] > 0
    rest = await get(mesh, "/api/mbt/bars/AMZN", **params, page_token=body["meta"]["next_page_token"])
    # alice is Free: at 10:00 New York she sees the bars that closed by 09:45.
    assert [b["start_time"] for b in rest.json()["data"]] == ["2012-06-21T13:40:00Z"]
    assert rest.json()["meta"]["next_page_token"] is None


BAD_REQUESTS = [
    ("/api/mbt/quotes/AM!ZN", {}, 400, "invalid_argument"),
    ("/api/mbt/quotes/ZZZZ", {}, 404, "not_found"),
    ("/api/mbt/quotes", {"symbols": "AMZN,BAD!"}, 400, "invalid_argument"),
    ("/api/mbt/symbols/AAPL251332C00150000", {}, 400, "invalid_argument"),
    ("/api/mbt/symbols/SPY230915C09990000", {}, 404, "not_found"),
    (
        "/api/mbt/quotes/AMZN/history",
        {"from": "2012-06-21T14:00:00Z", "to": "2012-06-21T13:00:00Z"},
        400,
        "invalid_argument",
    ),
    ("/api/mbt/quotes/AMZN/history", {"from": "1900-01-01T00:00:00Z"}, 400, "invalid_argument"),
    (
        "/api/mbt/quotes/AMZN/history",
        {"from": "2000-01-01T00:00:00Z", "to": "2012-06-21T13:00:00Z"},
        400,
        "invalid_argument",
    ),
    ("/api/mbt/quotes/AMZN/history", {"from": "yesterday"}, 400, "invalid_argument"),
    ("/api/mbt/options/chain", {"underlying": "MSFT"}, 404, "not_found"),
    ("/api/mbt/options/chain", {}, 400, "invalid_argument"),
    ("/api/mbt/options/chain", {"underlying": "AMZN", "expiry": "someday"}, 400, "invalid_argument"),
    ("/api/mbt/options/chain", {"underlying": "AMZN120622C00220000"}, 400, "invalid_argument"),
    ("/api/mbt/symbols/AMZN120615C00220000", {}, 400, "contract_expired"),
    ("/api/mbt/symbols/AMZN120622C00221000", {}, 404, "not_found"),
    ("/api/mbt/bars/AMZN", {}, 400, "invalid_argument"),
    ("/api/mbt/bars/AMZN", {"timeframe": "1Week"}, 400, "invalid_argument"),
    (
        "/api/mbt/bars/AMZN",
        {"timeframe": "1Min", "from": "2012-06-21T14:00:00Z", "to": "2012-06-21T13:00:00Z"},
        400,
        "invalid_argument",
    ),
    ("/api/mbt/bars/ZZZZ", {"timeframe": "1Min"}, 404, "not_found"),
    ("/api/mbt/calendar", {"from": "2012-07-06", "to": "2012-07-01"}, 400, "invalid_argument"),
    (
        "/api/mbt/corporate-actions/dividends",
        {"symbols": "MSFT", "from": "2012-06-01", "to": "2012-01-01"},
        400,
        "invalid_argument",
    ),
]


async def test_bad_symbols_and_windows_are_clear_rest_errors(mesh):
    for path, params, status, code in BAD_REQUESTS:
        response = await get(mesh, path, **params)
        assert response.status_code == status, (path, params, response.text)
        error = response.json()["error"]
        assert error["code"] == code and error["message"] and "Traceback" not in response.text, (path, params)
