"""Process metrics (Prometheus, via ``prometheus_client``). Counters are process-wide; a
service exposes them on ``MBT_<SERVICE>_METRICS_PORT`` when that is set."""

from __future__ import annotations

from prometheus_client import Counter

LEDGER_REFUSALS = Counter(
    "mbt_ledger_refusals", "Changes the ledger refused because they would break one of its invariants "
    "(a fill no hold covers, negative cash or a short in a cash account, a reused idempotency key).",
    ["service", "reason"])
