"""Accounts' proto <-> domain conversions."""

from __future__ import annotations

from decimal import Decimal

from mbt.accounts.v1 import accounts_pb2, privacy_pb2
from mbt.common.v1 import trading_pb2
from services.accounts.domain.expiration import ExpirationEffect, Outcome
from services.accounts.domain.graduation import SOURCE as GRADUATION_SOURCE
from services.accounts.domain.graduation import Graduation
from services.accounts.domain.privacy import DataExport, Erasure, ErasureStatus, ExportStatus
from services.accounts.domain.retention import CarriedForward
from services.accounts.domain.rules import (
    AccountType,
    FillTerms,
    HoldLeg,
    HoldTerms,
    Profile,
    Tier,
    VersionHold,
    contract_multiplier,
    mark_price,
    market_value,
    unrealized_pl,
)
from services.accounts.domain.views import AccountHolding, AccountSummary, PnlReport, PositionRecord, Settings, User
from services.accounts.usecases.eod import MarkResult, PortfolioHistoryReport, PostingResult
from services.accounts.usecases.expiration import InstructionState, UncarriedReport
from services.common.errors import invalid_argument
from services.common.trading import FillPreference, PositionIntent
from services.common.wire.conv import (
    amount_str,
    decimal_str,
    money_str,
    parse_decimal,
    parse_enum,
    price_str,
    qty_str,
    ratio_str,
    symbol_price_str,
    to_date,
    to_timestamp,
)
from services.common.wire.trading import (
    ASSET_CLASS_WIRE,
    FILL_PREFERENCE_WIRE,
    FILL_PREFERENCES,
    POSITION_INTENT_WIRE,
    POSITION_INTENTS,
    SIDE_WIRE,
    SIDES,
)

TIERS = {accounts_pb2.TIER_FREE: Tier.FREE, accounts_pb2.TIER_PRO: Tier.PRO, accounts_pb2.TIER_PRO_PLUS: Tier.PRO_PLUS}
PROFILES = {
    accounts_pb2.INVESTOR_PROFILE_TRIAL: Profile.TRIAL,
    accounts_pb2.INVESTOR_PROFILE_INCOME_BUILDER: Profile.INCOME_BUILDER,
    accounts_pb2.INVESTOR_PROFILE_DIVERSIFIER: Profile.DIVERSIFIER,
}
ACCOUNT_TYPES = {accounts_pb2.ACCOUNT_TYPE_CASH: AccountType.CASH, accounts_pb2.ACCOUNT_TYPE_MARGIN: AccountType.MARGIN}
TIER_WIRE = {v: k for k, v in TIERS.items()}
PROFILE_WIRE = {v: k for k, v in PROFILES.items()}
ACCOUNT_TYPE_WIRE = {v: k for k, v in ACCOUNT_TYPES.items()}
OUTCOME_WIRE = {
    Outcome.EXPIRED_WORTHLESS: accounts_pb2.OPTION_OUTCOME_EXPIRED_WORTHLESS,
    Outcome.EXERCISED: accounts_pb2.OPTION_OUTCOME_EXERCISED,
    Outcome.ASSIGNED: accounts_pb2.OPTION_OUTCOME_ASSIGNED,
    Outcome.CASH_SETTLED: accounts_pb2.OPTION_OUTCOME_CASH_SETTLED,
}


def hold_terms(request: accounts_pb2.ReserveBuyingPowerRequest) -> HoldTerms:
    """The terms a hold is for; the worst price is the orders service's (its one owner)."""
    worst = parse_decimal(request.worst_price, "worst_price")
    if worst is None or (worst <= 0 and not request.legs):
        raise invalid_argument("worst_price is required: the price the hold is priced at", "worst_price")
    legs = tuple(
        HoldLeg(leg.symbol, parse_enum(SIDES, leg.side, f"legs[{index}].side"), leg.ratio)
        for index, leg in enumerate(request.legs)
    )
    return HoldTerms(
        symbol=request.symbol,
        side=parse_enum(SIDES, request.side, "side"),
        qty=parse_decimal(request.qty, "qty", required=True),
        price_bound=worst,
        multiplier=parse_decimal(request.multiplier, "multiplier")
        or (Decimal(100) if legs else contract_multiplier(request.symbol)),
        legs=legs,
        exit_group=request.exit_group.strip(),
    )


def leg_intents_of(request: accounts_pb2.ReserveBuyingPowerRequest) -> tuple[PositionIntent | None, ...]:
    """A multi-leg order's intents as sent, in leg order (None: to be inferred)."""
    return tuple(
        parse_enum(POSITION_INTENTS, leg.position_intent, f"legs[{index}].position_intent", required=False)
        for index, leg in enumerate(request.legs)
    )


def preference_of(request: accounts_pb2.ReserveBuyingPowerRequest) -> FillPreference | None:
    return parse_enum(FILL_PREFERENCES, request.fill_preference, "fill_preference", required=False)


def leg_fill_terms(order, fill) -> list[FillTerms]:
    """The ledger's view of a multi-leg fill: one FillTerms per leg (100 shares per contract)."""
    return [
        FillTerms(
            order_id=order.order_id,
            symbol=leg.symbol,
            side=parse_enum(SIDES, leg.side, "fill.legs.side"),
            qty=parse_decimal(leg.qty, "fill.legs.qty", required=True),
            price=parse_decimal(leg.price, "fill.legs.price", required=True),
            multiplier=contract_multiplier(leg.symbol),
        )
        for leg in fill.legs
    ]


def fill_terms(order, fill) -> FillTerms:
    """The ledger's view of an OrderFilled event's fill."""
    return FillTerms(
        order_id=order.order_id,
        symbol=fill.symbol,
        side=parse_enum(SIDES, fill.side, "fill.side"),
        qty=parse_decimal(fill.qty, "qty", required=True),
        price=parse_decimal(fill.price, "price", required=True),
        multiplier=parse_decimal(fill.multiplier, "multiplier") or contract_multiplier(fill.symbol),
    )


def account_to_proto(account: AccountSummary) -> accounts_pb2.Account:
    value = account.valuation
    return accounts_pb2.Account(
        account_id=account.account_id,
        account_type=ACCOUNT_TYPE_WIRE[account.account_type],
        status=accounts_pb2.ACCOUNT_STATUS_ACTIVE,
        currency=account.currency,
        investor_profile=PROFILE_WIRE[account.profile],
        starting_cash=amount_str(account.starting_cash),
        cash=amount_str(value.cash),
        buying_power=amount_str(account.buying_power),
        reserved=amount_str(value.held),
        long_market_value=amount_str(value.long_market_value),
        short_market_value=amount_str(value.short_market_value),
        equity=amount_str(value.equity),
        created_at=to_timestamp(account.created_at),
        updated_at=to_timestamp(account.updated_at),
        valued_at=to_timestamp(account.valued_at),
        options_buying_power=amount_str(account.options_buying_power),
    )


def position_to_proto(record: PositionRecord) -> accounts_pb2.Position:
    position, mark = record.position, record.mark
    message = accounts_pb2.Position(
        symbol=position.symbol,
        asset_class=ASSET_CLASS_WIRE[record.asset_class],
        qty=qty_str(position.qty),
        multiplier=qty_str(position.multiplier),
        avg_entry_price=symbol_price_str(position.avg_entry_price, position.symbol),
        realized_pl=amount_str(position.realized_pl),
        opened_at=to_timestamp(record.opened_at),
        closed_at=to_timestamp(record.closed_at),
        updated_at=to_timestamp(record.updated_at),
    )
    if not position.is_open:
        return message
    price = mark_price(position, None if mark is None else mark.bid, None if mark is None else mark.ask)
    cost = abs(position.qty) * position.avg_entry_price * position.multiplier
    gain = unrealized_pl(position, price)
    message.side = accounts_pb2.POSITION_SIDE_LONG if position.qty > 0 else accounts_pb2.POSITION_SIDE_SHORT
    message.cost_basis = amount_str(cost)
    message.current_price = symbol_price_str(price, position.symbol)
    message.market_value = amount_str(market_value(position, price))
    message.unrealized_pl = amount_str(gain)
    message.unrealized_plpc = ratio_str(gain / cost if cost else Decimal(0))
    if mark is not None and mark.quote_at is not None:
        message.priced_at.CopyFrom(to_timestamp(mark.quote_at))
    return message


def pnl_to_proto(report: PnlReport) -> accounts_pb2.GetPnlResponse:
    realized, unrealized = report.realized, report.unrealized
    symbols = sorted(set(realized) | set(unrealized))
    total_realized = sum(realized.values(), Decimal(0))
    total_unrealized = sum(unrealized.values(), Decimal(0))
    return accounts_pb2.GetPnlResponse(
        pnl=accounts_pb2.Pnl(
            from_time=to_timestamp(report.start),
            to_time=to_timestamp(report.end),
            realized_pl=amount_str(total_realized),
            unrealized_pl=amount_str(total_unrealized),
            total_pl=amount_str(total_realized + total_unrealized),
            lines=[
                accounts_pb2.PnlLine(
                    symbol=s,
                    realized_pl=amount_str(realized.get(s, Decimal(0))),
                    unrealized_pl=amount_str(unrealized.get(s, Decimal(0))),
                )
                for s in symbols
            ],
        ),
        to_time_clamped=report.clamped,
    )


def settings_to_proto(settings: Settings) -> accounts_pb2.Settings:
    return accounts_pb2.Settings(
        tier=TIER_WIRE[settings.tier],
        investor_profile=PROFILE_WIRE[settings.profile],
        account_type=ACCOUNT_TYPE_WIRE[settings.account_type],
        fill_preference=FILL_PREFERENCE_WIRE[settings.fill_preference],
        fill_preference_chosen=settings.fill_preference_chosen,
        starting_cash=money_str(settings.starting_cash),
        starting_cash_cap=money_str(settings.starting_cash_cap),
    )


def user_to_proto(user: User) -> accounts_pb2.User:
    return accounts_pb2.User(
        user_id=user.user_id,
        tier=TIER_WIRE[user.tier],
        investor_profile=PROFILE_WIRE[user.profile],
        created_at=to_timestamp(user.created_at),
        updated_at=to_timestamp(user.updated_at),
    )


def intent_of(request: accounts_pb2.ReserveBuyingPowerRequest) -> PositionIntent | None:
    """An option order's position intent as sent (None: to be inferred)."""
    return parse_enum(POSITION_INTENTS, request.position_intent, "position_intent", required=False)


def reservation_to_proto(
    account_id: str,
    order_id: str,
    hold: VersionHold,
    intent: PositionIntent | None = None,
    leg_intents: tuple[PositionIntent, ...] = (),
    preference: FillPreference | None = None,
) -> accounts_pb2.Reservation:
    """For the orders service (an internal answer): the amount exactly as held."""
    return accounts_pb2.Reservation(
        order_id=order_id,
        order_version=hold.version,
        amount=money_str(hold.hold.amount),
        account_id=account_id,
        qty=qty_str(hold.hold.qty),
        position_intent=POSITION_INTENT_WIRE[intent] if intent else None,
        leg_intents=[POSITION_INTENT_WIRE[leg] for leg in leg_intents],
        fill_preference=FILL_PREFERENCE_WIRE[preference] if preference else None,
    )


def holding_to_proto(holding: AccountHolding) -> accounts_pb2.AccountHolding:
    return accounts_pb2.AccountHolding(
        account_id=holding.account_id,
        user_id=holding.user_id,
        investor_profile=PROFILE_WIRE[holding.profile],
        open_symbols=list(holding.open_symbols),
        tier=TIER_WIRE[holding.tier],
    )


def graduation_to_proto(graduation: Graduation) -> accounts_pb2.Graduation:
    override = graduation.override
    return accounts_pb2.Graduation(
        eligible=graduation.eligible,
        basis=graduation.basis,
        consecutive_profitable_cycles=graduation.consecutive_profitable,
        required_cycles=graduation.required,
        cycle_days=graduation.cycle_days,
        source=GRADUATION_SOURCE,
        cycles=[
            accounts_pb2.GraduationCycle(
                from_date=to_date(cycle.first),
                to_date=to_date(cycle.last),
                profit_loss=amount_str(cycle.profit_loss),
                profitable=cycle.profitable,
                start_equity=amount_str(cycle.start_equity),
                end_equity=amount_str(cycle.end_equity),
            )
            for cycle in graduation.cycles
        ],
        override_reason=override.reason if override else "",
        override_at=to_timestamp(override.granted_at) if override else None,
    )


def settlement_to_proto(account_id: str, effect: ExpirationEffect) -> accounts_pb2.OptionSettlement:
    stock = effect.stock
    return accounts_pb2.OptionSettlement(
        account_id=account_id,
        symbol=effect.contract.symbol,
        qty=qty_str(effect.qty),
        outcome=OUTCOME_WIRE[effect.outcome],
        strike_price=price_str(effect.contract.strike),
        settlement_price=price_str(effect.settlement_price),
        stock_symbol=stock.symbol if stock else "",
        stock_side=SIDE_WIRE[stock.side] if stock else trading_pb2.ORDER_SIDE_UNSPECIFIED,
        stock_qty=qty_str(stock.qty) if stock else "",
        cash_delta=amount_str(effect.cash_delta),
        reason=effect.reason,
    )


def instruction_to_proto(state: InstructionState) -> accounts_pb2.OptionInstruction:
    return accounts_pb2.OptionInstruction(
        symbol=state.symbol,
        instruction=state.instruction.value if state.instruction else "",
        expiration=to_date(state.window.session_date),
        cutoff_time=to_timestamp(state.window.cutoff_at),
        give_time=to_timestamp(state.given_at) if state.given_at else None,
    )


def uncarried_to_proto(report: UncarriedReport) -> accounts_pb2.ListUncarriedOptionsResponse:
    return accounts_pb2.ListUncarriedOptionsResponse(
        options=[
            accounts_pb2.UncarriedOption(
                user_id=u.user_id,
                account_id=u.account_id,
                symbol=u.symbol,
                qty=qty_str(u.qty),
                has_bid=u.has_bid,
                client_order_id=u.client_order_id,
                reason=u.reason,
            )
            for u in report.options
        ],
        accounts=report.accounts,
    )


def carried_forward_to_proto(account_id: str, carried: CarriedForward | None) -> accounts_pb2.GetCarriedForwardResponse:
    """Exact decimals (an internal read, for reconciliation)."""
    if carried is None:
        return accounts_pb2.GetCarriedForwardResponse(account_id=account_id)
    return accounts_pb2.GetCarriedForwardResponse(
        account_id=account_id,
        cash_delta=money_str(carried.cash_delta),
        through=to_timestamp(carried.through),
        positions=[
            accounts_pb2.CarriedPosition(
                symbol=p.symbol,
                qty=decimal_str(p.qty),
                avg_entry_price=decimal_str(p.avg_entry_price),
                multiplier=decimal_str(p.multiplier),
                realized_pl=money_str(p.realized_pl),
            )
            for _, p in sorted(carried.positions.items())
        ],
    )


EXPORT_STATUS_WIRE = {
    ExportStatus.PENDING: privacy_pb2.DATA_EXPORT_STATUS_PENDING,
    ExportStatus.READY: privacy_pb2.DATA_EXPORT_STATUS_READY,
    ExportStatus.FAILED: privacy_pb2.DATA_EXPORT_STATUS_FAILED,
    ExportStatus.EXPIRED: privacy_pb2.DATA_EXPORT_STATUS_EXPIRED,
}
ERASURE_STATUS_WIRE = {
    ErasureStatus.NONE: privacy_pb2.ERASURE_STATUS_NONE,
    ErasureStatus.PENDING: privacy_pb2.ERASURE_STATUS_PENDING,
}


def data_export_to_proto(export: DataExport) -> privacy_pb2.DataExport:
    return privacy_pb2.DataExport(
        export_id=export.export_id,
        status=EXPORT_STATUS_WIRE[export.status],
        requested_at=to_timestamp(export.requested_at),
        ready_at=to_timestamp(export.ready_at),
        expires_at=to_timestamp(export.expires_at),
        archive_sha256=export.archive_sha256,
        archive_bytes=export.archive_bytes,
        error=export.error,
    )


def erasure_to_proto(erasure: Erasure) -> privacy_pb2.Erasure:
    return privacy_pb2.Erasure(
        status=ERASURE_STATUS_WIRE[erasure.status],
        requested_at=to_timestamp(erasure.requested_at),
        due_at=to_timestamp(erasure.due_at),
    )


def portfolio_history_to_proto(report: PortfolioHistoryReport) -> accounts_pb2.GetPortfolioHistoryResponse:
    return accounts_pb2.GetPortfolioHistoryResponse(
        portfolio_history=accounts_pb2.PortfolioHistory(
            timestamp=[to_timestamp(point.at) for point in report.points],
            equity=[amount_str(point.equity) for point in report.points],
            profit_loss=[amount_str(point.profit_loss) for point in report.points],
            profit_loss_pct=[ratio_str(point.profit_loss_pct) for point in report.points],
            base_value=amount_str(report.base_value),
            timeframe=report.timeframe,
        )
    )


def mark_result_to_proto(result: MarkResult) -> accounts_pb2.MarkEndOfDayResponse:
    return accounts_pb2.MarkEndOfDayResponse(
        accounts=result.accounts,
        created=result.created,
        symbols=result.symbols,
        total_equity=money_str(result.total_equity),
    )


def dividends_result_to_proto(result: PostingResult) -> accounts_pb2.CreditDividendsResponse:
    return accounts_pb2.CreditDividendsResponse(
        dividends=result.items, posted=result.posted, net_amount=money_str(result.total)
    )


def interest_result_to_proto(result: PostingResult) -> accounts_pb2.AccrueMarginInterestResponse:
    return accounts_pb2.AccrueMarginInterestResponse(
        days=result.items, charged=result.posted, total_interest=money_str(result.total)
    )
