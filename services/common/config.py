"""Configuration: every knob is an ``MBT_*`` environment variable, read once into one
typed, frozen ``Settings`` per process and passed to whatever needs it.

The table in the README is printed from the declarations below
(``python -m services.common.config``), so code and documentation cannot drift;
``--effective`` shows instead what this environment sets, secrets redacted.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SERVICES: tuple[str, ...] = ("accounts", "orders", "matcher", "marketdata", "activities")
DEFAULT_PORTS: Mapping[str, int] = {
    "accounts": 50051,
    "orders": 50052,
    "matcher": 50053,
    "marketdata": 50054,
    "activities": 50055,
}


MIN_TOKEN_KEY_BYTES = 32
GRPC_KEEPALIVE_SECONDS = 30.0


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected 1/0/true/false, got {raw!r}")


def _parse_decimal(raw: str) -> Decimal:
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"expected a decimal number, got {raw!r}") from None


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _parse_positive_decimal(raw: str) -> Decimal:
    value = _parse_decimal(raw)
    if not value.is_finite() or value <= 0:
        raise ValueError(f"expected a positive number, got {raw!r}")
    return value


def _parse_positive_float(raw: str) -> float:
    return float(_parse_positive_decimal(raw))


def _parse_non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("must be 0 or more")
    return value


def _parse_positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"expected a positive integer, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {raw!r}")
    return value


def _parse_optional_time(raw: str) -> datetime | None:
    text = raw.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected an RFC 3339 time like 2012-06-21T14:00:00Z, got {raw!r}") from None
    if value.tzinfo is None:
        raise ValueError(f"give a time zone (e.g. Z) in {raw!r}")
    return value.astimezone(UTC)


class Secret:
    """A credential read from the environment: its repr never shows it, so printing the
    settings or logging them cannot leak it."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_origins(raw: str) -> tuple[str, ...]:
    origins = _parse_list(raw)
    for origin in origins:
        scheme, _, rest = origin.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest:
            raise ValueError(f"expected origins like https://app.example.com, got {origin!r}")
    return origins


def _parse_hosts(raw: str) -> tuple[str, ...]:
    hosts = tuple(host.lower().strip("[]") for host in _parse_list(raw))
    for host in hosts:
        if not host or any(char in host for char in "/@ ") or ("://" in host):
            raise ValueError(f"expected host names like mbt.example.com, got {host!r}")
    return hosts


def origin_host(origin: str) -> str:
    """``https://app.example.com:8443`` -> ``app.example.com``."""
    return (urlsplit(origin).hostname or "").lower()


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _parse_token_keys(raw: str) -> tuple[tuple[str, bytes], ...]:
    """``kid:secret,kid:secret`` with base64url secrets of at least 32 bytes; the first signs."""
    keys = []
    for item in _parse_list(raw):
        kid, sep, encoded = item.partition(":")
        if not sep or not kid or not encoded:
            raise ValueError("expected kid:secret[,kid:secret...]")
        try:
            secret = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"the secret of key {kid!r} is not base64url") from None
        if len(secret) < MIN_TOKEN_KEY_BYTES:
            raise ValueError(f"the secret of key {kid!r} must be at least {MIN_TOKEN_KEY_BYTES} bytes")
        keys.append((kid, secret))
    if len({kid for kid, _ in keys}) != len(keys):
        raise ValueError("two keys share a kid")
    return tuple(keys)


def _parse_secret_key(raw: str) -> bytes:
    """One base64url secret of at least 32 bytes, alone or as ``kid:secret`` (the kid is
    ignored); empty: none configured."""
    encoded = raw.strip().rpartition(":")[2]
    if not encoded:
        return b""
    try:
        secret = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected a base64url secret") from None
    if len(secret) < MIN_TOKEN_KEY_BYTES:
        raise ValueError(f"the secret must be at least {MIN_TOKEN_KEY_BYTES} bytes")
    return secret


def setting(
    name: str, default: str | None, doc: str, parse: Callable[[str], Any] = str, *, secret: bool = False
) -> Any:
    """Declare a setting read from environment variable ``name``.

    ``default`` None means "derived" (computed in ``Settings.from_env``, documented in ``doc``).
    ``secret`` keeps the value out of the settings' repr (and so out of any log line).
    """
    return field(metadata={"env": name, "default": default, "doc": doc, "parse": parse}, repr=not secret)


@dataclass(frozen=True)
class ServiceSettings:
    """Where one service listens, where others reach it, and its own database."""

    name: str
    port: int
    database_url: str
    target: str
    # Where Prometheus scrapes the process's metrics; 0: not exposed.
    metrics_port: int = 0


@dataclass(frozen=True)
class Settings:
    env: str = setting(
        "MBT_ENV",
        "development",
        "`development` or `production`. Production refuses development-only switches such as `MBT_DEV_LOGIN`.",
        _parse_choice("development", "production"),
    )
    data_dir: Path = setting(
        "MBT_DATA_DIR", "var", "Directory of the embedded default's SQLite files and other local state.", Path
    )
    bind_host: str = setting(
        "MBT_BIND_HOST", "127.0.0.1", "Interface every gRPC server and the gateway listen on (`0.0.0.0` in containers)."
    )
    gateway_port: int = setting("MBT_GATEWAY_PORT", "8080", "Port of the REST gateway.", int)
    dev_login: bool = setting(
        "MBT_DEV_LOGIN",
        None,
        "Development login (`POST /api/sessions/dev` mints a session for any user id). Default: on in development, off in production; refused in production.",
        _parse_bool,
    )
    allow_dev_keys: bool = setting(
        "MBT_ALLOW_DEV_KEYS",
        "0",
        "Let a process listening on a non-loopback address (`MBT_BIND_HOST`) start without `MBT_USER_TOKEN_KEYS` / `MBT_SERVICE_TOKEN_KEYS`, i.e. on the published development keys, with which anyone can sign a token. Off: it refuses to start. Refused in production.",
        _parse_bool,
    )
    log_level: str = setting("MBT_LOG_LEVEL", "INFO", "Python log level.", str.upper)
    log_format: str = setting(
        "MBT_LOG_FORMAT", "json", "`json` (one object per line) or `text`.", _parse_choice("json", "text")
    )
    grace_seconds: float = setting(
        "MBT_GRACE_SECONDS", "5", "How long a server lets in-flight RPCs finish after SIGTERM.", float
    )
    redis_url: str = setting(
        "MBT_REDIS_URL",
        "",
        "Redis for shared state between replicas (sessions, rate limits, Celery). Empty: embedded, in-process.",
    )
    db_pool_size: int = setting("MBT_DB_POOL_SIZE", "10", "Connections per service process (PostgreSQL).", int)
    rpc_timeout_seconds: float = setting(
        "MBT_RPC_TIMEOUT_SECONDS", "10", "Deadline of service-to-service and gateway calls.", float
    )
    grpc_keepalive_seconds: float = setting(
        "MBT_GRPC_KEEPALIVE_SECONDS",
        f"{GRPC_KEEPALIVE_SECONDS:g}",
        "How often every gRPC client (services, gateway, CLI) pings its connections, also idle ones, to find a dead peer; every server accepts pings as often as half this. Keep it the same in every process.",
        lambda raw: float(_parse_positive_decimal(raw)),
    )
    outbox_poll_ms: int = setting(
        "MBT_OUTBOX_POLL_MS",
        "200",
        "How often an idle outbox relay looks for undelivered events (it is also woken on commit).",
        int,
    )
    outbox_batch_size: int = setting("MBT_OUTBOX_BATCH_SIZE", "200", "Events per `Deliver` call.", int)
    trading_disabled: bool = setting(
        "MBT_TRADING_DISABLED",
        "0",
        "Kill switch (read by orders): order submits, replaces and cancels answer 503 `trading_disabled`; reads still work.",
        _parse_bool,
    )
    new_orders_disabled: bool = setting(
        "MBT_NEW_ORDERS_DISABLED",
        "0",
        "Kill switch (read by orders): submits and replaces (which can add exposure) answer 503 `new_orders_disabled`; cancels and reads still work.",
        _parse_bool,
    )
    max_quote_age_seconds: Decimal = setting(
        "MBT_MAX_QUOTE_AGE_SECONDS",
        "5",
        "A market order never fills on a quote older than this (simulated seconds).",
        _parse_decimal,
    )
    market_order_collar_pct: Decimal = setting(
        "MBT_MARKET_ORDER_COLLAR_PCT",
        "5",
        "Market and stop orders never fill more than this % beyond the price they were submitted against "
        "(the touch, or the stop); buying power is reserved at that bound.",
        _parse_decimal,
    )

    margin_rate_bps: int = setting(
        "MBT_MARGIN_RATE_BPS",
        "800",
        "Annual interest rate on a margin account's debit balance, in basis points (800 = 8%), charged nightly actual/360 by `mbt.accrue_margin_interest`.",
        _parse_positive_int,
    )
    do_not_exercise_cutoff_minutes: int = setting(
        "MBT_DO_NOT_EXERCISE_CUTOFF_MINUTES",
        "90",
        "How long after its expiry day's close (early closes included) a holder may still give or withdraw a do-not-exercise instruction for a long option (OCC's cutoff: 5:30 pm ET, 90 minutes after a 4 pm close). The `mbt.expire_options` run of that session is due at this cutoff, so every instruction is final before anything settles.",
        _parse_positive_int,
    )
    option_pre_close_sale_minutes: int = setting(
        "MBT_OPTION_PRE_CLOSE_SALE_MINUTES",
        "60",
        "How long before its expiry day's close (early closes included) the `mbt.sell_uncarriable_options` job sells at the market a cash account's long in-the-money options it could not carry into stock (Alpaca: about an hour).",
        _parse_positive_int,
    )

    # -- market data (services/marketdata) -------------------------------------------
    marketdata_provider: str = setting(
        "MBT_MARKETDATA_PROVIDER",
        "replay",
        "Where quotes come from: `replay` (recorded ticks in simulated time) or `alpaca` (Alpaca market data, wall clock).",
        _parse_choice("replay", "alpaca"),
    )
    replay_dataset: str = setting(
        "MBT_REPLAY_DATASET",
        "lobster-2012",
        "Which bundled recording the replay plays when `MBT_REPLAY_QUOTES_FILE` / `MBT_REPLAY_TRADES_FILE` are empty: `lobster-2012` (AMZN and GOOG quotes and trades of 2012-06-21; their options are model quotes) or `cboe-options-2021` (Cboe's A and ^VIX option quotes with the underlying, every 30 minutes of 2021-04-26; no trades, bars from quote mids).",
        _parse_choice("lobster-2012", "cboe-options-2021"),
    )
    replay_quotes_file: str = setting(
        "MBT_REPLAY_QUOTES_FILE",
        "",
        "Recorded NBBO ticks to replay: CSV (optionally gzipped) or Parquet with timestamp, symbol, bid, bid size, ask, ask size (symbols: tickers, OCC option symbols, ^-indexes). Empty: the bundled recording of `MBT_REPLAY_DATASET` in `data/`.",
    )
    replay_trades_file: str = setting(
        "MBT_REPLAY_TRADES_FILE",
        "",
        "Recorded trades played with the quotes, which bars are aggregated from: CSV (optionally gzipped) or Parquet with timestamp, symbol, price, size, on the quotes' day(s). Empty: the bundled trades of `MBT_REPLAY_DATASET` (LOBSTER AMZN/GOOG; none for `cboe-options-2021`); `none`: no trades (bars from quote mids).",
    )
    replay_option_chain_file: str = setting(
        "MBT_REPLAY_OPTION_CHAIN_FILE",
        "",
        "Option chain snapshot served by the replay (Cboe quotedata layout, see `data/SOURCES.md`). Empty: the bundled SPY chain of 2023-09-14; `none`: no chain.",
    )
    replay_dividends_file: str = setting(
        "MBT_REPLAY_DIVIDENDS_FILE",
        "",
        "Cash dividends served by the replay (`symbol,ex_date,cash_amount`). Empty: the bundled Yahoo AAPL/MSFT/SPY history, un-split-adjusted; `none`: no dividends.",
    )
    option_risk_free_rate: Decimal = setting(
        "MBT_OPTION_RISK_FREE_RATE",
        "0.001",
        "Annual risk-free rate (continuously compounded, `0.001` = 0.1%) of the option quote model and of every greek and implied volatility: about the 3-month US Treasury bill yield of June 2012, the bundled AMZN/GOOG day.",
        _parse_decimal,
    )
    replay_mode: str = setting(
        "MBT_REPLAY_MODE",
        "paced",
        "`paced`: the replay clock runs at `MBT_REPLAY_SPEED`. `stepped`: time moves only through `StepClock` (tests, backtests).",
        _parse_choice("paced", "stepped"),
    )
    replay_speed: Decimal = setting(
        "MBT_REPLAY_SPEED",
        "1",
        "Simulated seconds per wall second of a paced replay (1 is real-time pace).",
        _parse_positive_decimal,
    )
    replay_start: datetime | None = setting(
        "MBT_REPLAY_START",
        "",
        "Simulated time the replay starts at (RFC 3339). Empty: 30 minutes after the recording's first open. A restarted market-data service continues its clock where it was (where the other services' clocks already are) and only jumps to this time when it is later.",
        _parse_optional_time,
    )
    replay_loop: bool = setting(
        "MBT_REPLAY_LOOP",
        "1",
        "When the recording runs out, play it again as the next trading day (sequences keep increasing). `0`: the market stays quiet after it.",
        _parse_bool,
    )
    replay_skip_closed: bool = setting(
        "MBT_REPLAY_SKIP_CLOSED",
        "1",
        "Paced replay: when the market closes, jump the clock to the next open instead of waiting through nights, weekends and holidays.",
        _parse_bool,
    )
    alpaca_key: Secret = setting(
        "ALPACA_MARKET_DATA_KEY",
        "",
        "The one server-side Alpaca market-data key id (never a user's; never logged). Or `ALPACA_MARKET_DATA_KEY_FILE`.",
        Secret,
    )
    alpaca_secret: Secret = setting(
        "ALPACA_MARKET_DATA_SECRET", "", "Its secret. Or `ALPACA_MARKET_DATA_SECRET_FILE`.", Secret
    )
    alpaca_key_file: str = setting(
        "ALPACA_MARKET_DATA_KEY_FILE",
        "",
        "File holding the key id (a mounted secret); used when the variable itself is empty.",
    )
    alpaca_secret_file: str = setting(
        "ALPACA_MARKET_DATA_SECRET_FILE", "", "File holding the secret (a mounted secret)."
    )
    alpaca_feed: str = setting(
        "MBT_ALPACA_FEED",
        "iex",
        "Alpaca stock feed: `iex` (free) or `sip` (consolidated, paid).",
        _parse_choice("iex", "sip"),
    )
    alpaca_options_feed: str = setting(
        "MBT_ALPACA_OPTIONS_FEED",
        "indicative",
        "Alpaca options feed: `indicative` (free) or `opra` (paid).",
        _parse_choice("indicative", "opra"),
    )
    alpaca_data_url: str = setting(
        "MBT_ALPACA_DATA_URL", "https://data.alpaca.markets", "Alpaca market-data REST base URL."
    )
    alpaca_stream_url: str = setting(
        "MBT_ALPACA_STREAM_URL",
        "wss://stream.data.alpaca.markets",
        "Alpaca market-data websocket base URL (`/v2/<feed>` and `/v1beta1/<options feed>` are appended).",
    )
    quote_stream_buffer: int = setting(
        "MBT_QUOTE_STREAM_BUFFER",
        "10000",
        "Ticks queued per `StreamQuotes` subscriber; a live feed drops ticks beyond it and tells the subscriber which (`dropped`).",
        int,
    )
    quote_unsubscribe_after_seconds: float = setting(
        "MBT_QUOTE_UNSUBSCRIBE_AFTER_SECONDS",
        "600",
        "After a symbol's last `StreamQuotes` subscriber leaves, keep its upstream subscription and tick archive running this long (wall seconds), so a restarting matcher catches up on what it missed. `0`: unsubscribe at once.",
        float,
    )
    quote_stream_batch: int = setting("MBT_QUOTE_STREAM_BATCH", "500", "Most ticks per `StreamQuotes` message.", int)
    step_stall_seconds: float = setting(
        "MBT_STEP_STALL_SECONDS",
        "5",
        "A stepped replay waits for a subscriber that is reading; one that reads nothing for this long gets drops instead.",
        float,
    )
    tick_archive_retention_days: int = setting(
        "MBT_TICK_ARCHIVE_RETENTION_DAYS",
        "30",
        "Archived ticks older than this many days (simulated time) are deleted; `0` keeps them forever.",
        int,
    )
    tick_archive_flush_ms: int = setting(
        "MBT_TICK_ARCHIVE_FLUSH_MS",
        "200",
        "How often the tick archive writes its batch (also when 5000 ticks are pending).",
        int,
    )

    # -- gateway and security: sessions, tokens, rate limits, browser protections ----------
    gateway_database_url: str = setting(
        "MBT_GATEWAY_DATABASE_URL",
        None,
        "The gateway's own database (passkey credentials). Default: `sqlite:///var/gateway.db`; migrated at start.",
    )
    redis_key_prefix: str = setting(
        "MBT_REDIS_KEY_PREFIX",
        "mbt:",
        "Prefix of every Redis key MBT writes (session rows, passkey challenges, rate limits).",
    )
    user_token_keys: tuple = setting(
        "MBT_USER_TOKEN_KEYS",
        "",
        "Keys signing user and ops tokens: `kid:secret,...` (base64url secrets of 32+ bytes; the first signs, all verify). Empty: a published development key, refused in production. `mbt keys new` makes one.",
        _parse_token_keys,
        secret=True,
    )
    service_token_keys: tuple = setting(
        "MBT_SERVICE_TOKEN_KEYS",
        "",
        "Keys signing service-to-service identity tokens, same format; must not share a secret with `MBT_USER_TOKEN_KEYS`. Empty: a development key, refused in production.",
        _parse_token_keys,
        secret=True,
    )
    session_token_ttl_seconds: int = setting(
        "MBT_SESSION_TOKEN_TTL_SECONDS",
        "900",
        "Lifetime of a session's signed token; clients renew it with `POST /api/sessions/refresh` while the session lives.",
        int,
    )
    session_max_age_seconds: int = setting(
        "MBT_SESSION_MAX_AGE_SECONDS",
        "43200",
        "Lifetime of a session (its row and its cookie); after it the user signs in again.",
        int,
    )
    step_up_seconds: int = setting(
        "MBT_STEP_UP_SECONDS",
        "300",
        "How long a fresh passkey assertion (sign-in or step-up) keeps a session elevated.",
        int,
    )
    webauthn_rp_id: str = setting(
        "MBT_WEBAUTHN_RP_ID", "localhost", "WebAuthn relying-party id: the web app's domain (`mbt.example.com`)."
    )
    webauthn_rp_name: str = setting("MBT_WEBAUTHN_RP_NAME", "MBT", "The name authenticators show for MBT's passkeys.")
    public_origins: tuple = setting(
        "MBT_PUBLIC_ORIGINS",
        None,
        "Origins of the web app, comma-separated: the origins WebAuthn accepts and, with `MBT_CORS_ORIGINS`, the only `Origin`s allowed on state-changing requests. Default: `http://localhost:<MBT_GATEWAY_PORT>`; https only in production.",
        _parse_origins,
    )
    allowed_hosts: tuple = setting(
        "MBT_ALLOWED_HOSTS",
        None,
        "Host names the gateway answers to, comma-separated (the `Host` header, port ignored); any other gets 400 before anything runs, which stops DNS-rebinding pages. `/healthz` answers any host (probes use the pod address). Default (also when empty): the hosts of `MBT_PUBLIC_ORIGINS` plus `localhost`, `127.0.0.1` and `::1`.",
        _parse_hosts,
    )
    cors_origins: tuple = setting(
        "MBT_CORS_ORIGINS",
        "",
        "Origins allowed to call the API cross-origin (CORS, with credentials), comma-separated. Empty: CORS closed.",
        _parse_origins,
    )
    gateway_header_timeout_seconds: float = setting(
        "MBT_GATEWAY_HEADER_TIMEOUT_SECONDS",
        "10",
        "A client must send a request's line and headers within this many seconds (from connecting, or from its first byte on a kept-alive connection); else it gets 408 and the connection is closed (slow-header attacks).",
        _parse_positive_float,
    )
    gateway_body_timeout_seconds: float = setting(
        "MBT_GATEWAY_BODY_TIMEOUT_SECONDS",
        "30",
        "A client must send a request's whole body within this many seconds of its headers; else 408 and the connection is closed (slow-body attacks).",
        _parse_positive_float,
    )
    gateway_max_connections: int = setting(
        "MBT_GATEWAY_MAX_CONNECTIONS",
        "1000",
        "Most connections (and requests in flight) one gateway process serves at once; a request beyond it gets 503 at once.",
        _parse_positive_int,
    )
    anonymous_rate_limit: int = setting(
        "MBT_ANONYMOUS_RATE_LIMIT",
        "30",
        "Requests per minute per client address to the endpoints that need no sign-in and write shared state (passkey options, registration and sign-in, the development login); beyond it 429 `rate_limited` with `Retry-After`. One budget across replicas with `MBT_REDIS_URL`, per process without.",
        _parse_positive_int,
    )
    trusted_proxies: tuple = setting(
        "MBT_TRUSTED_PROXIES",
        "",
        "Addresses (IPs or CIDRs, comma-separated; `*` for any) of the proxies in front of the gateway (Envoy) whose `X-Forwarded-For` names the client, for per-client budgets. Empty: the connecting address is the client.",
        _parse_list,
    )
    hsts_seconds: int = setting(
        "MBT_HSTS_SECONDS",
        "0",
        "`Strict-Transport-Security` max-age sent on every response; 0 sends none (set it where TLS terminates in front of the gateway).",
        int,
    )
    audit_actor_key: bytes = setting(
        "MBT_AUDIT_ACTOR_KEY",
        "",
        "Key of the keyed hashes (HMAC-SHA256) that stand for actor and user ids in the audit log's hash chain, so an erasure can blank the clear ids and the chain still verifies: a base64url secret of 32+ bytes, alone or as the `kid:secret` `mbt keys new` prints. Keep it for the life of the audit log (verification checks clear ids against it). Empty: a published development key, refused in production.",
        _parse_secret_key,
        secret=True,
    )

    # -- jobs (services/jobs): Celery worker and market-clock scheduler ---------------------
    jobs_database_url: str = setting(
        "MBT_JOBS_DATABASE_URL",
        None,
        "The jobs' own database: one record per job and key (what was done, by which attempt) and the schedule's cursors. Default: `sqlite:///var/jobs.db`; migrated at start.",
    )
    jobs_visibility_timeout_seconds: float = setting(
        "MBT_JOBS_VISIBILITY_TIMEOUT_SECONDS",
        "300",
        "A job run that has not reported for this long (wall seconds; a running job reports every third of it) is taken for lost, its worker killed, and is run again; also Redis's visibility timeout for unacknowledged jobs.",
        _parse_positive_float,
    )
    jobs_concurrency: int = setting(
        "MBT_JOBS_CONCURRENCY",
        "2",
        "Jobs one worker process runs at once (threads; jobs mostly wait on gRPC calls).",
        _parse_positive_int,
    )
    jobs_metrics_port: int = setting(
        "MBT_JOBS_METRICS_PORT",
        "0",
        "Port of the jobs worker's Prometheus metrics (`/metrics` on `MBT_BIND_HOST`): `mbt_job_runs_total`, `mbt_audit_chain_breaks_total`; 0 exposes none.",
        int,
    )
    graduation_cycles: int = setting(
        "MBT_GRADUATION_CYCLES",
        "4",
        "Graduation gate (`GET /api/mbt/graduation`): how many complete cycles in a row must each have a positive P&L (the change in equity between EOD snapshots).",
        _parse_positive_int,
    )
    graduation_cycle_days: int = setting(
        "MBT_GRADUATION_CYCLE_DAYS",
        "7",
        "Graduation gate: a cycle's length in days (market-clock dates), counted from the account's opening.",
        _parse_positive_int,
    )
    retention_free_days: int = setting(
        "MBT_RETENTION_FREE_DAYS",
        "90",
        "Retention of a Free user's history (`mbt.purge_expired`, hourly): orders that ended, their fills, closed positions, ledger entries (folded into a carried-forward balance), activities (folded into a `carried_forward` one) and end-of-day snapshots older than this many days of market time are deleted.",
        _parse_positive_int,
    )
    retention_pro_days: int = setting(
        "MBT_RETENTION_PRO_DAYS",
        "1095",
        "Retention of a Pro user's history, as `MBT_RETENTION_FREE_DAYS` (1095 days: 3 years). Pro+ history is kept without limit.",
        _parse_positive_int,
    )
    notify_webhook_url: str = setting(
        "MBT_NOTIFY_WEBHOOK_URL",
        "",
        'Where each user notification (a fill\'s "Bought 10 AMZN at $224.05") is also POSTed as JSON, signed with `MBT_NOTIFY_WEBHOOK_SECRET` (header `X-MBT-Signature`); an unreachable or failing webhook is retried with backoff until it answers 2xx. Empty: notifications go to the inbox (`GET /api/mbt/notifications`) only.',
    )
    notify_webhook_secret: bytes = setting(
        "MBT_NOTIFY_WEBHOOK_SECRET",
        "",
        "Key of the webhook's HMAC-SHA256 signature: a base64url secret of 32+ bytes, alone or as the `kid:secret` `mbt keys new` prints. Required when `MBT_NOTIFY_WEBHOOK_URL` is set.",
        _parse_secret_key,
        secret=True,
    )
    notify_webhook_timeout_seconds: float = setting(
        "MBT_NOTIFY_WEBHOOK_TIMEOUT_SECONDS",
        "5",
        "How long one webhook POST may take before it counts as failed (and is retried).",
        _parse_positive_float,
    )

    # -- privacy (GDPR export and erasure) ---------------------------------------------------
    export_ttl_hours: float = setting(
        "MBT_EXPORT_TTL_HOURS",
        "168",
        "How long a GDPR export's archive can be downloaded once ready (hours, on the market clock); then it is deleted and the export reads `expired`.",
        _parse_positive_float,
    )
    erasure_cooling_days: float = setting(
        "MBT_ERASURE_COOLING_DAYS",
        "30",
        "Cooling period of a GDPR erasure (days, on the market clock): trading is blocked and the account read-only until it ends, and the request can be canceled; then the hourly `mbt.erase_user_data` job erases the user everywhere. 0 makes it due at once.",
        _parse_non_negative_float,
    )
    services: Mapping[str, ServiceSettings] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if "env" not in f.metadata:
                continue
            raw = environ.get(f.metadata["env"], f.metadata["default"])
            if raw is None:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigError(f"{f.metadata['env']}: {exc}") from None
        production = values["env"] == "production"
        values.setdefault("dev_login", not production)
        if production and values["dev_login"]:
            raise ConfigError("MBT_DEV_LOGIN=1 is refused when MBT_ENV=production")
        values.setdefault("gateway_database_url", f"sqlite:///{values['data_dir'] / 'gateway.db'}")
        values.setdefault("jobs_database_url", f"sqlite:///{values['data_dir'] / 'jobs.db'}")
        values.setdefault("public_origins", (f"http://localhost:{values['gateway_port']}",))
        if not values.get("allowed_hosts"):  # unset or empty: never "no host at all"
            values["allowed_hosts"] = tuple(
                dict.fromkeys([origin_host(origin) for origin in values["public_origins"]] + list(LOOPBACK_HOSTS))
            )
        _check_security(values, production)
        if values["notify_webhook_url"] and not values["notify_webhook_secret"]:
            raise ConfigError(
                "MBT_NOTIFY_WEBHOOK_SECRET must be set when MBT_NOTIFY_WEBHOOK_URL is (`mbt keys new` makes one)"
            )
        values["services"] = _service_settings(environ, values["data_dir"])
        values.update(overrides)
        return cls(**values)

    def service(self, name: str) -> ServiceSettings:
        return self.services[name]


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def _check_security(values: dict[str, Any], production: bool) -> None:
    user_secrets = {secret for _, secret in values["user_token_keys"]}
    if any(secret in user_secrets for _, secret in values["service_token_keys"]):
        raise ConfigError("MBT_SERVICE_TOKEN_KEYS must not share a secret with MBT_USER_TOKEN_KEYS")
    if production and values["allow_dev_keys"]:
        raise ConfigError("MBT_ALLOW_DEV_KEYS=1 is refused when MBT_ENV=production")
    missing = [f"MBT_{name.upper()}" for name in ("user_token_keys", "service_token_keys") if not values[name]]
    if missing and not production and not values["allow_dev_keys"] and not is_loopback(values["bind_host"]):
        raise ConfigError(
            f"MBT_BIND_HOST={values['bind_host']} accepts connections from other machines, and "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: anyone could sign "
            "tokens with the published development keys. Set the keys (`mbt keys new`), bind to "
            "127.0.0.1, or set MBT_ALLOW_DEV_KEYS=1 on a network you trust."
        )
    if not production:
        return
    for name in ("user_token_keys", "service_token_keys", "audit_actor_key"):
        if not values[name]:
            raise ConfigError(f"MBT_{name.upper()} must be set when MBT_ENV=production (`mbt keys new` makes one)")
    if any(not origin.startswith("https://") for origin in values["public_origins"] + values["cors_origins"]):
        raise ConfigError("MBT_PUBLIC_ORIGINS and MBT_CORS_ORIGINS must be https origins when MBT_ENV=production")


def _service_settings(environ: Mapping[str, str], data_dir: Path) -> dict[str, ServiceSettings]:
    result = {}
    for name in SERVICES:
        prefix = f"MBT_{name.upper()}"
        ports = {}
        for variable, default in ((f"{prefix}_PORT", DEFAULT_PORTS[name]), (f"{prefix}_METRICS_PORT", 0)):
            try:
                ports[variable] = int(environ.get(variable, default))
            except ValueError:
                raise ConfigError(f"{variable}: expected an integer") from None
        port = ports[f"{prefix}_PORT"]
        result[name] = ServiceSettings(
            name=name,
            port=port,
            database_url=environ.get(f"{prefix}_DATABASE_URL", f"sqlite:///{data_dir / (name + '.db')}"),
            target=environ.get(f"{prefix}_TARGET", f"127.0.0.1:{port}"),
            metrics_port=ports[f"{prefix}_METRICS_PORT"],
        )
    return result


SERVICE_VARIABLES = (
    (
        "MBT_<SERVICE>_PORT",
        "accounts 50051, orders 50052, matcher 50053, marketdata 50054, activities 50055",
        "Port the service's gRPC server listens on.",
    ),
    (
        "MBT_<SERVICE>_DATABASE_URL",
        "`sqlite:///var/<service>.db`",
        "The service's own database (`postgresql+psycopg://…` in production). The service migrates it at start.",
    ),
    (
        "MBT_<SERVICE>_TARGET",
        "`127.0.0.1:<port>`",
        "How other services reach it (`dns:///orders-headless:50052` on Kubernetes: client-side round-robin).",
    ),
    (
        "MBT_<SERVICE>_METRICS_PORT",
        "`0`",
        "Port of the service's Prometheus metrics (`/metrics` on `MBT_BIND_HOST`), e.g. `mbt_ledger_refusals_total`; 0 exposes none.",
    ),
)


def markdown_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for f in dataclasses.fields(Settings):
        if "env" in f.metadata:
            default = f.metadata["default"]
            shown = "(derived)" if default is None else (f"`{default}`" if default != "" else "(empty)")
            rows.append(f"| `{f.metadata['env']}` | {shown} | {f.metadata['doc']} |")
    for name, default, doc in SERVICE_VARIABLES:
        rows.append(f"| `{name}` | {default} | {doc} |")
    return "\n".join(rows)


def documented_variables() -> list[str]:
    names = [f.metadata["env"] for f in dataclasses.fields(Settings) if "env" in f.metadata]
    return names + [name for name, _, _ in SERVICE_VARIABLES]


def update_readme(path: Path) -> None:
    """Replace the configuration table in ``path`` with the current one."""
    text = path.read_text()
    start = text.index("| Variable | Default | Meaning |")
    end = text.find("\n\n", start)
    path.write_text(text[:start] + markdown_table() + (text[end:] if end != -1 else "\n"))


_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def _shown(value: Any) -> str:
    if value is None or value == "" or value == ():
        return "(empty)"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        value = ",".join(str(item) for item in value)
    if isinstance(value, datetime):
        value = value.isoformat().replace("+00:00", "Z")
    return _URL_PASSWORD.sub(r"\1***@", str(value))


def effective_rows(settings: Settings, environ: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(variable, value in effect, where it comes from) for every setting; secrets and URL
    passwords are never shown."""
    rows = []
    for f in dataclasses.fields(Settings):
        if "env" not in f.metadata:
            continue
        name, value = f.metadata["env"], getattr(settings, f.name)
        source = "env" if name in environ else ("derived" if f.metadata["default"] is None else "default")
        if isinstance(value, Secret) or not f.repr:
            shown = "(set, redacted)" if value else "(empty)"
        else:
            shown = _shown(value)
        rows.append((name, shown, source))
    for name in SERVICES:
        service = settings.service(name)
        for suffix, value, unset in (
            ("PORT", service.port, "default"),
            ("DATABASE_URL", service.database_url, "derived"),
            ("TARGET", service.target, "derived"),
        ):
            variable = f"MBT_{name.upper()}_{suffix}"
            rows.append((variable, _shown(value), "env" if variable in environ else unset))
    return rows


def main(argv: list[str], environ: Mapping[str, str]) -> int:
    cli = argparse.ArgumentParser(
        prog="python -m services.common.config",
        description="MBT's settings: the README table (default), or the values in effect.",
    )
    mode = cli.add_mutually_exclusive_group()
    mode.add_argument(
        "--effective",
        action="store_true",
        help="the value of every setting in this environment and where it comes from (secrets redacted)",
    )
    mode.add_argument(
        "--update-readme",
        metavar="PATH",
        nargs="?",
        const="README.md",
        help="rewrite the configuration table of PATH (default README.md)",
    )
    args = cli.parse_args(argv)
    if args.update_readme:
        update_readme(Path(args.update_readme))
    elif args.effective:
        try:
            rows = effective_rows(Settings.from_env(environ), environ)
        except ConfigError as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            return 2
        width = max(len(name) for name, _, _ in rows)
        sys.stdout.write("".join(f"{name:<{width}}  {value}  ({source})\n" for name, value, source in rows))
    else:
        sys.stdout.write(markdown_table() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
