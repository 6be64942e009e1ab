"""The audit chain's rules: every row links to the one before; a change, a removal, a
reordering, a rewrite that recomputed the hashes after it or rows cut from the end are named
at the first row where the chain stops holding; blanking the clear ids (an erasure) is not."""

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.activities import audit_chain
from services.activities.audit_chain import GENESIS_HASH, Entry, Link, first_break, seal

KEY = b"k" * 32
T0 = datetime(2012, 6, 21, 14, 0, tzinfo=UTC)


def entry(n: int, **changes) -> Entry:
    base = Entry(
        sequence=0,
        audit_id=f"aud_{n:04d}",
        actor_type="user",
        actor_id=f"user{n % 3}",
        actor_hash="",
        action="submit",
        entity_type="order",
        entity_id=f"ord_{n:04d}",
        user_id=f"user{n % 3}",
        user_hash="",
        before=None,
        after={"status": "accepted", "qty": float(n)},
        request_id=f"req_{n:08d}",
        service="orders",
        occurred_at=T0 + timedelta(seconds=n),
        recorded_at=T0 + timedelta(seconds=n, microseconds=7),
    )
    return replace(base, **changes)


def chain(length: int) -> list[Entry]:
    rows, previous = [], None
    for n in range(length):
        sealed = seal(KEY, entry(n), previous)
        rows.append(sealed)
        previous = Link(sealed.sequence, sealed.audit_id, sealed.row_hash)
    return rows


def head(rows: list[Entry]) -> Link:
    return Link(rows[-1].sequence, rows[-1].audit_id, rows[-1].row_hash)


def test_a_sealed_chain_holds_from_the_start_and_from_any_row():
    rows = chain(10)
    assert [r.sequence for r in rows] == list(range(1, 11))
    assert rows[0].prev_hash == GENESIS_HASH and all(b.prev_hash == a.row_hash for a, b in itertools.pairwise(rows))
    assert first_break(KEY, None, rows, complete=True) == (None, head(rows), 10)
    middle = Link(rows[4].sequence, rows[4].audit_id, rows[4].row_hash)
    assert first_break(KEY, middle, rows[5:], complete=True) == (None, head(rows), 5)


def test_the_clear_ids_are_not_in_the_hashed_content_but_their_keyed_hashes_are():
    sealed = chain(1)[0]
    content = audit_chain.canonical(sealed).decode()
    assert "user0" not in content and sealed.actor_hash in content and sealed.user_hash in content
    assert sealed.actor_hash == audit_chain.actor_hash(KEY, "user", "user0")
    assert sealed.actor_hash != audit_chain.actor_hash(b"x" * 32, "user", "user0")


def test_blanking_the_clear_actor_and_user_ids_leaves_the_chain_valid():
    rows = chain(6)
    rows[2] = replace(rows[2], actor_id="", user_id="")
    assert first_break(KEY, None, rows, complete=True)[0] is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("action", "cancel"),
        ("after", {"status": "filled", "qty": 3.0}),
        ("before", {}),
        ("entity_id", "ord_x"),
        ("occurred_at", T0),
        ("recorded_at", T0),
        ("request_id", "req_other0"),
        ("service", "accounts"),
        ("actor_type", "ops"),
        ("actor_hash", "0" * 64),
        ("user_hash", "1" * 64),
        ("audit_id", "aud_other"),
    ],
)
def test_altering_a_field_of_a_middle_row_is_named_at_that_row(field, value):
    rows = chain(7)
    rows[3] = replace(rows[3], **{field: value})
    broken, last, held = first_break(KEY, None, rows, complete=True)
    assert broken.sequence == 4 and "was altered" in broken.reason and held == 3
    assert last == Link(3, rows[2].audit_id, rows[2].row_hash)


def test_changing_a_clear_id_to_someone_else_is_named():
    rows = chain(5)
    rows[1] = replace(rows[1], actor_id="mallory")
    assert "actor_id does not match" in first_break(KEY, None, rows, complete=True)[0].reason
    rows = chain(5)
    rows[1] = replace(rows[1], user_id="mallory")
    broken = first_break(KEY, None, rows, complete=True)[0]
    assert broken.sequence == 2 and "user_id does not match" in broken.reason


def test_deleting_a_middle_row_names_the_missing_row():
    rows = chain(7)
    del rows[3]
    broken, _, held = first_break(KEY, None, rows, complete=True)
    assert (broken.sequence, broken.audit_id, held) == (4, "", 3)
    assert broken.reason == "row 4 is missing: the chain jumps from row 3 to row 5 (aud_0004)"


def test_deleting_the_first_row_is_named():
    rows = chain(3)
    broken = first_break(KEY, None, rows[1:], complete=True)[0]
    assert broken.reason == "row 1 is missing: the chain jumps from the start to row 2 (aud_0001)"


def test_a_row_rewritten_with_a_recomputed_hash_breaks_the_next_link():
    rows = chain(6)
    forged = replace(rows[2], action="cancel")
    rows[2] = replace(forged, row_hash=audit_chain.link_hash(forged.prev_hash, forged))
    broken = first_break(KEY, None, rows, complete=True)[0]
    assert broken.sequence == 4 and "does not follow row 3" in broken.reason


def test_swapping_two_rows_is_named():
    rows = chain(6)
    rows[2], rows[3] = rows[3], rows[2]
    assert first_break(KEY, None, rows, complete=True)[0].sequence == 3


def test_a_whole_rewrite_after_a_change_is_found_by_the_link_an_earlier_verification_kept():
    rows = chain(6)
    kept = head(rows)
    forged, previous = [], None
    for original in rows:
        changed = replace(original, action="cancel") if original.sequence == 2 else original
        sealed = seal(KEY, replace(changed, actor_hash="", user_hash="", prev_hash="", row_hash=""), previous)
        forged.append(sealed)
        previous = Link(sealed.sequence, sealed.audit_id, sealed.row_hash)
    assert first_break(KEY, None, forged, complete=True)[0] is None  # the chain alone cannot tell
    broken = first_break(KEY, None, forged, complete=True, expected=[kept])[0]
    assert broken.sequence == 6 and "differs from the row verified there before" in broken.reason


def test_rows_cut_from_the_end_are_found_by_the_link_an_earlier_verification_kept():
    rows = chain(6)
    broken = first_break(KEY, None, rows[:4], complete=True, expected=[head(rows)])[0]
    assert (broken.sequence, broken.audit_id) == (6, rows[5].audit_id)
    assert "the chain ends at row 4" in broken.reason
    # a page that does not reach the head yet says nothing about the end
    assert first_break(KEY, None, rows[:4], complete=False, expected=[head(rows)])[0] is None
    assert first_break(KEY, None, [], complete=True, expected=[head(rows)])[0].sequence == 6


@settings(max_examples=60, deadline=None)
@given(length=st.integers(2, 12), data=st.data())
def test_any_change_to_any_one_row_is_found_at_that_row_or_the_next(length, data):
    rows = chain(length)
    index = data.draw(st.integers(0, length - 1))
    change = data.draw(
        st.sampled_from(
            [
                {"action": "x"},
                {"entity_id": "e"},
                {"after": None},
                {"row_hash": "f" * 64},
                {"prev_hash": "e" * 64},
                {"sequence": 99},
            ]
        )
    )
    rows[index] = replace(rows[index], **change)
    broken = first_break(KEY, None, rows, complete=True)[0]
    assert broken is not None and broken.sequence in (index + 1, index + 2)
