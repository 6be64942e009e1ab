"""order classes: an order's class (bracket, oco, oto), the order its exits hang from, and
the exit group whose first fill cancels the rest

Revision ID: 0004_order_classes
Revises: 0003pi
"""

from alembic import op
import sqlalchemy as sa


revision = '0004_order_classes'
down_revision = '0003pi'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mbt_orders') as batch:
        batch.add_column(sa.Column('order_class', sa.String(length=16), nullable=False, server_default='simple'))
        batch.add_column(sa.Column('parent_order_id', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('exit_group', sa.String(length=40), nullable=True))
        batch.create_index('ix_mbt_orders_parent_order_id', ['parent_order_id'])


def downgrade() -> None:
    with op.batch_alter_table('mbt_orders') as batch:
        batch.drop_index('ix_mbt_orders_parent_order_id')
        batch.drop_column('exit_group')
        batch.drop_column('parent_order_id')
        batch.drop_column('order_class')
