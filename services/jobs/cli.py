"""``mbt jobs run NAME [--date D | --key K]``: run a job for one key now (through the
queue, so a running worker does it) and wait for its outcome; ``mbt jobs list``: the latest
records. A key already done is not run again: its record is printed as it is."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from zoneinfo import ZoneInfo

import grpc

from mbt.marketdata.v1 import marketdata_pb2, marketdata_pb2_grpc
from services.common.config import Settings
from services.common.rpc.channels import open_blocking_channel
from services.common.security.auth import ServiceCredentials
from services.common.security.tokens import TokenIssuer, TokenKeys
from services.common.wire.conv import from_timestamp
from services.jobs.queue import JobQueue
from services.jobs.records import DONE, FAILED, JobRun
from services.jobs.registry import REGISTRY, SESSION_DATE, key_for_date, spec

NEW_YORK = ZoneInfo("America/New_York")
POLL_SECONDS = 0.2


def add_parser(commands) -> None:
    jobs = commands.add_parser("jobs", help="run and inspect jobs").add_subparsers(dest="action", required=True)
    run = jobs.add_parser(
        "run",
        help="run a job for one key and wait for its outcome",
        description="jobs: "
        + "; ".join(f"{s.name} (key: {s.key.name}, e.g. {s.key.example})" for s in REGISTRY.values()),
    )
    run.add_argument("name", choices=sorted(REGISTRY), metavar="NAME")
    keys = run.add_mutually_exclusive_group()
    keys.add_argument(
        "--date", type=_day, help="the session date of a job keyed by date (default: the market clock's New York date)"
    )
    keys.add_argument("--key", help="the job's key (a backtest id, …)")
    run.add_argument("--wait", type=float, default=600, help="seconds to wait for the outcome (0: do not wait)")
    listed = jobs.add_parser("list", help="the latest job records, newest first")
    listed.add_argument("--job", choices=sorted(REGISTRY), help="only this job")
    listed.add_argument("--limit", type=int, default=20)


def _day(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date like 2012-06-21") from None


def _market_date(settings: Settings) -> date:
    credentials = ServiceCredentials(TokenIssuer(TokenKeys.from_settings(settings)), "cli")
    channel = open_blocking_channel(
        settings.service("marketdata").target, credentials, keepalive_seconds=settings.grpc_keepalive_seconds
    )
    try:
        reply = marketdata_pb2_grpc.MarketDataServiceStub(channel).GetClock(
            marketdata_pb2.GetClockRequest(), timeout=settings.rpc_timeout_seconds
        )
    finally:
        channel.close()
    return from_timestamp(reply.clock.now, "now", required=True).astimezone(NEW_YORK).date()


def _shown(run: JobRun) -> dict:
    return {
        "job": run.job,
        "key": run.key,
        "state": run.state,
        "attempts": run.attempts,
        "result": run.result,
        "error": run.error or None,
        "progress": run.progress,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def _key(args, settings: Settings) -> str:
    job = spec(args.name)
    if args.key:
        return job.key.check(args.key)
    if args.date:
        return key_for_date(job, args.date)
    if job.key is not SESSION_DATE:
        raise ValueError(f"{job.name} is keyed by {job.key.name}: give --key")
    try:
        return _market_date(settings).isoformat()
    except grpc.RpcError as exc:
        raise ValueError(
            f"cannot ask market data at {settings.service('marketdata').target} for today's "
            f"date ({exc.code().name}); give --date"
        ) from None


def main(args, settings: Settings) -> int:
    queue = JobQueue(settings)
    try:
        if args.action == "list":
            for run in queue.records.runs(args.job, args.limit):
                print(json.dumps(_shown(run), default=str))
            return 0
        try:
            key = _key(args, settings)
        except ValueError as exc:
            print(f"mbt: {exc}", file=sys.stderr)
            return 2
        run = queue.rerun(args.name, key)
        deadline = time.monotonic() + args.wait
        while run.state not in (DONE, FAILED) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            polled = queue.records.get(args.name, key)
            if polled is None:
                raise LookupError(f"run {args.name} {key} disappeared")
            run = polled
        print(json.dumps(_shown(run), default=str))
        if run.state == DONE:
            return 0
        if run.state == FAILED:
            return 1
        if args.wait:
            print(
                f"mbt: {args.name} {key} is still {run.state} after {args.wait:g}s (is the jobs worker running? "
                "make run starts it)",
                file=sys.stderr,
            )
            return 1
        return 0
    finally:
        queue.close()
