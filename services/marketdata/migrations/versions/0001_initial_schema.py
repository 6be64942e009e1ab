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
    create_outbox_tables_v1('marketdata')
    op.create_table('mbt_corporate_actions',
    sa.Column('action_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('action_type', sa.String(length=16), nullable=False),
    sa.Column('ex_date', sa.Date(), nullable=False),
    sa.Column('record_date', sa.Date(), nullable=True),
    sa.Column('pay_date', sa.Date(), nullable=True),
    sa.Column('cash_amount', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('fetched_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('action_id'),
    sa.UniqueConstraint('symbol', 'action_type', 'ex_date', name='ux_mbt_corporate_actions')
    )
    with op.batch_alter_table('mbt_corporate_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mbt_corporate_actions_symbol'), ['symbol'], unique=False)

    op.create_table('mbt_marketdata_clock',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('simulated_at_ns', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('mbt_tick_archive',
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('sequence', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('quote_at_ns', sa.BigInteger(), nullable=False),
    sa.Column('bid_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('bid_size', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('ask_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('ask_size', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('condition', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('archived_at_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('symbol', 'sequence')
    )
    with op.batch_alter_table('mbt_tick_archive', schema=None) as batch_op:
        batch_op.create_index('ix_mbt_tick_archive_symbol_time', ['symbol', 'quote_at_ns'], unique=False)



def downgrade() -> None:
    drop_outbox_tables_v1('marketdata')
    with op.batch_alter_table('mbt_tick_archive', schema=None) as batch_op:
        batch_op.drop_index('ix_mbt_tick_archive_symbol_time')

    op.drop_table('mbt_tick_archive')
    op.drop_table('mbt_marketdata_clock')
    with op.batch_alter_table('mbt_corporate_actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mbt_corporate_actions_symbol'))

    op.drop_table('mbt_corporate_actions')
