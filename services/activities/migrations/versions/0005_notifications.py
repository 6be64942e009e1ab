"""users' notifications

Revision ID: 0005_notifications
Revises: 0004

One row per fill's notification: its message, when it reached the inbox and was read, and
its webhook's state.
"""

from alembic import op
import sqlalchemy as sa
import services.common.persistence.sqltypes


revision = '0005_notifications'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mbt_notifications',
    sa.Column('notification_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('fill_id', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('occurred_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('created_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('read_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('webhook_state', sa.String(length=16), nullable=False),
    sa.Column('webhook_attempts', sa.Integer(), nullable=False),
    sa.Column('outstanding', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('notification_id'),
    sa.UniqueConstraint('fill_id')
    )
    with op.batch_alter_table('mbt_notifications', schema=None) as batch_op:
        batch_op.create_index('ix_mbt_notifications_user_time', ['user_id', 'occurred_at', 'notification_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mbt_notifications_outstanding'), ['outstanding'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('mbt_notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mbt_notifications_outstanding'))
        batch_op.drop_index('ix_mbt_notifications_user_time')
    op.drop_table('mbt_notifications')
