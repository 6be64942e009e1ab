"""backtest runs and their result files

Revision ID: 0001
Revises:
"""

from alembic import op
import sqlalchemy as sa
import services.common.persistence.sqltypes


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mbt_backtests',
    sa.Column('backtest_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('parameters', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('progress_percent', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('statistics', sa.JSON(), nullable=False),
    sa.Column('ticks', sa.BigInteger(), nullable=False),
    sa.Column('orders', sa.BigInteger(), nullable=False),
    sa.Column('fills', sa.BigInteger(), nullable=False),
    sa.Column('created_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('started_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('backtest_id')
    )
    with op.batch_alter_table('mbt_backtests', schema=None) as batch_op:
        batch_op.create_index('ix_mbt_backtests_status', ['status'], unique=False)
        batch_op.create_index('ix_mbt_backtests_user_created', ['user_id', 'created_at', 'backtest_id'], unique=False)

    op.create_table('mbt_backtest_files',
    sa.Column('backtest_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['backtest_id'], ['mbt_backtests.backtest_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('backtest_id', 'name')
    )


def downgrade() -> None:
    op.drop_table('mbt_backtest_files')
    with op.batch_alter_table('mbt_backtests', schema=None) as batch_op:
        batch_op.drop_index('ix_mbt_backtests_user_created')
        batch_op.drop_index('ix_mbt_backtests_status')

    op.drop_table('mbt_backtests')
