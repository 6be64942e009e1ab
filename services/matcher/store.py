"""The matcher's tables (its only ones) and their repository: backtest runs and their
result files. The book itself stays in memory (it is rebuilt from orders on start)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.persistence.sqltypes import TYPE_ANNOTATION_MAP
from services.common.persistence.user_data import UserTables, by_parent, by_user_id
from services.matcher import wire
from services.matcher.backtest.model import BacktestRun, ResultContent, ResultFile, RunStatus

SERVICE = "matcher"


class Base(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = TYPE_ANNOTATION_MAP


class BacktestRow(Base):
    __tablename__ = "mbt_backtests"
    __table_args__ = (
        Index("ix_mbt_backtests_user_created", "user_id", "created_at", "backtest_id"),
        Index("ix_mbt_backtests_status", "status"),
    )

    backtest_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    # The run's spec as its Backtest message (the input fields), serialized: what a run
    # (or a retry after a restart, or the later mbt.run_backtest job) reads.
    parameters: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    progress_percent: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)
    # [[name, value], ...] in report order.
    statistics: Mapped[list] = mapped_column(JSON)
    ticks: Mapped[int] = mapped_column(BigInteger)
    orders: Mapped[int] = mapped_column(BigInteger)
    fills: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class BacktestFileRow(Base):
    __tablename__ = "mbt_backtest_files"

    backtest_id: Mapped[str] = mapped_column(
        ForeignKey("mbt_backtests.backtest_id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)


# GDPR export and erasure (services.common.persistence.user_data), parents first.
USER_TABLES = UserTables(
    SERVICE,
    [
        by_user_id(BacktestRow.__table__),
        by_parent(BacktestFileRow.__table__, "backtest_id", BacktestRow.__table__, "backtest_id"),
    ],
)

_RUN_FIELDS = (
    "backtest_id",
    "user_id",
    "progress_percent",
    "error",
    "ticks",
    "orders",
    "fills",
    "created_at",
    "started_at",
    "finished_at",
)


def _write(row: BacktestRow, run: BacktestRun) -> None:
    for name in _RUN_FIELDS:
        setattr(row, name, getattr(run, name))
    row.parameters = wire.stored_spec(run.spec)
    row.status = run.status.value
    row.statistics = [list(pair) for pair in run.statistics]


class BacktestRepository:
    """Backtest runs and their files, in one transaction (``session``)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, run: BacktestRun) -> None:
        row = BacktestRow()
        _write(row, run)
        self.session.add(row)
        await self.session.flush()

    async def save(self, run: BacktestRun, contents: Sequence[ResultContent] | None = None) -> None:
        """Store the run as it now stands; ``contents`` replace its files when given."""
        row = await self.session.get(BacktestRow, run.backtest_id)
        if row is None:
            raise LookupError(f"backtest {run.backtest_id} saved before it was added")
        _write(row, run)
        if contents is not None:
            await self.session.execute(delete(BacktestFileRow).where(BacktestFileRow.backtest_id == run.backtest_id))
            self.session.add_all(
                BacktestFileRow(
                    backtest_id=run.backtest_id,
                    name=c.name,
                    position=position,
                    content_type=c.content_type,
                    content=c.content,
                )
                for position, c in enumerate(contents)
            )
        await self.session.flush()

    async def get(self, backtest_id: str, user_id: str | None = None) -> BacktestRun | None:
        """None when there is none, or it is not ``user_id``'s (when given)."""
        row = await self.session.get(BacktestRow, backtest_id)
        if row is None or (user_id is not None and row.user_id != user_id):
            return None
        return await self._run(row)

    async def list_for_user(self, user_id: str, after: tuple[datetime, str] | None, limit: int) -> list[BacktestRun]:
        """Newest first; ``after`` is the (created_at, backtest_id) of the previous page's last run."""
        query = select(BacktestRow).where(BacktestRow.user_id == user_id)
        if after is not None:
            created, backtest_id = after
            query = query.where(
                (BacktestRow.created_at < created)
                | ((BacktestRow.created_at == created) & (BacktestRow.backtest_id < backtest_id))
            )
        query = query.order_by(BacktestRow.created_at.desc(), BacktestRow.backtest_id.desc()).limit(limit)
        return [await self._run(row) for row in (await self.session.scalars(query)).all()]

    async def unfinished(self) -> list[str]:
        """Ids of the runs queued or running, oldest first."""
        query = (
            select(BacktestRow.backtest_id)
            .where(BacktestRow.status.in_((RunStatus.QUEUED.value, RunStatus.RUNNING.value)))
            .order_by(BacktestRow.created_at, BacktestRow.backtest_id)
        )
        return list((await self.session.scalars(query)).all())

    async def set_progress(self, backtest_id: str, percent: int) -> None:
        """Progress of a running backtest (none once it has finished)."""
        await self.session.execute(
            update(BacktestRow)
            .where(BacktestRow.backtest_id == backtest_id, BacktestRow.status == RunStatus.RUNNING.value)
            .values(progress_percent=percent)
        )

    async def file(self, backtest_id: str, name: str) -> ResultContent | None:
        row = await self.session.get(BacktestFileRow, (backtest_id, name))
        return None if row is None else ResultContent(row.name, row.content_type, bytes(row.content))

    async def _run(self, row: BacktestRow) -> BacktestRun:
        query = (
            select(BacktestFileRow.name, BacktestFileRow.content_type, func.length(BacktestFileRow.content))
            .where(BacktestFileRow.backtest_id == row.backtest_id)
            .order_by(BacktestFileRow.position)
        )
        files = tuple(ResultFile(name, kind, size) for name, kind, size in await self.session.execute(query))
        return BacktestRun(
            backtest_id=row.backtest_id,
            user_id=row.user_id,
            spec=wire.spec_from_stored(row.parameters),
            status=RunStatus(row.status),
            created_at=row.created_at,
            progress_percent=row.progress_percent,
            error=row.error,
            started_at=row.started_at,
            finished_at=row.finished_at,
            statistics=tuple((name, value) for name, value in row.statistics),
            files=files,
            ticks=row.ticks,
            orders=row.orders,
            fills=row.fills,
        )
