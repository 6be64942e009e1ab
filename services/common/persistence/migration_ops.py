"""Schema operations the services' migrations share: the outbox, pending-delivery, lease
and inbox tables every event-producing service owns (DESIGN §4, ``services.common.messaging.outbox``).

Each function is one frozen version of those tables. A later schema change adds a new
function and a migration that calls it, never an edit here, so an old revision keeps
building exactly the schema it built when it was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.common.persistence.sqltypes import UtcDateTime

SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def create_outbox_tables_v1(service: str) -> None:
    op.create_table(
        f"{service}_inbox",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("producer", sa.String(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column("received_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        f"{service}_outbox",
        sa.Column("sequence", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column("aggregate_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sequence"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_table(
        f"{service}_outbox_lease",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        f"{service}_outbox_pending",
        sa.Column("sequence", SEQUENCE, nullable=False),
        sa.Column("subscriber", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["sequence"], [f"{service}_outbox.sequence"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sequence", "subscriber"),
    )


def drop_outbox_tables_v1(service: str) -> None:
    for table in ("outbox_pending", "outbox_lease", "outbox", "inbox"):
        op.drop_table(f"{service}_{table}")


def add_inbox_payload_digest_v1(service: str) -> None:
    """The inbox keeps each event's payload digest, so an id reused for another payload is refused."""
    with op.batch_alter_table(f"{service}_inbox") as batch:
        batch.add_column(sa.Column("payload_sha256", sa.String(length=64), nullable=True))


def drop_inbox_payload_digest_v1(service: str) -> None:
    with op.batch_alter_table(f"{service}_inbox") as batch:
        batch.drop_column("payload_sha256")
