"""A local server that speaks Alpaca's documented market-data wire format, so the
alpaca provider runs alpaca-py's real clients (with ``url_override``) against it.

REST (JSON, ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers):
  GET /v2/stocks/quotes/latest       {"quotes": {symbol: quote}}
  GET /v2/stocks/quotes              {"quotes": {symbol: [quote...]}, "next_page_token": ...}
  GET /v2/stocks/bars                {"bars": {symbol: [bar...]}, "next_page_token": ...} of the ``timeframe`` asked
  GET /v1beta1/options/quotes/latest {"quotes": {symbol: quote}}
  GET /v1beta1/options/snapshots/U   {"snapshots": {symbol: {"latestQuote": quote}}, "next_page_token": ...}
  GET /v1/corporate-actions          {"corporate_actions": {"cash_dividends": [...]}, "next_page_token": ...}
A stock quote is {"t": RFC 3339 with nanoseconds, "bx", "bp", "bs", "ax", "ap", "as", "c", "z"}; a
bar is {"t": its start, RFC 3339, "o", "h", "l", "c", "v" shares, "n" trades, "vw" vwap}. Lists
are sorted by symbol, then time (``sort=desc`` reverses the time), ``limit`` rows a page in
all.

Websocket streams (``/v2/{iex,sip}`` stocks, ``/v1beta1/{indicative,opra}`` options):
``[{"T":"success","msg":"connected"}]`` on connect; ``{"action":"auth","key","secret"}``
answered ``[{"T":"success","msg":"authenticated"}]`` or ``[{"T":"error","code":402,...}]``;
``{"action":"subscribe","quotes":[...]}`` answered with the ``subscription`` control
message; quotes as ``[{"T":"q","S":...,"t":...,...}]``. Frames are msgpack when the client
asks for it with ``Content-Type: application/msgpack`` (alpaca-py does; the option stream
is msgpack only), JSON otherwise, with ``t`` a msgpack Timestamp or an RFC 3339 string.
A second concurrent connection to an endpoint gets ``406 connection limit exceeded``.
"""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import msgpack
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

STOCK_STREAMS = ("/v2/iex", "/v2/sip")
OPTION_STREAMS = ("/v1beta1/indicative", "/v1beta1/opra")


def rfc3339(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def parse_rfc3339_ns(text: str) -> int:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(value.replace(microsecond=0).timestamp()) * 1_000_000_000 + value.microsecond * 1000


def stock_quote(ns: int, bid: float, bid_size: int, ask: float, ask_size: int) -> dict:
    return {
        "t": rfc3339(ns),
        "bx": "V",
        "bp": bid,
        "bs": bid_size,
        "ax": "V",
        "ap": ask,
        "as": ask_size,
        "c": ["R"],
        "z": "C",
    }


def stock_bar(
    ns: int, open_: float, high: float, low: float, close: float, volume: int, trades: int, vwap: float
) -> dict:
    return {
        "t": datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "o": open_,
        "h": high,
        "l": low,
        "c": close,
        "v": volume,
        "n": trades,
        "vw": vwap,
    }


def option_quote(ns: int, bid: float, bid_size: int, ask: float, ask_size: int) -> dict:
    return {"t": rfc3339(ns), "bx": "C", "bp": bid, "bs": bid_size, "ax": "C", "ap": ask, "as": ask_size, "c": "A"}


class FakeAlpaca:
    def __init__(self, key: str = "PKTESTKEY", secret: str = "test-secret") -> None:
        self.key, self.secret = key, secret
        self.stock_history: dict[str, list[dict]] = defaultdict(list)
        # (symbol, timeframe such as "30Min") -> bars in time order.
        self.stock_bars: dict[tuple[str, str], list[dict]] = defaultdict(list)
        # How many of the next bars requests fail with a 500, like an outage.
        self.failing_bars_requests = 0
        self.option_latest: dict[str, dict] = {}
        self.chains: dict[str, dict[str, dict]] = {}
        self.cash_dividends: list[dict] = []
        self.requests: list[tuple[str, dict]] = []
        self.connections: dict[str, list[ServerConnection]] = defaultdict(list)
        self.connects: Counter[str] = Counter()
        self.max_concurrent: Counter[str] = Counter()
        self.subscribe_actions: list[tuple[str, dict]] = []
        self.subscriptions: dict[ServerConnection, set[str]] = {}
        self._codec: dict[ServerConnection, str] = {}
        self._server = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> FakeAlpaca:
        self._server = await serve(self._stream, "127.0.0.1", 0, process_request=self._http, compression=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # -- REST -------------------------------------------------------------------------

    def _json(self, status: int, body: object) -> Response:
        payload = json.dumps(body).encode()
        headers = Headers(
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), ("Connection", "close")]
        )
        return Response(status, "OK" if status == 200 else "Error", headers, payload)

    def _http(self, connection: ServerConnection, request):
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        url = urlsplit(request.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.requests.append((url.path, params))
        if (
            request.headers.get("APCA-API-KEY-ID") != self.key
            or request.headers.get("APCA-API-SECRET-KEY") != self.secret
        ):
            return self._json(401, {"code": 40110000, "message": "request is not authorized"})
        symbols = [s for s in params.get("symbols", "").split(",") if s]
        if url.path == "/v2/stocks/quotes/latest":
            return self._json(
                200, {"quotes": {s: self.stock_history[s][-1] for s in symbols if self.stock_history.get(s)}}
            )
        if url.path == "/v2/stocks/quotes":
            return self._json(200, self._page("quotes", {s: self.stock_history.get(s, []) for s in symbols}, params))
        if url.path == "/v2/stocks/bars" and self.failing_bars_requests > 0:
            self.failing_bars_requests -= 1
            return self._json(500, {"code": 50010000, "message": "internal server error"})
        if url.path == "/v2/stocks/bars":
            timeframe = params.get("timeframe", "")
            return self._json(
                200, self._page("bars", {s: self.stock_bars.get((s, timeframe), []) for s in symbols}, params)
            )
        if url.path == "/v1beta1/options/quotes/latest":
            return self._json(200, {"quotes": {s: self.option_latest[s] for s in symbols if s in self.option_latest}})
        if url.path.startswith("/v1beta1/options/snapshots/"):
            chain = self.chains.get(url.path.rsplit("/", 1)[1], {})
            expiry = params.get("expiration_date", "").replace("-", "")[2:]
            return self._json(
                200,
                {"snapshots": {s: v for s, v in chain.items() if not expiry or expiry in s}, "next_page_token": None},
            )
        if url.path == "/v1/corporate-actions":
            wanted = [
                d
                for d in self.cash_dividends
                if d["symbol"] in symbols
                and params.get("start", "0000") <= d["process_date"] <= params.get("end", "9999")
            ]
            return self._json(200, {"corporate_actions": {"cash_dividends": wanted}, "next_page_token": None})
        return self._json(404, {"code": 40410000, "message": "not found"})

    def _page(self, key: str, series: dict[str, list[dict]], params: dict) -> dict:
        """One page of time series: rows with start <= t <= end, by symbol then time."""
        start = parse_rfc3339_ns(params["start"]) if "start" in params else 0
        end = parse_rfc3339_ns(params["end"]) if "end" in params else 2**63
        limit = int(params.get("limit") or 1000)
        offset = int(base64.b64decode(params["page_token"])) if params.get("page_token") else 0
        descending = params.get("sort") == "desc"
        rows = [
            (s, row)
            for s in sorted(series)
            for row in sorted(series[s], key=lambda r: parse_rfc3339_ns(r["t"]), reverse=descending)
            if start <= parse_rfc3339_ns(row["t"]) <= end
        ]
        page = rows[offset : offset + limit]
        found: dict[str, list[dict]] = defaultdict(list)
        for symbol, row in page:
            found[symbol].append(row)
        more = offset + limit < len(rows)
        return {
            key: dict(found),
            "next_page_token": base64.b64encode(str(offset + limit).encode()).decode() if more else None,
        }

    # -- websocket --------------------------------------------------------------------

    def _encode(self, connection: ServerConnection, messages: list[dict]):
        if self._codec[connection] == "msgpack":
            return msgpack.packb(messages)
        return json.dumps(
            [
                {k: (rfc3339(v.to_unix_nano()) if isinstance(v, msgpack.Timestamp) else v) for k, v in m.items()}
                for m in messages
            ]
        )

    def _decode(self, connection: ServerConnection, frame) -> dict:
        return msgpack.unpackb(frame) if self._codec[connection] == "msgpack" else json.loads(frame)

    async def _stream(self, connection: ServerConnection) -> None:
        path = connection.request.path
        if path not in STOCK_STREAMS + OPTION_STREAMS:
            await connection.close(1008, "unknown endpoint")
            return
        asked = connection.request.headers.get("Content-Type", "")
        self._codec[connection] = "msgpack" if asked == "application/msgpack" or path in OPTION_STREAMS else "json"
        self.connects[path] += 1
        await connection.send(self._encode(connection, [{"T": "success", "msg": "connected"}]))
        try:
            auth = self._decode(connection, await connection.recv())
            if auth.get("action") != "auth" or auth.get("key") != self.key or auth.get("secret") != self.secret:
                await connection.send(self._encode(connection, [{"T": "error", "code": 402, "msg": "auth failed"}]))
                return
            if self.connections[path]:
                await connection.send(
                    self._encode(connection, [{"T": "error", "code": 406, "msg": "connection limit exceeded"}])
                )
                return
            self.connections[path].append(connection)
            self.max_concurrent[path] = max(self.max_concurrent[path], len(self.connections[path]))
            self.subscriptions[connection] = set()
            await connection.send(self._encode(connection, [{"T": "success", "msg": "authenticated"}]))
            async for frame in connection:
                action = self._decode(connection, frame)
                self.subscribe_actions.append((path, action))
                quotes = set(action.get("quotes", []))
                if action.get("action") == "subscribe":
                    self.subscriptions[connection] |= quotes
                elif action.get("action") == "unsubscribe":
                    self.subscriptions[connection] -= quotes
                await connection.send(
                    self._encode(
                        connection,
                        [
                            {
                                "T": "subscription",
                                "trades": [],
                                "quotes": sorted(self.subscriptions[connection]),
                                "bars": [],
                                "updatedBars": [],
                                "dailyBars": [],
                                "statuses": [],
                                "lulds": [],
                            }
                        ],
                    )
                )
        except Exception:
            pass
        finally:
            if connection in self.connections[path]:
                self.connections[path].remove(connection)
            self.subscriptions.pop(connection, None)

    def subscribed(self, path: str) -> set[str]:
        return set().union(*(self.subscriptions.get(c, set()) for c in self.connections[path]))

    async def push_quote(
        self, path: str, symbol: str, ns: int, bid: float, bid_size: int, ask: float, ask_size: int
    ) -> int:
        """Send a quote to every connection on ``path`` subscribed to ``symbol``; returns how many got it."""
        message = {
            "T": "q",
            "S": symbol,
            "bx": "V",
            "bp": bid,
            "bs": bid_size,
            "ax": "V",
            "ap": ask,
            "as": ask_size,
            "c": ["R"],
            "z": "C",
            "t": msgpack.Timestamp.from_unix_nano(ns),
        }
        sent = 0
        for connection in list(self.connections[path]):
            if symbol in self.subscriptions.get(connection, ()):
                await connection.send(self._encode(connection, [message]))
                sent += 1
        return sent

    def drop_connections(self, path: str) -> int:
        """Cut every connection on ``path`` without a close handshake, like a network failure."""
        dropped = list(self.connections[path])
        for connection in dropped:
            connection.transport.abort()
        return len(dropped)
