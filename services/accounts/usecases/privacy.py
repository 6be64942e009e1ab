"""GDPR export and erasure (issue 12; rules in ``services.accounts.domain.privacy``).

Erasure: a user with a stepped-up session asks for it; it is pending for the cooling period
(``MBT_ERASURE_COOLING_DAYS``, market clock), during which holds are refused
(ACCOUNT_ERASURE_PENDING: no new order can be accepted) and the user's settings cannot
change, and it can be canceled. Once due, the ``mbt.erase_user_data`` job erases every
other service first and this one last (``erase``), which turns the request into a tombstone
keeping only the keyed hash of the user id: from then on the user is never created again.

Export: asked by the user, gathered by the ``mbt.export_user_data`` job (key: the export
id), completed here with the archive, which the user downloads until it expires
(``MBT_EXPORT_TTL_HOURS``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta

from services.accounts.domain.privacy import (
    NO_ERASURE,
    DataExport,
    Erasure,
    ErasureStatus,
    ExportStatus,
    erased_user_hash,
    erasure_due_at,
    export_status,
)
from services.accounts.store import USER_TABLES, DataExportRow, ErasureRow, PrivacyRepository
from services.common.clock import Clock
from services.common.errors import DomainError, invalid_argument, not_found
from services.common.ids import new_id
from services.common.persistence.db import Database
from services.jobs.pending import PendingOffers

log = logging.getLogger(__name__)
EXPORT_JOB = "mbt.export_user_data"
OFFER_RETRY_SECONDS = 5.0


def erasure_pending(user_id: str) -> DomainError:
    return DomainError(
        "ACCOUNT_ERASURE_PENDING",
        f"the account of {user_id} is to be erased: it is read-only until then; cancel with DELETE /api/mbt/erasure",
    )


def _erasure(row: ErasureRow | None) -> Erasure:
    if row is None:
        return NO_ERASURE
    return Erasure(ErasureStatus(row.status), row.requested_at, row.due_at)


class Privacy:
    """``offer(job, key, **arguments)``: hands a job to the jobs' queue (blocking; run in a
    thread). ``key``: the keyed-hash key of tombstones (MBT_AUDIT_ACTOR_KEY)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        key: bytes,
        *,
        cooling_days: float,
        export_ttl: timedelta,
        offer: Callable[..., object],
    ) -> None:
        self.db = db
        self.clock = clock
        self.key = key
        self.cooling_days = cooling_days
        self.export_ttl = export_ttl
        self.offer = offer
        self._offers = PendingOffers(EXPORT_JOB, "exports", log, retry_seconds=OFFER_RETRY_SECONDS)

    # -- erasure ----------------------------------------------------------------------------

    async def erasure(self, user_id: str) -> Erasure:
        async with self.db.reading() as session:
            return _erasure(await PrivacyRepository(session).pending_erasure(user_id))

    async def request_erasure(self, user_id: str, *, elevated: bool) -> Erasure:
        """Start the cooling period (the same pending request when asked again). Refused
        (PERMISSION_DENIED) without a recent passkey step-up."""
        if not elevated:
            raise DomainError(
                "PERMISSION_DENIED", "erasing your data needs a recent step-up (POST /api/sessions/step-up)"
            )
        async with self.db.writing() as session:
            repo = PrivacyRepository(session)
            row = await repo.pending_erasure(user_id, lock=True)
            if row is None:
                now = self.clock.now()
                row = ErasureRow(
                    erasure_id=new_id("era"),
                    user_id=user_id,
                    user_hash=erased_user_hash(self.key, user_id),
                    status=ErasureStatus.PENDING,
                    requested_at=now,
                    due_at=erasure_due_at(now, self.cooling_days),
                    ended_at=None,
                )
                repo.add_erasure(row)
            return _erasure(row)

    async def cancel_erasure(self, user_id: str) -> Erasure:
        """Cancel a pending erasure (nothing pending: nothing to do); trading resumes."""
        async with self.db.writing() as session:
            row = await PrivacyRepository(session).pending_erasure(user_id, lock=True)
            if row is not None:
                row.status, row.ended_at = ErasureStatus.CANCELED, self.clock.now()
        return NO_ERASURE

    async def refuse_if_pending(self, user_id: str) -> None:
        """Raises ACCOUNT_ERASURE_PENDING while the user's erasure is pending."""
        async with self.db.reading() as session:
            if await PrivacyRepository(session).pending_erasure(user_id) is not None:
                raise erasure_pending(user_id)

    async def pending_erasures(self) -> tuple[list[str], list[str]]:
        """The users of pending erasures, oldest request first: (due now, still cooling)."""
        async with self.db.reading() as session:
            return await PrivacyRepository(session).pending_erasures(self.clock.now())

    async def erase(self, user_id: str) -> dict[str, int]:
        """This service's part of an erasure, run last by the job: the user's rows deleted and
        the request left as the tombstone. A user already erased erases nothing again;
        refused (FAILED_PRECONDITION) for a user whose erasure is not due."""
        async with self.db.reading() as session:
            repo = PrivacyRepository(session)
            pending = await repo.pending_erasure(user_id)
            erased = await repo.is_erased(erased_user_hash(self.key, user_id))
        if pending is None and erased:
            return dict.fromkeys(USER_TABLES.names, 0)
        if pending is None or pending.due_at > self.clock.now():
            raise DomainError("FAILED_PRECONDITION", f"no erasure of {user_id} is due")
        return await USER_TABLES.erase(self.db, user_id)

    # -- export -----------------------------------------------------------------------------

    async def create_export(self, user_id: str) -> DataExport:
        """A new export, offered to the ``mbt.export_user_data`` job."""
        now = self.clock.now()
        row = DataExportRow(
            export_id=new_id("exp"),
            user_id=user_id,
            status=ExportStatus.PENDING,
            requested_at=now,
            ready_at=None,
            expires_at=None,
            archive=None,
            archive_sha256="",
            archive_bytes=0,
            error="",
        )
        async with self.db.writing() as session:
            PrivacyRepository(session).add_export(row)
        self._offers.wake()
        return await self.export(user_id, row.export_id)

    async def export(self, user_id: str, export_id: str) -> DataExport:
        """One of the user's exports (not_found for anyone else's)."""
        async with self.db.reading() as session:
            found = await PrivacyRepository(session).export(export_id)
        if found is None or found.user_id != user_id:
            raise not_found("export", export_id)
        return self._as_now(found)

    def _as_now(self, export: DataExport) -> DataExport:
        status = export_status(export, self.clock.now())
        if status is export.status:
            return export
        return DataExport(**{**export.__dict__, "status": status})

    async def archive(self, user_id: str, export_id: str) -> tuple[DataExport, bytes]:
        """The archive of a ready export of the user; FAILED_PRECONDITION while pending, failed
        or expired (an expired archive is deleted here)."""
        export = await self.export(user_id, export_id)
        if export.status is ExportStatus.EXPIRED:
            async with self.db.writing() as session:
                row = await PrivacyRepository(session).export_row(export_id, lock=True)
                if row is not None:
                    row.status, row.archive = ExportStatus.EXPIRED, None
        if export.status is not ExportStatus.READY:
            raise DomainError("FAILED_PRECONDITION", f"export {export_id} is {export.status.value}: no archive")
        async with self.db.reading() as session:
            row = await PrivacyRepository(session).export_row(export_id)
            archive = bytes(row.archive) if row is not None and row.archive is not None else b""
        return export, archive

    async def complete_export(self, export_id: str, archive: bytes, error: str) -> DataExport:
        """The job's outcome: the archive (ready, expiring after MBT_EXPORT_TTL_HOURS) or why it
        failed. Idempotent: an export already complete stays as it was."""
        if not export_id:
            raise invalid_argument("export_id is required", "export_id")
        if not archive and not error:
            raise invalid_argument("an archive or an error is required", "archive")
        now = self.clock.now()
        async with self.db.writing() as session:
            repo = PrivacyRepository(session)
            row = await repo.export_row(export_id, lock=True)
            if row is None:
                raise not_found("export", export_id)
            if row.status == ExportStatus.PENDING:
                if archive:
                    row.status, row.archive, row.ready_at = ExportStatus.READY, archive, now
                    row.expires_at = now + self.export_ttl
                    row.archive_sha256 = hashlib.sha256(archive).hexdigest()
                    row.archive_bytes = len(archive)
                else:
                    row.status, row.error = ExportStatus.FAILED, error[:2000]
            user_id = row.user_id
        return await self.export(user_id, export_id)

    async def offer_pending_exports(self) -> None:
        """Background: offer every pending export to the job — at start what was pending when
        the process stopped, then each new one (keyed by export id: offered twice, sent once)."""
        await self._offers.run(self._pending_exports, self.offer)

    async def _pending_exports(self) -> dict[str, dict[str, object]]:
        async with self.db.reading() as session:
            pending = await PrivacyRepository(session).pending_exports()
        return {export.export_id: {"user_id": export.user_id} for export in pending}

    async def is_erased(self, user_id: str) -> bool:
        async with self.db.reading() as session:
            return await PrivacyRepository(session).is_erased(erased_user_hash(self.key, user_id))
