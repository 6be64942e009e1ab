"""The accounts service's jobs. ``mbt.expire_options`` (key: the session date; after each
session close) settles the option positions expiring at that close through
``ExpireOptions``: out of the money ones expire worthless, in the money ones are exercised
or assigned (cash-settled for index options). Running it again for a key is harmless: a
settled position is closed and each ledger movement is keyed by (account, contract,
session), so a repeat settles nothing."""

from __future__ import annotations

import logging
from datetime import date

from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from services.common.wire.conv import to_date
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
