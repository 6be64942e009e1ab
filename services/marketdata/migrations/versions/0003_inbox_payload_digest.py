"""inbox payload digests

Revision ID: 0003
Revises: 0002
"""

from services.common.persistence.migration_ops import add_inbox_payload_digest_v1, drop_inbox_payload_digest_v1


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_inbox_payload_digest_v1('marketdata')


def downgrade() -> None:
    drop_inbox_payload_digest_v1('marketdata')
