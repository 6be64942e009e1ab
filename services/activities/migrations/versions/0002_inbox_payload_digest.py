"""inbox payload digests

Revision ID: 0002
Revises: 0001
"""

from services.common.persistence.migration_ops import add_inbox_payload_digest_v1, drop_inbox_payload_digest_v1


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_inbox_payload_digest_v1('activities')


def downgrade() -> None:
    drop_inbox_payload_digest_v1('activities')
