"""The accounts service's jobs. ``mbt.expire_options`` (key: the session date; at the do-not-exercise
cutoff after each session close) settles the option positions expiring at that close through
``ExpireOptions``: out of the money ones expire worthless, in the money ones are exercised
or assigned (cash-settled for index options). Running it again for a key is harmless: a
settled position is closed and each ledger movement is keyed by (account, contract,
session), so a repeat settles nothing.

``mbt.sell_uncarriable_options`` (key: the session date; ``MBT_OPTION_PRE_CLOSE_SALE_MINUTES``
before each close) sells at the market the long in-the-money options expiring at that close
that cash accounts could not carry into stock; ``mbt.expire_options`` is due
``MBT_DO_NOT_EXERCISE_CUTOFF_MINUTES`` after the close, once holders' instructions are final.

``mbt.purge_expired`` (key: the whole hour of market time; every hour) applies retention by
tier: for each account (``ListAccountHoldings``, a page at a time) whose user's tier has a
window (``MBT_RETENTION_FREE_DAYS``, ``MBT_RETENTION_PRO_DAYS``; Pro+ none), the cutoff is
the key's hour minus the window, and each service purges its own rows before it:
``PurgeExpiredOrders`` (orders that ended and their fills), ``PurgeExpiredHistory`` (ledger
entries folded into the carried-forward balance, closed positions, snapshots) and
``PurgeExpiredActivities`` (folded into the ``carried_forward`` activity). A repeat for the
key finds nothing left to purge.

GDPR export and erasure (``services.accounts.usecases.privacy``):

``mbt.export_user_data`` (key: the export id; offered by accounts when the user asks, with
the user id as its argument) asks every service's ``ExportUserData`` and the gateway's own
tables (in process: the gateway serves no gRPC) for the user's rows, builds the archive
(``services.accounts.domain.privacy.build_archive``) and hands it to accounts
(``CompleteDataExport``, idempotent: the first archive stays).

``mbt.erase_user_data`` (key: the hour; hourly on the market clock) cancels the working
orders of every user whose erasure is still cooling (``CancelUserOrders``: the account is
read-only, so nothing should keep trading for it), and erases every user whose cooling
period is over (``ListDueErasures``): first the user's working orders are canceled
through the orders' cancel path (``CancelUserOrders``, cancel reason ``account_erased``) and
the run waits until the matcher and accounts received the cancels (the book drops them, the
holds are released); then every other service, the gateway and the jobs' own records erase,
accounts last, since accounts' erasure turns the request into the tombstone that ends it.
A run that dies midway leaves the request due, so the next hour's run finishes it; the
services' erasures delete nothing twice; the user id is also blanked in the arguments of
the user's ``mbt.export_user_data`` records. Its result and log line hold counts only,
never a user id.

The session-close money jobs, each asking accounts for the key's session date (idempotent per
account and day, so a repeat posts and writes nothing): ``mbt.eod_mark_all``
(``MarkEndOfDay``: one EOD snapshot per account at the closing quotes, the day's dividends
and interest posted first), ``mbt.credit_dividends`` (``CreditDividends``: the dividends
payable that day) and ``mbt.accrue_margin_interest`` (``AccrueMarginInterest``: the night's
interest on margin debit balances, each charge an activity with its teaching card).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from gateway import user_data as gateway_user_data
from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc, privacy_pb2, privacy_pb2_grpc
from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from mbt.common.v1 import trading_pb2, user_data_pb2, user_data_pb2_grpc
from mbt.orders.v1 import orders_pb2, orders_pb2_grpc
from services.accounts.domain.privacy import TableDump, build_archive
from services.common.config import SERVICES
from services.common.retention import UserCutoff, cutoff_for
from services.common.wire.conv import to_date
from services.common.wire.retention import user_cutoff_to_proto
from services.jobs.runs import JobContext, job

log = logging.getLogger("mbt.expiration")
SETTLE_POLL_SECONDS = 0.1
OUTCOMES = {number: name.removeprefix("OPTION_OUTCOME_").lower() for name, number in accounts_pb2.OptionOutcome.items()}


@job("mbt.expire_options")
def expire_options(run: JobContext) -> dict:
    stub = run.stub("accounts", accounts_pb2_grpc.AccountsServiceStub)
    reply = stub.ExpireOptions(
        accounts_pb2.ExpireOptionsRequest(session_date=to_date(date.fromisoformat(run.key))),
        timeout=run.settings.rpc_timeout_seconds,
    )
    counts: dict[str, int] = {}
    for settlement in reply.settlements:
        outcome = OUTCOMES[settlement.outcome]
        counts[outcome] = counts.get(outcome, 0) + 1
    for shortfall in reply.shortfalls:
        log.warning("expiration left a cash account short", extra={"fields": {"session": run.key, "why": shortfall}})
    for why in reply.unpriced:
        log.warning("options left open: no settlement price", extra={"fields": {"session": run.key, "why": why}})
    return {
        "session": run.key,
        "accounts": reply.accounts,
        "settled": len(reply.settlements),
        "outcomes": counts,
        "shortfalls": list(reply.shortfalls),
        "unpriced": list(reply.unpriced),
    }


# A submit refused for this order alone (no quote, market closed, a rule): reported, the
# other accounts' sales go on; what is left at the close is not exercised.
SALE_REFUSALS = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT)


@job("mbt.sell_uncarriable_options")
def sell_uncarriable_options(run: JobContext) -> dict:
    """Before the close of the key's session, sell at the market (a day sell_to_close order
    through orders' submit path, ``SubmitOrderForUser``) the long in-the-money options cash
    accounts could not carry into stock (``ListUncarriedOptions``). Each order's
    client_order_id is fixed by (session, contract), so a rerun answers the order already
    submitted (``replayed``; ``IDEMPOTENCY_KEY_REUSED`` when the quantity changed since
    counts the same) and never sells twice. A contract with no bid is left to the close."""
    timeout = run.settings.rpc_timeout_seconds
    reply = run.stub("accounts", accounts_pb2_grpc.AccountsServiceStub).ListUncarriedOptions(
        accounts_pb2.ListUncarriedOptionsRequest(session_date=to_date(date.fromisoformat(run.key))), timeout=timeout
    )
    orders = run.stub("orders", orders_pb2_grpc.OrdersServiceStub)
    counts = dict.fromkeys(("submitted", "replayed", "no_bid", "refused"), 0)
    refusals: list[str] = []
    for option in reply.options:
        if not option.has_bid:
            counts["no_bid"] += 1
            continue
        try:
            placed = orders.SubmitOrderForUser(
                orders_pb2.SubmitOrderForUserRequest(
                    user_id=option.user_id,
                    order=orders_pb2.SubmitOrderRequest(
                        client_order_id=option.client_order_id,
                        symbol=option.symbol,
                        asset_class=trading_pb2.ASSET_CLASS_US_OPTION,
                        side=trading_pb2.ORDER_SIDE_SELL,
                        qty=option.qty,
                        order_type=trading_pb2.ORDER_TYPE_MARKET,
                        time_in_force=trading_pb2.TIME_IN_FORCE_DAY,
                        position_intent=trading_pb2.POSITION_INTENT_SELL_TO_CLOSE,
                    ),
                ),
                timeout=timeout,
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                counts["replayed"] += 1
                continue
            if exc.code() not in SALE_REFUSALS:
                raise
            counts["refused"] += 1
            refusals.append(f"{option.account_id} {option.symbol}: {exc.details()}")
            log.warning(
                "pre-close sale refused",
                extra={"fields": {"session": run.key, "account": option.account_id, "why": exc.details()}},
            )
            continue
        counts["replayed" if placed.idempotent_replay else "submitted"] += 1
    return {
        "session": run.key,
        "accounts": reply.accounts,
        "uncarried": len(reply.options),
        **counts,
        "refusals": refusals,
    }


TIER_PREFIX = "TIER_"


@job("mbt.purge_expired")
def purge_expired(run: JobContext) -> dict:
    at = datetime.strptime(run.key, "%Y-%m-%dT%H:00Z").replace(tzinfo=UTC)
    windows = {"free": run.settings.retention_free_days, "pro": run.settings.retention_pro_days}
    timeout = run.settings.rpc_timeout_seconds
    accounts = run.stub("accounts", accounts_pb2_grpc.AccountsServiceStub)
    orders = run.stub("orders", orders_pb2_grpc.OrdersServiceStub)
    activities = run.stub("activities", activities_pb2_grpc.ActivitiesServiceStub)
    totals = dict.fromkeys(
        ("users", "orders", "fills", "ledger_entries", "closed_positions", "snapshots", "activities"), 0
    )
    after = ""
    while True:
        page = accounts.ListAccountHoldings(
            accounts_pb2.ListAccountHoldingsRequest(after_account_id=after), timeout=timeout
        )
        users = []
        for holding in page.accounts:
            tier = accounts_pb2.Tier.Name(holding.tier).removeprefix(TIER_PREFIX).lower()
            cutoff = cutoff_for(tier, at, windows)
            if cutoff is not None:
                users.append(user_cutoff_to_proto(UserCutoff(holding.user_id, cutoff)))
        if users:
            purged_orders = orders.PurgeExpiredOrders(
                orders_pb2.PurgeExpiredOrdersRequest(users=users), timeout=timeout
            )
            history = accounts.PurgeExpiredHistory(
                accounts_pb2.PurgeExpiredHistoryRequest(users=users), timeout=timeout
            )
            purged_activities = activities.PurgeExpiredActivities(
                activities_pb2.PurgeExpiredActivitiesRequest(users=users), timeout=timeout
            )
            for name, count in (
                ("users", len(users)),
                ("orders", purged_orders.orders_purged),
                ("fills", purged_orders.fills_purged),
                ("ledger_entries", history.ledger_entries_folded),
                ("closed_positions", history.closed_positions_purged),
                ("snapshots", history.snapshots_purged),
                ("activities", purged_activities.activities_purged),
            ):
                totals[name] += count
        run.progress(**totals)
        after = page.next_after_account_id
        if not after:
            break
    return {"hour": run.key, **totals}


ACCOUNTS = "accounts"


def _plain(value: Any) -> Any:
    """A Struct value as the JSON it was: whole numbers back to integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _user_data(run: JobContext, service: str) -> user_data_pb2_grpc.UserDataServiceStub:
    return run.stub(service, user_data_pb2_grpc.UserDataServiceStub)


@job("mbt.export_user_data")
def export_user_data(run: JobContext) -> dict:
    user_id = run.arguments["user_id"]
    timeout = run.settings.rpc_timeout_seconds
    dumps: list[TableDump] = []
    replies = {}
    for service in SERVICES:
        reply = replies[service] = _user_data(run, service).ExportUserData(
            user_data_pb2.ExportUserDataRequest(user_id=user_id), timeout=timeout
        )
        dumps += [
            TableDump(reply.service, table.table, [_plain(json_format.MessageToDict(row)) for row in table.rows])
            for table in reply.tables
        ]
        run.progress(services_done=len(replies))
    dumps += [
        TableDump(gateway_user_data.COMPONENT, table, rows)
        for table, rows in gateway_user_data.export_user_data(run.settings, user_id)
    ]
    gathered_at = replies[ACCOUNTS].exported_at.ToDatetime(tzinfo=UTC)
    archive = build_archive(run.key, user_id, gathered_at, dumps)
    completed = run.stub(ACCOUNTS, privacy_pb2_grpc.PrivacyServiceStub).CompleteDataExport(
        privacy_pb2.CompleteDataExportRequest(export_id=run.key, archive=archive), timeout=timeout
    )
    return {
        "export_id": run.key,
        "tables": len(dumps),
        "rows": sum(len(dump.rows) for dump in dumps),
        "archive_bytes": completed.export.archive_bytes,
        "archive_sha256": completed.export.archive_sha256,
    }


@job("mbt.erase_user_data")
def erase_user_data(run: JobContext) -> dict:
    timeout = run.settings.rpc_timeout_seconds
    privacy = run.stub(ACCOUNTS, privacy_pb2_grpc.PrivacyServiceStub)
    pending = privacy.ListDueErasures(privacy_pb2.ListDueErasuresRequest(), timeout=timeout)
    due = list(pending.user_ids)
    orders = run.stub("orders", orders_pb2_grpc.OrdersServiceStub)
    # the cooling accounts are read-only: their orders stop working too
    canceled = sum(
        orders.CancelUserOrders(orders_pb2.CancelUserOrdersRequest(user_id=user_id), timeout=timeout).canceled_orders
        for user_id in pending.cooling_user_ids
    )
    deleted: dict[str, int] = {}

    def count(component: str, rows: dict[str, int]) -> None:
        deleted[component] = deleted.get(component, 0) + sum(rows.values())

    for done, user_id in enumerate(due, 1):
        canceled += _cancel_working_orders(run, user_id)
        for service in [name for name in SERVICES if name != ACCOUNTS]:
            reply = _user_data(run, service).EraseUserData(
                user_data_pb2.EraseUserDataRequest(user_id=user_id), timeout=timeout
            )
            count(service, dict(reply.deleted_rows))
        count(gateway_user_data.COMPONENT, gateway_user_data.erase_user_data(run.settings, user_id))
        # the jobs' own records of the user's exports name the user too; forgotten before
        # accounts' erasure ends the request, so a run that dies after it leaves none behind
        count("jobs", {"mbt_job_runs": run.forget_argument("mbt.export_user_data", "user_id", user_id)})
        reply = _user_data(run, ACCOUNTS).EraseUserData(
            user_data_pb2.EraseUserDataRequest(user_id=user_id), timeout=timeout
        )
        count(ACCOUNTS, dict(reply.deleted_rows))
        run.progress(erased_users=done, of=len(due))
    return {"erased_users": len(due), "canceled_orders": canceled, "deleted_rows": deleted}


class OrdersStillWorking(Exception):
    """The user's orders are not all canceled and delivered yet: the run is retried."""


def _cancel_working_orders(run: JobContext, user_id: str) -> int:
    """Cancel the user's working orders (``CancelUserOrders``) and wait, polling every
    ``SETTLE_POLL_SECONDS`` for at most ``MBT_RPC_TIMEOUT_SECONDS``, until none works and the
    cancels reached every subscriber (the matcher's book, accounts' holds); returns how many
    it canceled. Otherwise raises ``OrdersStillWorking`` and the run is retried with backoff,
    erasing nothing yet."""
    timeout = run.settings.rpc_timeout_seconds
    orders = run.stub("orders", orders_pb2_grpc.OrdersServiceStub)
    deadline = time.monotonic() + timeout
    canceled = 0
    while True:
        reply = orders.CancelUserOrders(orders_pb2.CancelUserOrdersRequest(user_id=user_id), timeout=timeout)
        canceled += reply.canceled_orders
        if reply.working_orders == 0 and reply.undelivered_events == 0:
            return canceled
        if time.monotonic() >= deadline:
            raise OrdersStillWorking(
                f"{reply.working_orders} orders still working, {reply.undelivered_events} events undelivered"
            )
        time.sleep(SETTLE_POLL_SECONDS)


def _ask(run: JobContext, method: str, request_class: type[Message], date_field: str) -> dict:
    """Call ``method`` for the run's session date; what it answered, as the job's result."""
    stub = run.stub("accounts", accounts_pb2_grpc.AccountsServiceStub)
    request = request_class(**{date_field: to_date(date.fromisoformat(run.key))})
    reply = getattr(stub, method)(request, timeout=run.settings.rpc_timeout_seconds)
    answer = json_format.MessageToDict(
        reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return {date_field: run.key, **answer}


@job("mbt.eod_mark_all")
def eod_mark_all(run: JobContext) -> dict:
    return _ask(run, "MarkEndOfDay", accounts_pb2.MarkEndOfDayRequest, "session_date")


@job("mbt.credit_dividends")
def credit_dividends(run: JobContext) -> dict:
    return _ask(run, "CreditDividends", accounts_pb2.CreditDividendsRequest, "pay_date")


@job("mbt.accrue_margin_interest")
def accrue_margin_interest(run: JobContext) -> dict:
    return _ask(run, "AccrueMarginInterest", accounts_pb2.AccrueMarginInterestRequest, "session_date")
