"""What option tests read back over REST: quotes of legs and their natural and mid, the
account's cash and holdings, its expiration activities, and a multi-leg fill's explanation
checked leg by leg."""

from __future__ import annotations

from decimal import Decimal

from tests.support.trading import eventually

D = Decimal


async def quotes(client, legs: list[dict]) -> list[tuple[Decimal, Decimal]]:
    """(bid, ask) of each leg's symbol, in leg order."""
    found = []
    for leg in legs:
        body = (await client.get(f"/api/mbt/quotes/{leg['symbol']}")).json()["data"]
        found.append((D(body["bid_price"]), D(body["ask_price"])))
    return found


def natural_of(legs: list[dict], quoted: list[tuple[Decimal, Decimal]]) -> Decimal:
    """The structure's natural per spread: buy legs at the ask, sell legs at the bid
    (positive a debit, negative a credit)."""
    return sum((ask if leg["side"] == "buy" else -bid for leg, (bid, ask) in zip(legs, quoted, strict=True)), D(0))


def mid_of(legs: list[dict], quoted: list[tuple[Decimal, Decimal]]) -> Decimal:
    """The structure's net mid per spread, signed as ``natural_of``."""
    return sum(
        ((bid + ask) / 2 * (1 if leg["side"] == "buy" else -1) for leg, (bid, ask) in zip(legs, quoted, strict=True)),
        D(0),
    )


async def cash(client) -> Decimal:
    return D((await client.get("/api/mbt/account")).json()["data"]["cash"])


async def holdings(client) -> dict[str, tuple[Decimal, Decimal]]:
    """Open positions: symbol -> (signed qty, average entry price)."""
    positions = (await client.get("/api/mbt/positions")).json()["data"]
    return {p["symbol"]: (D(p["qty"]), D(p["avg_entry_price"])) for p in positions}


async def expirations(client, count: int) -> list[dict]:
    """The caller's ``expiration`` activities, once there are ``count`` of them."""

    async def check():
        rows = (await client.get("/api/mbt/activities", params={"type": "expiration"})).json()["data"]
        assert len(rows) == count, rows
        return rows

    return await eventually(check)


def assert_explained(explained: dict, fill: dict, legs: list[dict], quoted: list, preference: str) -> None:
    """Reproduced, with every leg's quote as read (model quotes with their inputs) and price."""
    assert explained["reproduced"] is True, explained
    assert (explained["fill_id"], explained["rule"], explained["fill_preference"]) == (
        fill["fill_id"],
        fill["rule"],
        preference,
    )
    assert D(explained["fill_price"]) == D(fill["price"])
    assert int(explained["ticks_considered"]) == len(legs)
    assert [leg["symbol"] for leg in explained["legs"]] == [leg["symbol"] for leg in legs]
    for leg, sent, (bid, ask), recorded in zip(explained["legs"], legs, quoted, fill["legs"], strict=True):
        assert (leg["side"], leg["ratio"]) == (sent["side"], 1)
        assert (D(leg["bid_price"]), D(leg["ask_price"])) == (bid, ask)
        assert bid <= D(leg["price"]) <= ask and D(leg["price"]) == D(recorded["price"])
        assert leg["quote_sequence"] and leg["quote_at"]
        assert leg["source"] == "model", leg
        model = leg["model"]
        assert model["underlying_symbol"] == "AMZN"
        for name in ("underlying_price", "volatility", "risk_free_rate", "time_to_expiry"):
            assert D(model[name]) > 0, model
    net = sum(
        (D(leg["price"]) * (1 if leg["side"] == "buy" else -1) for leg in explained["legs"]),
        D(0),
    )
    assert net == D(explained["fill_price"])
