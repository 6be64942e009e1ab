"""the replace saga's replacements; submissions' digests and rejection messages; inbox digests

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
import services.common.persistence.sqltypes
from services.common.persistence.migration_ops import add_inbox_payload_digest_v1, drop_inbox_payload_digest_v1


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_inbox_payload_digest_v1('orders')
    with op.batch_alter_table('mbt_orders') as batch:
        batch.add_column(sa.Column('request_digest', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('reject_message', sa.String(length=500), server_default='', nullable=False))
    op.create_table('mbt_order_replacements',
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('qty', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('time_in_force', sa.String(length=8), nullable=False),
    sa.Column('limit_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('stop_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('collar_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('expires_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('requested_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('lease_until', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['mbt_orders.order_id'], ),
    sa.PrimaryKeyConstraint('order_id', 'version')
    )
    op.create_index('ix_mbt_order_replacements_status_lease', 'mbt_order_replacements', ['status', 'lease_until'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_mbt_order_replacements_status_lease', table_name='mbt_order_replacements')
    op.drop_table('mbt_order_replacements')
    with op.batch_alter_table('mbt_orders') as batch:
        batch.drop_column('reject_message')
        batch.drop_column('request_digest')
    drop_inbox_payload_digest_v1('orders')
