"""EOD snapshots keyed by as_of_date, with the close they are marked at and the positions (JSON)

Revision ID: 0006_eod
Revises: 0005_hold_legs

The table was never written before this revision: it is recreated in its new shape.
"""

from alembic import op
import sqlalchemy as sa
import services.common.persistence.sqltypes


revision = '0006_eod'
down_revision = '0005_hold_legs'
branch_labels = None
depends_on = None


def _money(name: str) -> sa.Column:
    return sa.Column(name, services.common.persistence.sqltypes.ExactDecimal(), nullable=False)


def _timestamp(name: str) -> sa.Column:
    return sa.Column(name, services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.drop_table('mbt_eod_snapshots')
    op.create_table('mbt_eod_snapshots',
    sa.Column('snapshot_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('as_of_date', sa.Date(), nullable=False),
    _timestamp('closed_at'),
    _money('cash'),
    _money('long_market_value'),
    _money('short_market_value'),
    _money('equity'),
    sa.Column('positions', sa.JSON(), nullable=False),
    _timestamp('created_at'),
    sa.ForeignKeyConstraint(['account_id'], ['mbt_accounts.account_id'], ),
    sa.PrimaryKeyConstraint('snapshot_id'),
    sa.UniqueConstraint('account_id', 'as_of_date')
    )


def downgrade() -> None:
    op.drop_table('mbt_eod_snapshots')
    op.create_table('mbt_eod_snapshots',
    sa.Column('snapshot_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('session_date', sa.Date(), nullable=False),
    _money('cash'),
    _money('long_market_value'),
    _money('short_market_value'),
    _money('equity'),
    _money('realized_pl'),
    _money('unrealized_pl'),
    _timestamp('created_at'),
    sa.ForeignKeyConstraint(['account_id'], ['mbt_accounts.account_id'], ),
    sa.PrimaryKeyConstraint('snapshot_id'),
    sa.UniqueConstraint('account_id', 'session_date')
    )
