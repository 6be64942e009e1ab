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

from google.protobuf import json_format
from google.protobuf.message import Message

from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from services.common.wire.conv import to_date
from services.jobs.runs import JobContext, job


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
