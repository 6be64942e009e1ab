"""initial schema

Revision ID: 0001
Revises: 
"""

from alembic import op
import sqlalchemy as sa
import services.common.persistence.sqltypes
from services.common.persistence.migration_ops import create_outbox_tables_v1, drop_outbox_tables_v1


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_tables_v1('orders')
    op.create_table('mbt_orders',
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('client_order_id', sa.String(length=128), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('asset_class', sa.String(length=16), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('qty', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('order_type', sa.String(length=16), nullable=False),
    sa.Column('time_in_force', sa.String(length=8), nullable=False),
    sa.Column('limit_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('stop_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('collar_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('legs', sa.JSON(), nullable=False),
    sa.Column('multiplier', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reject_reason', sa.String(length=64), nullable=False),
    sa.Column('cancel_reason', sa.String(length=64), nullable=False),
    sa.Column('filled_qty', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('filled_avg_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('rejected_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('triggered_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('filled_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('canceled_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('expired_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('replaced_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('order_id'),
    sa.UniqueConstraint('user_id', 'client_order_id', name='ux_mbt_orders_client_order_id')
    )
    with op.batch_alter_table('mbt_orders', schema=None) as batch_op:
        batch_op.create_index('ix_mbt_orders_status_symbol', ['status', 'symbol'], unique=False)
        batch_op.create_index('ix_mbt_orders_user_created', ['user_id', 'created_at', 'order_id'], unique=False)

    op.create_table('mbt_fills',
    sa.Column('fill_id', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('qty', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('price', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('multiplier', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('bid_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('bid_size', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('ask_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('ask_size', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('quote_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('quote_at_ns', sa.BigInteger(), nullable=False),
    sa.Column('quote_sequence', sa.BigInteger(), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('legs', sa.JSON(), nullable=False),
    sa.Column('filled_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['mbt_orders.order_id'], ),
    sa.PrimaryKeyConstraint('fill_id')
    )
    with op.batch_alter_table('mbt_fills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mbt_fills_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mbt_fills_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    drop_outbox_tables_v1('orders')
    with op.batch_alter_table('mbt_fills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mbt_fills_user_id'))
        batch_op.drop_index(batch_op.f('ix_mbt_fills_order_id'))

    op.drop_table('mbt_fills')
    with op.batch_alter_table('mbt_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_mbt_orders_user_created')
        batch_op.drop_index('ix_mbt_orders_status_symbol')

    op.drop_table('mbt_orders')
