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
    create_outbox_tables_v1('activities')
    op.create_table('audit_log',
    sa.Column('audit_id', sa.String(length=40), nullable=False),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('entity_type', sa.String(length=32), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('service', sa.String(length=32), nullable=False),
    sa.Column('occurred_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('audit_id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_entity_id'), ['entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_user_id'), ['user_id'], unique=False)

    op.create_table('mbt_activities',
    sa.Column('activity_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('activity_type', sa.String(length=24), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('fill_id', sa.String(length=40), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('qty', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('price', services.common.persistence.sqltypes.ExactDecimal(), nullable=True),
    sa.Column('net_amount', services.common.persistence.sqltypes.ExactDecimal(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('occurred_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('created_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('activity_id')
    )
    with op.batch_alter_table('mbt_activities', schema=None) as batch_op:
        batch_op.create_index('ix_mbt_activities_user_time', ['user_id', 'occurred_at', 'activity_id'], unique=False)



def downgrade() -> None:
    drop_outbox_tables_v1('activities')
    with op.batch_alter_table('mbt_activities', schema=None) as batch_op:
        batch_op.drop_index('ix_mbt_activities_user_time')

    op.drop_table('mbt_activities')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_user_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_entity_id'))

    op.drop_table('audit_log')
