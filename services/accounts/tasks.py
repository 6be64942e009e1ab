"""The accounts service's jobs, each keyed by the session date and run after that session's
close; each asks accounts over gRPC (idempotent per account and day, so a repeat posts and
writes nothing) and returns what it did:

* ``mbt.eod_mark_all``: ``MarkEndOfDay`` — one EOD snapshot per account, marked at the
  closing quotes (the day's dividends and interest posted first);
* ``mbt.credit_dividends``: ``CreditDividends`` — the dividends payable that day;
* ``mbt.accrue_margin_interest``: ``AccrueMarginInterest`` — the night's interest on margin
  debit balances, each charge an activity with its teaching card."""

from __future__ import annotations

from datetime import date

from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from services.common.wire.conv import to_date
from services.jobs.runs import JobContext, job


def _accounts(run: JobContext) -> accounts_pb2_grpc.AccountsServiceStub:
    return run.stub("accounts", accounts_pb2_grpc.AccountsServiceStub)


@job("mbt.eod_mark_all")
def eod_mark_all(run: JobContext) -> dict:
    reply = _accounts(run).MarkEndOfDay(
        accounts_pb2.MarkEndOfDayRequest(session_date=to_date(date.fromisoformat(run.key))),
        timeout=run.settings.rpc_timeout_seconds,
    )
    return {
        "session_date": run.key,
        "accounts": reply.accounts,
        "created": reply.created,
        "symbols": list(reply.symbols),
        "total_equity": reply.total_equity,
    }


@job("mbt.credit_dividends")
def credit_dividends(run: JobContext) -> dict:
    reply = _accounts(run).CreditDividends(
        accounts_pb2.CreditDividendsRequest(pay_date=to_date(date.fromisoformat(run.key))),
        timeout=run.settings.rpc_timeout_seconds,
    )
    return {"pay_date": run.key, "dividends": reply.dividends, "posted": reply.posted, "net_amount": reply.net_amount}


@job("mbt.accrue_margin_interest")
def accrue_margin_interest(run: JobContext) -> dict:
    reply = _accounts(run).AccrueMarginInterest(
        accounts_pb2.AccrueMarginInterestRequest(session_date=to_date(date.fromisoformat(run.key))),
        timeout=run.settings.rpc_timeout_seconds,
    )
    return {
        "session_date": run.key,
        "days": reply.days,
        "charged": reply.charged,
        "total_interest": reply.total_interest,
    }
