"""A replay around a real ex-date of the bundled dividend file (AAPL, 2012-08-09, $2.65 a
share, Yahoo's history un-split-adjusted), for the money jobs' tests: recorded AAPL quotes
every 30 s of 2012-08-08 and 2012-08-09 (bid 619.00 / ask 619.10 the first day, 621.00 /
621.10 the second), a stepped clock starting the day before the ex-date, and reads of
accounts' EOD snapshots straight from its database."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from services.accounts.store import EodSnapshotRow
from services.common.config import Settings
from services.common.persistence.db import BlockingDatabase
from tests.support.mesh import mesh_environ

EX_DATE_START = datetime(2012, 8, 8, 14, 0, tzinfo=UTC)
EX_DATE_OPEN = datetime(2012, 8, 9, 13, 30, tzinfo=UTC)
EX_DATE_CLOSE = datetime(2012, 8, 9, 20, 0, tzinfo=UTC)
AAPL_DIVIDEND = Decimal("2.65")
QUOTES = {  # day: (bid, ask)
    datetime(2012, 8, 8, tzinfo=UTC): (Decimal("619.00"), Decimal("619.10")),
    datetime(2012, 8, 9, tzinfo=UTC): (Decimal("621.00"), Decimal("621.10")),
}


def write_aapl_quotes(path: Path) -> Path:
    lines = ["ts_ns,symbol,bid_px,bid_sz,ask_px,ask_sz"]
    for day, (bid, ask) in QUOTES.items():
        moment = day + timedelta(hours=13, minutes=30)
        while moment <= day + timedelta(hours=20):
            lines.append(f"{int(moment.timestamp()) * 1_000_000_000},AAPL,{bid},100,{ask},100")
            moment += timedelta(seconds=30)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def ex_date_environ(databases, data_dir: Path, **env: str) -> dict[str, str]:
    """A stepped replay of the AAPL quotes from 2012-08-08 14:00Z, with the bundled dividends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return mesh_environ(
        databases,
        data_dir,
        MBT_REPLAY_MODE="stepped",
        MBT_REPLAY_START=EX_DATE_START.isoformat(),
        MBT_REPLAY_QUOTES_FILE=str(write_aapl_quotes(data_dir / "aapl-quotes.csv.gz")),
        MBT_REPLAY_TRADES_FILE="none",
        **env,
    )


def snapshots(settings: Settings) -> list[EodSnapshotRow]:
    """Every EOD snapshot accounts wrote, by account and date. Blocking: call it off the
    event loop (``asyncio.to_thread``), where the services under test keep running."""
    db = BlockingDatabase(settings.service("accounts").database_url)
    try:
        with db.snapshot() as session:
            rows = list(
                session.execute(
                    select(EodSnapshotRow).order_by(EodSnapshotRow.account_id, EodSnapshotRow.as_of_date)
                ).scalars()
            )
            session.expunge_all()
            return rows
    finally:
        db.dispose()
