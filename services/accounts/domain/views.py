"""What accounts answers, as domain values (``wire`` turns them into messages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.accounts.domain.rules import AccountType, Mark, Position, Profile, Tier, Valuation
from services.common.trading import AssetClass, FillPreference


@dataclass(frozen=True)
class User:
    user_id: str
    tier: Tier
    profile: Profile
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Settings:
    """A user's own settings (README "Accounts"): ``fill_preference`` is the default a
    multi-leg order that sends none gets, ``fill_preference_chosen`` whether the user chose
    it (else it is the profile's); ``starting_cash`` (USD) what the account opened with or
    will open with, ``starting_cash_cap`` the tier's most."""

    tier: Tier
    profile: Profile
    account_type: AccountType
    fill_preference: FillPreference
    fill_preference_chosen: bool
    starting_cash: Decimal
    starting_cash_cap: Decimal


@dataclass(frozen=True)
class AccountSummary:
    account_id: str
    account_type: AccountType
    profile: Profile
    currency: str
    starting_cash: Decimal
    valuation: Valuation
    buying_power: Decimal
    created_at: datetime
    updated_at: datetime
    valued_at: datetime
    options_buying_power: Decimal


@dataclass(frozen=True)
class PositionRecord:
    """A position, open or closed (history), with the mark it is valued at when open."""

    position: Position
    asset_class: AssetClass
    opened_at: datetime
    closed_at: datetime | None
    updated_at: datetime
    mark: Mark | None = None


@dataclass(frozen=True)
class PnlReport:
    """Realized P&L of the fills in [start, end] and unrealized P&L of what was held at its end,
    per symbol; ``clamped``: ``end`` was after the simulated now and was cut at now."""

    start: datetime
    end: datetime
    realized: dict[str, Decimal]
    unrealized: dict[str, Decimal]
    clamped: bool


@dataclass(frozen=True)
class AccountHolding:
    """An account as the weekly jobs see it: its investor profile and the sorted symbols of
    its open positions."""

    account_id: str
    user_id: str
    profile: Profile
    open_symbols: tuple[str, ...]
    tier: Tier
