"""Buying-power holds for orders (internal RPCs the orders service calls): each order version
holds what its terms need, bound to those terms."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.accounts.domain.account import Account
from services.accounts.domain.rules import AccountType, HoldTerms, Mark, VersionHold
from services.accounts.store import AccountRepository, PrivacyRepository
from services.accounts.usecases.deps import Deps, with_account
from services.accounts.usecases.privacy import erasure_pending
from services.common.errors import DomainError, invalid_argument
from services.common.trading import FillPreference, PositionIntent


@dataclass(frozen=True)
class SentChoices:
    """What an option order chose, as sent (None: to be resolved from the account)."""

    position_intent: PositionIntent | None = None
    leg_intents: tuple[PositionIntent | None, ...] = ()
    fill_preference: FillPreference | None = None


@dataclass(frozen=True)
class Held:
    account_id: str
    hold: VersionHold
    buying_power: Decimal
    position_intent: PositionIntent | None
    leg_intents: tuple[PositionIntent, ...]
    fill_preference: FillPreference | None


class Holds:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def hold(
        self,
        user_id: str,
        order_id: str,
        version: int,
        terms: HoldTerms,
        sent: SentChoices = SentChoices(),
        parent_order_id: str = "",
    ) -> Held:
        """Hold buying power for ``version`` of ``order_id`` (``Account.hold``'s rules and
        refusals); returns what was held and resolved (``Held``): an option order's position
        intent, a multi-leg order's leg intents and fill preference, as ``sent`` or inferred
        from the account. A margin account is valued at real-time marks of its positions
        first (outside the transaction). An exit of a bracket or oto (``parent_order_id`` its
        entry) is ``conflict`` until the ledger applied the entry's fill: the exit closes
        the position that fill opens (README "Order classes")."""
        if not order_id or not user_id:
            raise invalid_argument("order_id and user_id are required")
        marks: dict[str, Mark] = {}
        async with self.deps.db.reading() as session:
            known = await AccountRepository(session).account_of(user_id)
            chosen = await AccountRepository(session).chosen_fill_preference(user_id)
            if await PrivacyRepository(session).pending_erasure(user_id) is not None:
                raise erasure_pending(user_id)
            if parent_order_id and (
                known is None or not await AccountRepository(session).has_fill_of(known.account_id, parent_order_id)
            ):
                raise DomainError(
                    "CONFLICT",
                    f"the fill of entry {parent_order_id} is not in the ledger yet; the exit is held until it is",
                )
        if known is not None and known.account_type is AccountType.MARGIN:
            marks = await self.deps.market.latest({*known.positions, terms.symbol})
        now = self.deps.clock.now()

        def take(account: Account) -> Held:
            intent = account.position_intent(terms, sent.position_intent)
            legs = account.leg_intents(terms, sent.leg_intents)
            preference = account.fill_preference(sent.fill_preference, chosen) if terms.legs else None
            hold = account.hold(order_id, version, terms, marks, now)
            return Held(account.account_id, hold, account.buying_power(marks), intent, legs, preference)

        return await with_account(self.deps, user_id, take, order_id=order_id)

    async def release(self, user_id: str, order_id: str, version: int) -> Decimal:
        """Release one version's hold (``version`` > 0: a replace abandoned) or every version's
        (0: the order ended before it was accepted); returns what they held (the same on a
        repeat)."""
        if not order_id or not user_id:
            raise invalid_argument("order_id and user_id are required")
        now = self.deps.clock.now()
        if version:
            return await with_account(
                self.deps, user_id, lambda a: a.abandon(order_id, version, now), order_id=order_id
            )
        return await with_account(self.deps, user_id, lambda a: a.release(order_id, "canceled", now), order_id=order_id)
