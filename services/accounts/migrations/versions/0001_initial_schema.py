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
    create_outbox_tables_v1('accounts')
    op.create_table('users',
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('investor_profile', sa.String(length=24), nullable=False),
    sa.Column('created_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id')
    )
    op.create_table('mbt_accounts',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('account_type', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('investor_profile', sa.String(length=24), nullable=False),
    sa.Column('starting_cash', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('cash', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.user_id'], ),
    sa.PrimaryKeyConstraint('account_id'),
    sa.UniqueConstraint('user_id')
    )
    op.create_table('mbt_account_ledger',
    sa.Column('entry_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('fill_id', sa.String(length=40), nullable=True),
    sa.Column('order_id', sa.String(length=40), nullable=True),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('qty', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('price', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('multiplier', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('cash_delta', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('realized_pl', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('cash_after', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('occurred_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['mbt_accounts.account_id'], ),
    sa.PrimaryKeyConstraint('entry_id'),
    sa.UniqueConstraint('fill_id')
    )
    with op.batch_alter_table('mbt_account_ledger', schema=None) as batch_op:
        batch_op.create_index('ix_mbt_account_ledger_account_time', ['account_id', 'occurred_at'], unique=False)

    op.create_table('mbt_buying_power_reservations',
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('order_version', sa.Integer(), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('amount', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('qty', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('created_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('released_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['mbt_accounts.account_id'], ),
    sa.PrimaryKeyConstraint('order_id')
    )
    with op.batch_alter_table('mbt_buying_power_reservations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mbt_buying_power_reservations_account_id'), ['account_id'], unique=False)

    op.create_table('mbt_eod_snapshots',
    sa.Column('snapshot_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('session_date', sa.Date(), nullable=False),
    sa.Column('cash', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('long_market_value', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('short_market_value', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('equity', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('realized_pl', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('unrealized_pl', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('created_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['mbt_accounts.account_id'], ),
    sa.PrimaryKeyConstraint('snapshot_id'),
    sa.UniqueConstraint('account_id', 'session_date')
    )
    op.create_table('mbt_positions',
    sa.Column('position_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('asset_class', sa.String(length=16), nullable=False),
    sa.Column('qty', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('multiplier', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('avg_entry_price', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('realized_pl', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('opened_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['mbt_accounts.account_id'], ),
    sa.PrimaryKeyConstraint('position_id')
    )
    with op.batch_alter_table('mbt_positions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mbt_positions_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ux_mbt_positions_open', ['account_id', 'symbol'], unique=True, sqlite_where=sa.text('closed_at IS NULL'), postgresql_where=sa.text('closed_at IS NULL'))



def downgrade() -> None:
    drop_outbox_tables_v1('accounts')
    with op.batch_alter_table('mbt_positions', schema=None) as batch_op:
        batch_op.drop_index('ux_mbt_positions_open', sqlite_where=sa.text('closed_at IS NULL'), postgresql_where=sa.text('closed_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_mbt_positions_account_id'))

    op.drop_table('mbt_positions')
    op.drop_table('mbt_eod_snapshots')
    with op.batch_alter_table('mbt_buying_power_reservations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mbt_buying_power_reservations_account_id'))

    op.drop_table('mbt_buying_power_reservations')
    with op.batch_alter_table('mbt_account_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_mbt_account_ledger_account_time')

    op.drop_table('mbt_account_ledger')
    op.drop_table('mbt_accounts')
    op.drop_table('users')
