"""The matcher's tables (its only ones): backtest runs and their result files. The book
itself stays in memory (it is rebuilt from orders on start)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text, delete, func, \
    select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.common.persistence.sqltypes import TYPE_ANNOTATION_MAP

SERVICE = "matcher"
QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"


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
    # The Backtest message as submitted (its inputs), serialized: what a run (or a retry
    # after a restart, or the later mbt.run_backtest job) reads.
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

    backtest_id: Mapped[str] = mapped_column(ForeignKey("mbt_backtests.backtest_id", ondelete="CASCADE"),
                                             primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)


@dataclass(frozen=True)
class FileInfo:
    name: str
    content_type: str
    size_bytes: int


class BacktestRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: BacktestRow) -> None:
        self.session.add(row)

    def get(self, backtest_id: str, user_id: str | None = None) -> BacktestRow | None:
        row = self.session.get(BacktestRow, backtest_id)
        if row is None or (user_id is not None and row.user_id != user_id):
            return None
        return row

    def list_for_user(self, user_id: str, after: tuple[datetime, str] | None, limit: int) -> list[BacktestRow]:
        query = select(BacktestRow).where(BacktestRow.user_id == user_id)
        if after is not None:
            created, backtest_id = after
            query = query.where((BacktestRow.created_at < created)
                                | ((BacktestRow.created_at == created) & (BacktestRow.backtest_id < backtest_id)))
        query = query.order_by(BacktestRow.created_at.desc(), BacktestRow.backtest_id.desc()).limit(limit)
        return list(self.session.scalars(query))

    def unfinished(self) -> list[BacktestRow]:
        query = select(BacktestRow).where(BacktestRow.status.in_((QUEUED, RUNNING))).order_by(
            BacktestRow.created_at, BacktestRow.backtest_id)
        return list(self.session.scalars(query))

    def set_progress(self, backtest_id: str, percent: int) -> None:
        self.session.execute(update(BacktestRow).where(BacktestRow.backtest_id == backtest_id,
                                                       BacktestRow.status == RUNNING)
                             .values(progress_percent=percent))

    def replace_files(self, backtest_id: str, files: list[tuple[str, str, bytes]]) -> None:
        self.session.execute(delete(BacktestFileRow).where(BacktestFileRow.backtest_id == backtest_id))
        for position, (name, content_type, content) in enumerate(files):
            self.session.add(BacktestFileRow(backtest_id=backtest_id, name=name, position=position,
                                             content_type=content_type, content=content))

    def files(self, backtest_id: str) -> list[FileInfo]:
        query = (select(BacktestFileRow.name, BacktestFileRow.content_type, func.length(BacktestFileRow.content))
                 .where(BacktestFileRow.backtest_id == backtest_id).order_by(BacktestFileRow.position))
        return [FileInfo(name, kind, size) for name, kind, size in self.session.execute(query)]

    def file(self, backtest_id: str, name: str) -> BacktestFileRow | None:
        return self.session.get(BacktestFileRow, (backtest_id, name))
