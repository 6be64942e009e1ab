"""The activities service's jobs. ``mbt.verify_audit_chain`` (key: the session date; after
each session close) walks the audit log's hash chain through ``VerifyAuditChain``, from its
first row, and checks that the last row the previous verification saw (kept in the jobs'
own database, outside the audit log's) is still there unchanged. A broken link is an alert:
an error log line naming it and ``mbt_audit_chain_breaks_total``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from mbt.activities.v1 import activities_pb2, activities_pb2_grpc
from services.activities import wire
from services.activities.audit_chain import Break, Link
from services.common.observability.metrics import AUDIT_CHAIN_BREAKS
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
