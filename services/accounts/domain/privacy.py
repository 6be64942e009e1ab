"""GDPR rules (DESIGN.md §10, issue 12): the erasure's cooling period, the tombstone's keyed
hash, an export's expiry, and the export archive's layout.

The archive is a zip with one JSON file per table of every component —
``<component>/<table>.json``, a JSON array of the user's rows — and ``manifest.json``:
the export id, the user, when it was gathered, and per file its component, table, row
count and SHA-256 (hex of the file's bytes), so a reader can check every file.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class ErasureStatus(StrEnum):
    NONE = "none"
    PENDING = "pending"
    CANCELED = "canceled"
    ERASED = "erased"


class ExportStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Erasure:
    status: ErasureStatus
    requested_at: datetime | None = None
    due_at: datetime | None = None


NO_ERASURE = Erasure(ErasureStatus.NONE)


@dataclass(frozen=True)
class DataExport:
    export_id: str
    user_id: str
    status: ExportStatus
    requested_at: datetime
    ready_at: datetime | None
    expires_at: datetime | None
    archive_sha256: str
    archive_bytes: int
    error: str


def erasure_due_at(requested_at: datetime, cooling_days: float) -> datetime:
    """When an erasure asked at ``requested_at`` falls due (``MBT_ERASURE_COOLING_DAYS``)."""
    return requested_at + timedelta(days=cooling_days)


def erased_user_hash(key: bytes, user_id: str) -> str:
    """The tombstone's HMAC-SHA256 (hex) of an erased user id under ``MBT_AUDIT_ACTOR_KEY``:
    recognizes the id if it comes back, without keeping it."""
    return hmac.new(key, f"erased-user\x1f{user_id}".encode(), hashlib.sha256).hexdigest()


def export_status(export: DataExport, now: datetime) -> ExportStatus:
    """A ready export reads expired from ``expires_at`` on."""
    if export.status is ExportStatus.READY and export.expires_at is not None and now >= export.expires_at:
        return ExportStatus.EXPIRED
    return export.status


@dataclass(frozen=True)
class TableDump:
    """One component's table of the user's rows (JSON objects)."""

    component: str
    table: str
    rows: Sequence[dict[str, Any]]


def _file_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps(list(rows), indent=1, sort_keys=True, ensure_ascii=False).encode()


def build_archive(export_id: str, user_id: str, gathered_at: datetime, tables: Sequence[TableDump]) -> bytes:
    """The zip (bytes) of ``tables`` with its manifest; entries dated ``gathered_at`` so the
    same rows make the same archive."""
    stamp = gathered_at.timetuple()[:6]
    files = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for dump in sorted(tables, key=lambda dump: (dump.component, dump.table)):
            name = f"{dump.component}/{dump.table}.json"
            content = _file_bytes(dump.rows)
            archive.writestr(zipfile.ZipInfo(name, stamp), content, zipfile.ZIP_DEFLATED)
            files.append(
                {
                    "file": name,
                    "component": dump.component,
                    "table": dump.table,
                    "rows": len(dump.rows),
                    "sha256": hashlib.sha256(content).hexdigest(),
                }
            )
        manifest = {
            "export_id": export_id,
            "user_id": user_id,
            "gathered_at": gathered_at.isoformat(),
            "files": files,
        }
        archive.writestr(
            zipfile.ZipInfo("manifest.json", stamp), json.dumps(manifest, indent=1).encode(), zipfile.ZIP_DEFLATED
        )
    return buffer.getvalue()
