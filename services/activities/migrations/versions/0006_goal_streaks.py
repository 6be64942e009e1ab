"""weekly goal streaks

Revision ID: 0006_goal_streaks
Revises: 0005_notifications

One row per account and week judged: met or not, and the streak it makes.
"""

from alembic import op
import sqlalchemy as sa
import services.common.persistence.sqltypes


revision = '0006_goal_streaks'
down_revision = '0005_notifications'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mbt_goal_streaks',
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('week_end', sa.Date(), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('met', sa.Boolean(), nullable=False),
    sa.Column('streak', sa.Integer(), nullable=False),
    sa.Column('activity_id', sa.String(length=40), nullable=False),
    sa.Column('evaluated_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'week_end')
    )
    with op.batch_alter_table('mbt_goal_streaks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mbt_goal_streaks_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('mbt_goal_streaks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mbt_goal_streaks_user_id'))
    op.drop_table('mbt_goal_streaks')
