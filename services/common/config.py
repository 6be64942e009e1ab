"""Configuration: every knob is an ``MBT_*`` environment variable, read once into one
typed, frozen ``Settings`` per process and passed to whatever needs it.

The table in the README is printed from the declarations below
(``python -m services.common.config``), so code and documentation cannot drift.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

SERVICES: tuple[str, ...] = ("accounts", "orders", "matcher", "marketdata", "activities")
DEFAULT_PORTS: Mapping[str, int] = {
    "accounts": 50051,
    "orders": 50052,
    "matcher": 50053,
    "marketdata": 50054,
    "activities": 50055,
}


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
    return value.astimezone(timezone.utc)


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


def setting(name: str, default: str | None, doc: str, parse: Callable[[str], Any] = str) -> Any:
    """Declare a setting read from environment variable ``name``.

    ``default`` None means "derived" (computed in ``Settings.from_env``, documented in ``doc``).
    """
    return field(metadata={"env": name, "default": default, "doc": doc, "parse": parse})


@dataclass(frozen=True)
class ServiceSettings:
    """Where one service listens, where others reach it, and its own database."""

    name: str
    port: int
    database_url: str
    target: str


@dataclass(frozen=True)
class Settings:
    env: str = setting("MBT_ENV", "development",
                   "`development` or `production`. Production refuses development-only switches such as `MBT_DEV_LOGIN`.",
                   _parse_choice("development", "production"))
    data_dir: Path = setting("MBT_DATA_DIR", "var",
                         "Directory of the embedded default's SQLite files and other local state.", Path)
    bind_host: str = setting("MBT_BIND_HOST", "127.0.0.1",
                         "Interface every gRPC server and the gateway listen on (`0.0.0.0` in containers).")
    gateway_port: int = setting("MBT_GATEWAY_PORT", "8080", "Port of the REST gateway.", int)
    dev_login: bool = setting("MBT_DEV_LOGIN", None,
                          "Development identity (`X-MBT-Dev-User` header). Default: on in development, off in production; refused in production.",
                          _parse_bool)
    log_level: str = setting("MBT_LOG_LEVEL", "INFO", "Python log level.", str.upper)
    log_format: str = setting("MBT_LOG_FORMAT", "json", "`json` (one object per line) or `text`.",
                          _parse_choice("json", "text"))
    grace_seconds: float = setting("MBT_GRACE_SECONDS", "5",
                               "How long a server lets in-flight RPCs finish after SIGTERM.", float)
    redis_url: str = setting("MBT_REDIS_URL", "",
                         "Redis for shared state between replicas (sessions, rate limits, Celery). Empty: embedded, in-process.")
    db_pool_size: int = setting("MBT_DB_POOL_SIZE", "10", "Connections per service process (PostgreSQL).", int)
    rpc_timeout_seconds: float = setting("MBT_RPC_TIMEOUT_SECONDS", "10",
                                     "Deadline of service-to-service and gateway calls.", float)
    outbox_poll_ms: int = setting("MBT_OUTBOX_POLL_MS", "200",
                              "How often an idle outbox relay looks for undelivered events (it is also woken on commit).", int)
    outbox_batch_size: int = setting("MBT_OUTBOX_BATCH_SIZE", "200", "Events per `Deliver` call.", int)
    trading_disabled: bool = setting("MBT_TRADING_DISABLED", "0",
                                 "Kill switch: every order submit answers 503 `trading_disabled`; reads still work.",
                                 _parse_bool)
    new_orders_disabled: bool = setting("MBT_NEW_ORDERS_DISABLED", "0",
                                    "Kill switch: new submits answer `new_orders_disabled`; cancels and views still work.",
                                    _parse_bool)
    max_quote_age_seconds: Decimal = setting("MBT_MAX_QUOTE_AGE_SECONDS", "5",
                                         "A market order never fills on a quote older than this (simulated seconds).",
                                         _parse_decimal)
    market_order_collar_pct: Decimal = setting(
        "MBT_MARKET_ORDER_COLLAR_PCT", "5",
        "Market and stop orders never fill more than this % beyond the price they were submitted against "
        "(the touch, or the stop); buying power is reserved at that bound.", _parse_decimal)

    # -- market data (services/marketdata) -------------------------------------------
    marketdata_provider: str = setting(
        "MBT_MARKETDATA_PROVIDER", "replay",
        "Where quotes come from: `replay` (recorded ticks in simulated time) or `alpaca` (Alpaca market data, wall clock).",
        _parse_choice("replay", "alpaca"))
    replay_quotes_file: str = setting(
        "MBT_REPLAY_QUOTES_FILE", "",
        "Recorded NBBO ticks to replay: CSV (optionally gzipped) or Parquet with timestamp, symbol, bid, bid size, ask, ask size. Empty: the bundled LOBSTER AMZN/GOOG sample in `data/`.")
    replay_option_chain_file: str = setting(
        "MBT_REPLAY_OPTION_CHAIN_FILE", "",
        "Option chain snapshot served by the replay (Cboe quotedata layout, see `data/SOURCES.md`). Empty: the bundled SPY chain of 2023-09-14; `none`: no chain.")
    replay_dividends_file: str = setting(
        "MBT_REPLAY_DIVIDENDS_FILE", "",
        "Cash dividends served by the replay (`symbol,ex_date,cash_amount`). Empty: the bundled Yahoo AAPL/MSFT/SPY history, un-split-adjusted; `none`: no dividends.")
    replay_mode: str = setting(
        "MBT_REPLAY_MODE", "paced",
        "`paced`: the replay clock runs at `MBT_REPLAY_SPEED`. `stepped`: time moves only through `StepClock` (tests, backtests).",
        _parse_choice("paced", "stepped"))
    replay_speed: Decimal = setting(
        "MBT_REPLAY_SPEED", "1", "Simulated seconds per wall second of a paced replay (1 is real-time pace).",
        _parse_positive_decimal)
    replay_start: datetime | None = setting(
        "MBT_REPLAY_START", "",
        "Simulated time the replay starts at (RFC 3339). Empty: 30 minutes after the recording's first open. A restart resumes from its last checkpoint when that is later.",
        _parse_optional_time)
    replay_loop: bool = setting(
        "MBT_REPLAY_LOOP", "1",
        "When the recording runs out, play it again as the next trading day (sequences keep increasing). `0`: the market stays quiet after it.",
        _parse_bool)
    replay_skip_closed: bool = setting(
        "MBT_REPLAY_SKIP_CLOSED", "1",
        "Paced replay: when the market closes, jump the clock to the next open instead of waiting through nights, weekends and holidays.",
        _parse_bool)
    alpaca_key: Secret = setting(
        "ALPACA_MARKET_DATA_KEY", "",
        "The one server-side Alpaca market-data key id (never a user's; never logged). Or `ALPACA_MARKET_DATA_KEY_FILE`.",
        Secret)
    alpaca_secret: Secret = setting(
        "ALPACA_MARKET_DATA_SECRET", "", "Its secret. Or `ALPACA_MARKET_DATA_SECRET_FILE`.", Secret)
    alpaca_key_file: str = setting(
        "ALPACA_MARKET_DATA_KEY_FILE", "", "File holding the key id (a mounted secret); used when the variable itself is empty.")
    alpaca_secret_file: str = setting(
        "ALPACA_MARKET_DATA_SECRET_FILE", "", "File holding the secret (a mounted secret).")
    alpaca_feed: str = setting(
        "MBT_ALPACA_FEED", "iex", "Alpaca stock feed: `iex` (free) or `sip` (consolidated, paid).", _parse_choice("iex", "sip"))
    alpaca_options_feed: str = setting(
        "MBT_ALPACA_OPTIONS_FEED", "indicative", "Alpaca options feed: `indicative` (free) or `opra` (paid).",
        _parse_choice("indicative", "opra"))
    alpaca_data_url: str = setting(
        "MBT_ALPACA_DATA_URL", "https://data.alpaca.markets", "Alpaca market-data REST base URL.")
    alpaca_stream_url: str = setting(
        "MBT_ALPACA_STREAM_URL", "wss://stream.data.alpaca.markets",
        "Alpaca market-data websocket base URL (`/v2/<feed>` and `/v1beta1/<options feed>` are appended).")
    quote_stream_buffer: int = setting(
        "MBT_QUOTE_STREAM_BUFFER", "10000",
        "Ticks queued per `StreamQuotes` subscriber; a live feed drops ticks beyond it and tells the subscriber which (`dropped`).",
        int)
    quote_stream_batch: int = setting(
        "MBT_QUOTE_STREAM_BATCH", "500", "Most ticks per `StreamQuotes` message.", int)
    step_stall_seconds: float = setting(
        "MBT_STEP_STALL_SECONDS", "5",
        "A stepped replay waits for a subscriber that is reading; one that reads nothing for this long gets drops instead.",
        float)
    tick_archive_retention_days: int = setting(
        "MBT_TICK_ARCHIVE_RETENTION_DAYS", "30",
        "Archived ticks older than this many days (simulated time) are deleted; `0` keeps them forever.", int)
    tick_archive_flush_ms: int = setting(
        "MBT_TICK_ARCHIVE_FLUSH_MS", "200", "How often the tick archive writes its batch (also when 5000 ticks are pending).",
        int)

    services: Mapping[str, ServiceSettings] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
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
        values["services"] = _service_settings(environ, values["data_dir"])
        values.update(overrides)
        return cls(**values)

    def service(self, name: str) -> ServiceSettings:
        return self.services[name]


def _service_settings(environ: Mapping[str, str], data_dir: Path) -> dict[str, ServiceSettings]:
    result = {}
    for name in SERVICES:
        prefix = f"MBT_{name.upper()}"
        try:
            port = int(environ.get(f"{prefix}_PORT", DEFAULT_PORTS[name]))
        except ValueError:
            raise ConfigError(f"{prefix}_PORT: expected an integer") from None
        result[name] = ServiceSettings(
            name=name,
            port=port,
            database_url=environ.get(f"{prefix}_DATABASE_URL", f"sqlite:///{data_dir / (name + '.db')}"),
            target=environ.get(f"{prefix}_TARGET", f"127.0.0.1:{port}"),
        )
    return result


SERVICE_VARIABLES = (
    ("MBT_<SERVICE>_PORT", "accounts 50051, orders 50052, matcher 50053, marketdata 50054, activities 50055",
     "Port the service's gRPC server listens on."),
    ("MBT_<SERVICE>_DATABASE_URL", "`sqlite:///var/<service>.db`",
     "The service's own database (`postgresql+psycopg://…` in production). The service migrates it at start."),
    ("MBT_<SERVICE>_TARGET", "`127.0.0.1:<port>`",
     "How other services reach it (`dns:///orders-headless:50052` on Kubernetes: client-side round-robin)."),
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


if __name__ == "__main__":
    if sys.argv[1:2] == ["--update-readme"]:
        update_readme(Path(sys.argv[2] if len(sys.argv) > 2 else "README.md"))
    else:
        sys.stdout.write(markdown_table() + "\n")
