"""What a backtest is to the matcher's BacktestService (pure values, no I/O): what a run was
asked for (``BacktestSpec``) and where it stands (``BacktestRun``: queued, running, then
succeeded or failed, with its statistics and result files)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from services.common.errors import invalid_argument

# Where a run's quotes come from, besides a recorded tick file named by its path.
BUNDLED = "bundled"
MARKETDATA = "marketdata"
MAX_DAYS = 366
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class BacktestSpec:
    """What to run: a registered strategy (with its parameters) or a script, over which
    quotes (``bundled``, a recorded file, or ``marketdata``), on which New York days.
    ``runs.build_strategy`` says whether the strategy or script itself is valid."""

    first_day: date
    last_day: date
    strategy: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    script: Mapping[str, Any] | None = None
    data: str = BUNDLED
    symbols: tuple[str, ...] = ()
    account_type: str = ""
    starting_cash: Decimal | None = None
    mode: str = "jump"
    seed: str = "0"

    def validate(self) -> None:
        """invalid_argument naming the field (the engine checks ``mode`` itself)."""
        if bool(self.strategy) == (self.script is not None):
            raise invalid_argument("give either a registered strategy or a script", "strategy")
        if self.last_day < self.first_day:
            raise invalid_argument("to_date must not be before from_date", "to_date")
        if (self.last_day - self.first_day).days >= MAX_DAYS:
            raise invalid_argument(f"a backtest spans at most {MAX_DAYS} days", "to_date")
        if self.starting_cash is not None and self.starting_cash <= 0:
            raise invalid_argument("starting_cash must be positive", "starting_cash")
        if self.account_type not in ("", "cash", "margin"):
            raise invalid_argument("account_type must be cash or margin", "account_type")


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class ResultFile:
    name: str
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class ResultContent:
    name: str
    content_type: str
    content: bytes

    @property
    def file(self) -> ResultFile:
        return ResultFile(self.name, self.content_type, len(self.content))


@dataclass(frozen=True)
class BacktestRun:
    """One user's backtest: its spec and how far it got. Times are wall-clock UTC;
    ``statistics`` are (name, value) in report order."""

    backtest_id: str
    user_id: str
    spec: BacktestSpec
    status: RunStatus
    created_at: datetime
    progress_percent: int = 0
    error: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    statistics: tuple[tuple[str, str], ...] = ()
    files: tuple[ResultFile, ...] = ()
    ticks: int = 0
    orders: int = 0
    fills: int = 0

    @property
    def unfinished(self) -> bool:
        return self.status in (RunStatus.QUEUED, RunStatus.RUNNING)

    def started(self, now: datetime) -> BacktestRun:
        """Running from ``now`` (again, after a restart interrupted it)."""
        return dataclasses.replace(self, status=RunStatus.RUNNING, started_at=now, progress_percent=0)

    def failed(self, error: str, now: datetime) -> BacktestRun:
        return dataclasses.replace(self, status=RunStatus.FAILED, error=error[:MAX_ERROR_CHARS], finished_at=now)

    def succeeded(
        self,
        statistics: tuple[tuple[str, str], ...],
        files: tuple[ResultFile, ...],
        *,
        ticks: int,
        orders: int,
        fills: int,
        now: datetime,
    ) -> BacktestRun:
        return dataclasses.replace(
            self,
            status=RunStatus.SUCCEEDED,
            progress_percent=100,
            finished_at=now,
            statistics=statistics,
            files=files,
            ticks=ticks,
            orders=orders,
            fills=fills,
        )
