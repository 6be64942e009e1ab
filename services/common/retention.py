"""What every service's retention purge shares (pure): a user's cutoff and the batch size.
The cutoffs come from the ``mbt.purge_expired`` job, from each user's tier (README, Jobs,
"Retention"); each service deletes only its own rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common.errors import invalid_argument

DEFAULT_BATCH = 500
MAX_BATCH = 5000


@dataclass(frozen=True)
class UserCutoff:
    """One user's retention cutoff: history that ended before it (market time) may go."""

    user_id: str
    cutoff: datetime


def cutoff_for(tier: str, at: datetime, windows: Mapping[str, int]) -> datetime | None:
    """Where a user of ``tier`` loses history at market time ``at``: ``at`` minus the
    tier's window in days (``windows``: MBT_RETENTION_FREE_DAYS, MBT_RETENTION_PRO_DAYS);
    None for a tier without a window (Pro+: unlimited). Source: issue 12, retention by tier
    (Free 90 days, Pro 3 years, Pro+ unlimited)."""
    days = windows.get(tier)
    return None if days is None else at - timedelta(days=days)


def batch_size(requested: int) -> int:
    """Rows per transaction: ``requested``, 0 meaning the default (500); InvalidArgument
    (``batch_size``) when negative or above 5000."""
    if requested < 0 or requested > MAX_BATCH:
        raise invalid_argument(f"batch_size must be between 0 and {MAX_BATCH}", "batch_size")
    return requested or DEFAULT_BATCH
