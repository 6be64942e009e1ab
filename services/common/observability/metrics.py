"""Process metrics (Prometheus, via ``prometheus_client``). Counters are process-wide; a
service exposes them on ``MBT_<SERVICE>_METRICS_PORT`` when that is set."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, start_http_server

LEDGER_REFUSALS = Counter(
    "mbt_ledger_refusals",
    "Changes the ledger refused because they would break one of its invariants "
    "(a fill no hold covers, negative cash or a short in a cash account, a reused idempotency key).",
    ["service", "reason"],
)

JOB_RUNS = Counter(
    "mbt_job_runs",
    "Deliveries of jobs by outcome: done, skipped (the key was done, failed for good, or held "
    "by another live run), retried, failed (for good).",
    ["job", "outcome"],
)
AUDIT_CHAIN_BREAKS = Counter(
    "mbt_audit_chain_breaks",
    "Verifications of the audit log's hash chain that found a broken link (an alert: "
    "rows were altered, removed or reordered).",
)


async def serve_metrics(port: int, host: str) -> None:
    """Serve ``/metrics`` (a daemon thread of prometheus_client) for the process's lifetime."""
    server, thread = start_http_server(port, addr=host)
    try:
        await asyncio.Event().wait()
    finally:
        server.shutdown()
        thread.join(timeout=5)
