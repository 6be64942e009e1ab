"""The graduation gate (``domain.graduation``): the user's answer, from the account's EOD
snapshots (equity at each cycle's boundaries), and an operator's audited override."""

from __future__ import annotations

from decimal import Decimal

from services.accounts.domain.graduation import Graduation, Override, judge
from services.accounts.store import AccountRepository, GraduationOverrideRow
from services.accounts.usecases.deps import Deps
from services.common.errors import invalid_argument


class GraduationGate:
    def __init__(self, deps: Deps, required_cycles: int, cycle_days: int) -> None:
        self.deps = deps
        self.required = required_cycles
        self.cycle_days = cycle_days

    async def get(self, user_id: str) -> Graduation:
        """The user's gate on the market clock's date (a user without an account, or without
        a snapshot, has no complete cycle yet; the sessions are asked of market data).
        Reading never opens an account."""
        today = self.deps.clock.now().date()
        async with self.deps.db.reading() as session:
            repo = AccountRepository(session)
            account = await repo.account_of(user_id)
            row = await repo.graduation_override(user_id)
            equity = await repo.equity_by_day(account.account_id) if account is not None else {}
        opened = account.created_at.date() if account is not None and account.created_at else today
        starting = account.starting_cash if account is not None else Decimal(0)
        sessions = [session.day for session in await self.deps.market.sessions(opened, today)] if equity else []
        override = Override(row.reason, row.operator, row.granted_at) if row is not None else None
        return judge(
            opened,
            today,
            sessions,
            starting,
            equity,
            required=self.required,
            cycle_days=self.cycle_days,
            override=override,
        )

    async def override(self, user_id: str, reason: str, operator: str) -> Graduation:
        """Open the user's gate, with why and who (an audit row says so); a user who has an
        override keeps the first one. invalid_argument without a user id or a reason."""
        if not user_id.strip():
            raise invalid_argument("user_id is required", "user_id")
        if not reason.strip():
            raise invalid_argument("reason is required: say why the gate is opened", "reason")
        async with self.deps.uow() as uow:
            repo = AccountRepository(uow.session, uow.collect)
            if await repo.graduation_override(user_id) is None:
                now = self.deps.clock.now()
                await repo.add_graduation_override(
                    GraduationOverrideRow(user_id=user_id, reason=reason.strip(), operator=operator, granted_at=now)
                )
                await uow.audit(
                    action="graduation_override",
                    entity_type="user",
                    entity_id=user_id,
                    user_id=user_id,
                    before=None,
                    after={"reason": reason.strip(), "operator": operator},
                    occurred_at=now,
                )
        return await self.get(user_id)
