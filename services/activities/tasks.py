"""The activities service's jobs. ``mbt.send_fill_notification`` (key: the fill id; offered
by activities for each fill's notification, ``Notifications.offer_outstanding``) delivers it
through ``DeliverNotification``: into the user's inbox and, when ``MBT_NOTIFY_WEBHOOK_URL`` is
set, to the signed webhook; a webhook that is down makes the call UNAVAILABLE, which the job
retries with backoff. ``mbt.evaluate_goal_streak`` (key: the date of a week's last session;
at its close) asks accounts for every account's investor profile and open positions
(``ListAccountHoldings``, a page at a time) and has activities judge each account's week
(``EvaluateWeeklyGoal``: one ``system_nudge`` per account and week). ``mbt.verify_audit_chain`` (key: the session date; after
each session close) walks the audit log's hash chain through ``VerifyAuditChain``, from its
first row, and checks that the last row the previous verification saw (kept in the jobs'
own database, outside the audit log's) is still there unchanged. A broken link is an alert:
an error log line naming it and ``mbt_audit_chain_breaks_total``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date

from mbt.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from services.activities import wire
from services.activities.audit_chain import Break, Link
from services.common.observability.metrics import AUDIT_CHAIN_BREAKS
from services.common.wire.conv import to_date
from services.jobs.records import JobRun
from services.jobs.runs import JobContext, job

log = logging.getLogger("mbt.audit")


@dataclass(frozen=True)
class ChainWalk:
    verified_rows: int
    # The last row that held; the chain's head when nothing broke.
    head: Link | None
    broken: Break | None


def walk_audit_chain(
    stub: activities_pb2_grpc.AuditChainServiceStub,
    *,
    from_sequence: int = 1,
    expected: Sequence[Link] = (),
    timeout: float,
    on_page: Callable[[int], None] = lambda verified: None,
) -> ChainWalk:
    """Verify the chain from ``from_sequence`` to its head, a page per call, stopping at the
    first broken link (a blocking stub)."""
    verified, head, sequence = 0, None, from_sequence
    while True:
        reply = stub.VerifyAuditChain(
            activities_pb2.VerifyAuditChainRequest(
                from_sequence=sequence, expected_links=[wire.link_to_proto(link) for link in expected]
            ),
            timeout=timeout,
        )
        verified += reply.verified_rows
        if reply.HasField("last"):
            head = wire.link_from_proto(reply.last)
        if reply.HasField("first_break"):
            broken = reply.first_break
            return ChainWalk(verified, head, Break(broken.sequence, broken.audit_id, broken.reason))
        if not reply.next_sequence:
            return ChainWalk(verified, head, None)
        on_page(verified)
        sequence = reply.next_sequence


def _unbroken(run: JobRun) -> bool:
    return run.result is not None and run.result.get("broken") is None and run.result.get("head") is not None


@job("mbt.verify_audit_chain")
def verify_audit_chain(run: JobContext) -> dict:
    anchor = run.previous(_unbroken)
    expected = [Link(**anchor.result["head"])] if anchor is not None and anchor.result is not None else []
    walk = walk_audit_chain(
        run.stub("activities", activities_pb2_grpc.AuditChainServiceStub),
        expected=expected,
        timeout=run.settings.rpc_timeout_seconds,
        on_page=lambda verified: run.progress(verified_rows=verified),
    )
    result = {
        "verified_rows": walk.verified_rows,
        "head": asdict(walk.head) if walk.head else None,
        "anchor": asdict(expected[0]) if expected else None,
        "broken": asdict(walk.broken) if walk.broken else None,
    }
    if walk.broken is not None:
        AUDIT_CHAIN_BREAKS.inc()
        log.error("audit chain broken", extra={"fields": {"session": run.key, **result}})
    return result


@job("mbt.send_fill_notification")
def send_fill_notification(run: JobContext) -> dict:
    stub = run.stub("activities", activities_pb2_grpc.NotificationsServiceStub)
    reply = stub.DeliverNotification(
        activities_pb2.DeliverNotificationRequest(fill_id=run.key), timeout=run.settings.rpc_timeout_seconds
    )
    return {
        "fill_id": run.key,
        "notification_id": reply.notification.notification_id,
        "message": reply.notification.message,
        "webhook": reply.webhook,
        "webhook_attempts": reply.webhook_attempts,
    }


PROFILE_PREFIX = "INVESTOR_PROFILE_"


@job("mbt.evaluate_goal_streak")
def evaluate_goal_streak(run: JobContext) -> dict:
    accounts = run.stub("accounts", accounts_pb2_grpc.AccountsServiceStub)
    streaks = run.stub("activities", activities_pb2_grpc.GoalStreakServiceStub)
    week_end = to_date(date.fromisoformat(run.key))
    timeout = run.settings.rpc_timeout_seconds
    judged = met = 0
    longest = 0
    after = ""
    while True:
        page = accounts.ListAccountHoldings(
            accounts_pb2.ListAccountHoldingsRequest(after_account_id=after), timeout=timeout
        )
        for holding in page.accounts:
            profile = accounts_pb2.InvestorProfile.Name(holding.investor_profile).removeprefix(PROFILE_PREFIX).lower()
            reply = streaks.EvaluateWeeklyGoal(
                activities_pb2.EvaluateWeeklyGoalRequest(
                    week_end=week_end,
                    account_id=holding.account_id,
                    user_id=holding.user_id,
                    investor_profile=profile,
                    open_symbols=list(holding.open_symbols),
                ),
                timeout=timeout,
            )
            judged, met, longest = judged + 1, met + reply.met, max(longest, reply.streak)
        run.progress(accounts=judged)
        after = page.next_after_account_id
        if not after:
            break
    return {"week_end": run.key, "accounts": judged, "met": met, "longest_streak": longest}
