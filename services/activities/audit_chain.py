"""The audit log's hash chain: pure rules, no I/O.

Every ``audit_log`` row, in insertion order, has a position (``chain_seq``, 1, 2, 3 …), the
hash of the row before it (``prev_hash``; 64 zeros for the first) and its own hash
(``row_hash``) = SHA-256 of ``prev_hash`` and the row's canonical content. Changing,
removing or reordering any row therefore breaks the link at that row or the next one.

Who acted and whose data it was enter the chain as keyed hashes (HMAC-SHA256 with
``MBT_AUDIT_ACTOR_KEY``), never in clear: erasing a user blanks the clear ``actor_id`` and
``user_id`` and the chain still verifies, while a clear id that was edited no longer matches
its keyed hash. The key makes the hashes useless for guessing ids (user ids are short and
guessable; a plain hash of one is not a pseudonym).

A hash chain alone cannot tell a rewrite that recomputed every hash after the change, nor
rows cut from its end: a verification records the last row it saw (``Link``) outside this
database, and the next one checks that the row is still there, unchanged (``expected``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Link:
    """One row's place in the chain: what a verification records to check it later."""

    sequence: int
    audit_id: str
    row_hash: str


@dataclass(frozen=True)
class Entry:
    """An audit row as the chain sees it (clear ids beside their keyed hashes)."""

    sequence: int
    audit_id: str
    actor_type: str
    actor_id: str
    actor_hash: str
    action: str
    entity_type: str
    entity_id: str
    user_id: str
    user_hash: str
    before: dict | None
    after: dict | None
    request_id: str
    service: str
    occurred_at: datetime
    recorded_at: datetime
    prev_hash: str = ""
    row_hash: str = ""


@dataclass(frozen=True)
class Break:
    """The first broken link: the row where the chain stops holding, and why."""

    sequence: int
    audit_id: str
    reason: str


def actor_hash(key: bytes, actor_type: str, actor_id: str) -> str:
    """HMAC-SHA256 hex of who acted (its type and id)."""
    return hmac.new(key, f"actor\x1f{actor_type}\x1f{actor_id}".encode(), hashlib.sha256).hexdigest()


def user_hash(key: bytes, user_id: str) -> str:
    """HMAC-SHA256 hex of the user whose data changed."""
    return hmac.new(key, f"user\x1f{user_id}".encode(), hashlib.sha256).hexdigest()


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(entry: Entry) -> bytes:
    """The row's content as hashed: JSON, sorted keys, no spaces, UTF-8; the keyed hashes
    stand for the clear ids, times are UTC with microseconds."""
    content = {
        "sequence": entry.sequence,
        "audit_id": entry.audit_id,
        "actor_type": entry.actor_type,
        "actor_hash": entry.actor_hash,
        "action": entry.action,
        "entity_type": entry.entity_type,
        "entity_id": entry.entity_id,
        "user_hash": entry.user_hash,
        "before": entry.before,
        "after": entry.after,
        "request_id": entry.request_id,
        "service": entry.service,
        "occurred_at": _time(entry.occurred_at),
        "recorded_at": _time(entry.recorded_at),
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def link_hash(prev_hash: str, entry: Entry) -> str:
    """SHA-256 hex of the previous row's hash, a newline, and ``canonical(entry)``."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical(entry)).hexdigest()


def seal(key: bytes, entry: Entry, previous: Link | None) -> Entry:
    """``entry`` (clear ids set, hashes and position not yet) as the row after ``previous``
    (None: the first row of the chain)."""
    prev_hash = previous.row_hash if previous is not None else GENESIS_HASH
    sequence = previous.sequence + 1 if previous is not None else 1
    keyed = replace(
        entry,
        sequence=sequence,
        actor_hash=actor_hash(key, entry.actor_type, entry.actor_id),
        user_hash=user_hash(key, entry.user_id),
        prev_hash=prev_hash,
    )
    return replace(keyed, row_hash=link_hash(prev_hash, keyed))


def _named(entry: Entry) -> str:
    return f"row {entry.sequence} ({entry.audit_id})"


def first_break(
    key: bytes, previous: Link | None, entries: Iterable[Entry], *, complete: bool, expected: Sequence[Link] = ()
) -> tuple[Break | None, Link | None, int]:
    """Walk ``entries`` (consecutive rows in chain order, starting right after ``previous``;
    None: from the first row) and return (the first broken link or None, the last row that
    held, how many rows held).

    ``complete``: the entries run to the chain's head, so an ``expected`` link beyond them
    means rows were cut from the end. Each ``expected`` link (from an earlier verification)
    must still be in the chain with the same id and hash."""
    wanted = {link.sequence: link for link in expected}
    last, held = previous, 0
    for entry in entries:
        sequence = last.sequence + 1 if last is not None else 1
        prev_hash = last.row_hash if last is not None else GENESIS_HASH
        problem = None
        if entry.sequence != sequence:
            after = f"row {sequence - 1}" if sequence > 1 else "the start"
            problem = Break(sequence, "", f"row {sequence} is missing: the chain jumps from {after} to {_named(entry)}")
        elif entry.prev_hash != prev_hash:
            problem = Break(
                sequence,
                entry.audit_id,
                f"{_named(entry)} does not follow row {sequence - 1}: the "
                "hash it holds of the previous row differs (that row was "
                "changed, replaced or reordered)",
            )
        elif link_hash(prev_hash, entry) != entry.row_hash:
            problem = Break(
                sequence, entry.audit_id, f"{_named(entry)} was altered: its content does not match its hash"
            )
        elif entry.actor_id and actor_hash(key, entry.actor_type, entry.actor_id) != entry.actor_hash:
            problem = Break(
                sequence, entry.audit_id, f"{_named(entry)}: actor_id does not match the actor the chain recorded"
            )
        elif entry.user_id and user_hash(key, entry.user_id) != entry.user_hash:
            problem = Break(
                sequence, entry.audit_id, f"{_named(entry)}: user_id does not match the user the chain recorded"
            )
        elif sequence in wanted and (wanted[sequence].audit_id, wanted[sequence].row_hash) != (
            entry.audit_id,
            entry.row_hash,
        ):
            problem = Break(
                sequence,
                entry.audit_id,
                f"{_named(entry)} differs from the row verified there before "
                f"({wanted[sequence].audit_id}, hash "
                f"{wanted[sequence].row_hash[:16]}…): the chain was rewritten",
            )
        if problem is not None:
            return problem, last, held
        last, held = Link(entry.sequence, entry.audit_id, entry.row_hash), held + 1
    head = last.sequence if last is not None else 0
    beyond = [link for link in expected if link.sequence > head]
    if complete and beyond:
        cut = min(beyond, key=lambda link: link.sequence)
        return (
            Break(
                cut.sequence,
                cut.audit_id,
                f"the chain ends at row {head} but row {cut.sequence} "
                f"({cut.audit_id}) was verified before: rows were removed from "
                "its end",
            ),
            last,
            held,
        )
    return None, last, held
