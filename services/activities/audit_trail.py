"""Verifying the audit log's hash chain, page by page (the rules are ``audit_chain``'s;
rows are appended to the chain by ``ActivityRepository.add_audit``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.activities import audit_chain
from services.activities.store import ActivityRepository
from services.common.errors import invalid_argument
from services.common.persistence.db import Database
from services.common.security.tokens import actor_key

__all__ = ["AuditTrail", "Verification", "actor_key"]

DEFAULT_PAGE_ROWS = 10_000
MAX_PAGE_ROWS = 50_000


@dataclass(frozen=True)
class Verification:
    """One page of a walk: rows that held, the last of them, the first broken link (the
    walk stops there) and where the next page starts (0: the walk is over)."""

    verified_rows: int
    last: audit_chain.Link | None
    broken: audit_chain.Break | None
    next_sequence: int


class AuditTrail:
    def __init__(self, db: Database, key: bytes) -> None:
        self.db = db
        self.key = key

    async def verify(
        self, from_sequence: int, page_size: int, expected: Sequence[audit_chain.Link] = ()
    ) -> Verification:
        """Verify up to ``page_size`` rows from position ``from_sequence`` (0 or 1: the first
        row; the row before a later start is trusted as stored). Raises invalid_argument for a
        negative position or page size, or a page size over ``MAX_PAGE_ROWS``."""
        if from_sequence < 0:
            raise invalid_argument("from_sequence must not be negative", "from_sequence")
        if not 0 <= page_size <= MAX_PAGE_ROWS:
            raise invalid_argument(f"page_size must be between 0 and {MAX_PAGE_ROWS}", "page_size")
        from_sequence, limit = max(1, from_sequence), page_size or DEFAULT_PAGE_ROWS
        async with self.db.reading() as session:
            repo = ActivityRepository(session)
            entries = await repo.chain_entries(from_sequence, limit + 1)
            previous = await repo.chain_link(from_sequence - 1) if from_sequence > 1 else None
        if from_sequence > 1 and previous is None and entries:
            # Nothing before the start (a purged prefix): the first row's own link is the anchor.
            previous = audit_chain.Link(from_sequence - 1, "", entries[0].prev_hash)
        more = len(entries) > limit
        broken, last, held = audit_chain.first_break(
            self.key, previous, entries[:limit], complete=not more, expected=tuple(expected)
        )
        next_sequence = last.sequence + 1 if more and broken is None and last is not None else 0
        return Verification(held, last if held else None, broken, next_sequence)
