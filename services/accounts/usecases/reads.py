"""What accounts answers a user: the account valued at the marks the user may see, the
positions, and P&L over a window. A user's first read opens their account; an operator's
never does."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from services.accounts.domain.account import Account
from services.accounts.domain.retention import CARRIED_FORWARD, POSITION_KINDS, carried_position
from services.accounts.domain.rules import Mark, Position, apply_fill, mark_price, unrealized_pl
from services.accounts.domain.views import AccountSummary, PnlReport, PositionRecord
from services.accounts.store import AccountRepository, PositionRow, ledger_line
from services.accounts.usecases.deps import Deps, with_account
from services.common.errors import invalid_argument, not_found
from services.common.rpc import context
from services.common.trading import AssetClass, Side


def _record(row: PositionRow, marks: Mapping[str, Mark]) -> PositionRecord:
    return PositionRecord(
        row.as_position(),
        AssetClass(row.asset_class),
        row.opened_at,
        row.closed_at,
        row.updated_at,
        marks.get(row.symbol) if row.closed_at is None else None,
    )


class AccountReads:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def _account(self, user_id: str) -> Account:
        async with self.deps.db.reading() as session:
            account = await AccountRepository(session).account_of(user_id)
        if account is not None:
            return account
        if context.identity().kind == "ops":
            raise not_found("account of user", user_id)  # reading never opens an account
        return await with_account(self.deps, user_id, lambda a: a)

    async def account(self, user_id: str) -> AccountSummary:
        account = await self._account(user_id)
        marks = await self.deps.market.latest(set(account.positions))
        value = account.valuation(marks)
        now = self.deps.clock.now()
        return AccountSummary(
            account.account_id,
            account.account_type,
            account.profile,
            "USD",
            account.starting_cash,
            value,
            account.buying_power(marks),
            account.created_at or now,
            account.updated_at or now,
            now,
            account.options_buying_power(marks),
        )

    async def positions(self, user_id: str, include_closed: bool = False) -> list[PositionRecord]:
        account = await self._account(user_id)
        async with self.deps.db.reading() as session:
            rows = await AccountRepository(session).positions(account.account_id, include_closed=include_closed)
        marks = await self.deps.market.latest({r.symbol for r in rows if r.closed_at is None})
        return [_record(row, marks) for row in rows]

    async def position(self, user_id: str, symbol: str) -> PositionRecord:
        for record in await self.positions(user_id):
            if record.position.symbol == symbol:
                return record
        raise not_found("position", symbol)

    async def pnl(self, user_id: str, start: datetime | None, end: datetime | None) -> PnlReport:
        """P&L of the window [start, end] (start: the account's opening; end: now); an end after
        the simulated now is cut at now, and the report says so: nothing is known about the
        future. Realized from the fills inside the window; unrealized of what was held at its
        end, marked at the quote in force then."""
        now = self.deps.clock.now()
        clamped = end is not None and end > now
        end = now if end is None or clamped else end
        if start is not None and start > end:
            raise invalid_argument("from must not be after to", "from")
        account = await self._account(user_id)
        start = start or account.created_at or end
        async with self.deps.db.reading() as session:
            ledger = await AccountRepository(session).ledger(account.account_id, until=end)
        realized: dict[str, Decimal] = {}
        held: dict[str, Position] = {}
        for entry in ledger:
            if entry.kind == CARRIED_FORWARD and entry.symbol:
                held[entry.symbol] = carried_position(ledger_line(entry))
            if entry.kind not in POSITION_KINDS:
                continue
            effect = apply_fill(
                held.get(entry.symbol), entry.symbol, Side(entry.side), entry.qty, entry.price, entry.multiplier
            )
            held[entry.symbol] = effect.position
            if start <= entry.occurred_at <= end:
                realized[entry.symbol] = realized.get(entry.symbol, Decimal(0)) + effect.realized_pl
        open_positions = {s: p for s, p in held.items() if p.is_open}
        marks = await (
            self.deps.market.latest(set(open_positions))
            if end >= now
            else self.deps.market.at(set(open_positions), end)
        )
        unrealized = {}
        for symbol, position in open_positions.items():
            mark = marks.get(symbol)
            unrealized[symbol] = unrealized_pl(
                position, mark_price(position, mark.bid if mark else None, mark.ask if mark else None)
            )
        return PnlReport(start, end, realized, unrealized, clamped)
