"""The accounts service's jobs. ``mbt.expire_options`` (key: the session date; after each
session close) settles the option positions expiring at that close through
``ExpireOptions``: out of the money ones expire worthless, in the money ones are exercised
or assigned (cash-settled for index options). Running it again for a key is harmless: a
settled position is closed and each ledger movement is keyed by (account, contract,
session), so a repeat settles nothing.

``mbt.purge_expired`` (key: the whole hour of market time; every hour) applies retention by
tier: for each account (``ListAccountHoldings``, a page at a time) whose user's tier has a
window (``MBT_RETENTION_FREE_DAYS``, ``MBT_RETENTION_PRO_DAYS``; Pro+ none), the cutoff is
the key's hour minus the window, and each service purges its own rows before it:
``PurgeExpiredOrders`` (orders that ended and their fills), ``PurgeExpiredHistory`` (ledger
entries folded into the carried-forward balance, closed positions, snapshots) and
``PurgeExpiredActivities`` (folded into the ``carried_forward`` activity). A repeat for the
key finds nothing left to purge."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from mbt.orders.v1 import orders_pb2, orders_pb2_grpc
from services.common.retention import UserCutoff, cutoff_for
from services.common.wire.conv import to_date
from services.common.wire.retention import user_cutoff_to_proto
from services.jobs.runs import JobContext, job

log = logging.getLogger("mbt.expiration")
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
