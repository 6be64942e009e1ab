"""The task registry: every job MBT runs, where its task lives, what its key is and when it
runs. A job is added here and defined, with ``services.jobs.runs.job``, in the ``tasks.py``
of the service that owns what it changes.

Cadences follow the market clock (``services.jobs.schedule``): ``SESSION_CLOSE`` at each
XNYS session's close (key: the session's date) — shifted by the job's ``offset`` when it
has one (a configured time before or after each close, early closes included) — ``HOURLY``
at each whole simulated hour (key: the hour, UTC). A job without a cadence runs when
something offers it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from services.common.config import Settings

SESSION_CLOSE = "session_close"
HOURLY = "hourly"
WEEK_CLOSE = "week_close"


@dataclass(frozen=True)
class KeyKind:
    """What a job's key names, and how a given key is checked."""

    name: str
    example: str
    pattern: str

    def check(self, key: str) -> str:
        """``key`` when it is one of this kind; raises ValueError saying what is expected."""
        if not re.fullmatch(self.pattern, key):
            raise ValueError(f"a key is a {self.name}, like {self.example}; got {key!r}")
        return key


class _DateKind(KeyKind):
    def check(self, key: str) -> str:
        super().check(key)
        try:
            date.fromisoformat(key)
        except ValueError:
            raise ValueError(f"a key is a {self.name}, like {self.example}; {key!r} is no such day") from None
        return key


class _HourKind(KeyKind):
    def check(self, key: str) -> str:
        super().check(key)
        try:
            datetime.strptime(key, "%Y-%m-%dT%H:00Z")
        except ValueError:
            raise ValueError(f"a key is a {self.name}, like {self.example}; {key!r} is no such hour") from None
        return key


SESSION_DATE = _DateKind("session date", "2012-06-21", r"\d{4}-\d{2}-\d{2}")
HOUR = _HourKind("whole hour, UTC", "2012-06-21T15:00Z", r"\d{4}-\d{2}-\d{2}T\d{2}:00Z")
BACKTEST_ID = KeyKind("backtest id", "bt_…", r"bt_[a-z2-7]{24}")
FILL_ID = KeyKind("fill id", "fill_…", r"fill_[a-z2-7]{24}")
EXPORT_ID = KeyKind("data export id", "exp_…", r"exp_[a-z2-7]{24}")


@dataclass(frozen=True)
class JobSpec:
    name: str
    # The module that defines its task (the owning service's tasks.py).
    module: str
    key: KeyKind
    # When the scheduler offers it; None: when something else does.
    cadence: str | None = None
    description: str = ""
    # SESSION_CLOSE only: the due point's distance from each close (negative: before it),
    # from the settings.
    offset: Callable[[Settings], timedelta] | None = None

    def offset_in(self, settings: Settings) -> timedelta:
        return self.offset(settings) if self.offset is not None else timedelta()


REGISTRY: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec(
            "mbt.run_backtest",
            "services.matcher.tasks",
            BACKTEST_ID,
            description="runs a queued backtest in the matcher, reporting its progress",
        ),
        JobSpec(
            "mbt.expire_options",
            "services.accounts.tasks",
            SESSION_DATE,
            SESSION_CLOSE,
            description=(
                "settles the option positions expiring at each close, at the do-not-exercise cutoff after it:"
                " exercised, assigned or expired worthless"
            ),
            offset=lambda settings: timedelta(minutes=settings.do_not_exercise_cutoff_minutes),
        ),
        JobSpec(
            "mbt.sell_uncarriable_options",
            "services.accounts.tasks",
            SESSION_DATE,
            SESSION_CLOSE,
            description=(
                "before each close, sells at the market the long in-the-money options expiring then that cash"
                " accounts could not carry into stock"
            ),
            offset=lambda settings: -timedelta(minutes=settings.option_pre_close_sale_minutes),
        ),
        JobSpec(
            "mbt.purge_expired",
            "services.accounts.tasks",
            HOUR,
            HOURLY,
            description="deletes history past each user's tier window (orders, fills, closed positions, activities, snapshots; ledger folded)",
        ),
        JobSpec(
            "mbt.export_user_data",
            "services.accounts.tasks",
            EXPORT_ID,
            description="GDPR export: every service's ExportUserData (and the gateway's tables) in one zip",
        ),
        JobSpec(
            "mbt.erase_user_data",
            "services.accounts.tasks",
            HOUR,
            HOURLY,
            description=(
                "GDPR erasure of every user whose cooling period is over, in every service, their working"
                " orders canceled first (cooling users' orders too)"
            ),
        ),
        JobSpec(
            "mbt.verify_audit_chain",
            "services.activities.tasks",
            SESSION_DATE,
            SESSION_CLOSE,
            description="walks the audit log's hash chain after each close; a break is an error and a metric",
        ),
        JobSpec(
            "mbt.eod_mark_all",
            "services.accounts.tasks",
            SESSION_DATE,
            SESSION_CLOSE,
            description="one EOD snapshot per account at each close, marked at the closing quotes",
        ),
        JobSpec(
            "mbt.credit_dividends",
            "services.accounts.tasks",
            SESSION_DATE,
            SESSION_CLOSE,
            description="pays the dividends payable that day to holders at the ex-date's open, charges shorts",
        ),
        JobSpec(
            "mbt.accrue_margin_interest",
            "services.accounts.tasks",
            SESSION_DATE,
            SESSION_CLOSE,
            description="charges a night's interest on margin debit balances, with a teaching card",
        ),
        JobSpec(
            "mbt.send_fill_notification",
            "services.activities.tasks",
            FILL_ID,
            description="delivers a fill's notification to the user's inbox and the signed webhook",
        ),
        JobSpec(
            "mbt.evaluate_goal_streak",
            "services.activities.tasks",
            SESSION_DATE,
            WEEK_CLOSE,
            description="at each week's last session close, a system_nudge per account: weekly goal met, streak length",
        ),
    )
}


def spec(name: str) -> JobSpec:
    """Raises KeyError naming the registered jobs."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no job {name!r}; jobs: {', '.join(sorted(REGISTRY))}") from None


def key_for_date(job: JobSpec, day: date) -> str:
    """The key of ``job`` for ``mbt jobs run --date``; ValueError for a job not keyed by date."""
    if job.key is not SESSION_DATE:
        raise ValueError(f"{job.name} is keyed by {job.key.name} ({job.key.example}): give --key")
    return day.isoformat()
