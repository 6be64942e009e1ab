"""The accounts service's jobs, each keyed by the session date and run after that session's
close, each asking accounts over gRPC (idempotent for its key, so a repeat changes nothing):

* ``mbt.expire_options`` settles the option positions expiring at that close through
  ``ExpireOptions``: out of the money ones expire worthless, in the money ones are exercised
  or assigned (cash-settled for index options); a settled position is closed and each ledger
  movement is keyed by (account, contract, session), so a repeat settles nothing;
* ``mbt.eod_mark_all``: ``MarkEndOfDay`` — one EOD snapshot per account, marked at the
  closing quotes (the day's dividends and interest posted first);
* ``mbt.credit_dividends``: ``CreditDividends`` — the dividends payable that day;
* ``mbt.accrue_margin_interest``: ``AccrueMarginInterest`` — the night's interest on margin
  debit balances, each charge an activity with its teaching card."""

from __future__ import annotations

import logging
from datetime import date

from google.protobuf import json_format
from google.protobuf.message import Message

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
