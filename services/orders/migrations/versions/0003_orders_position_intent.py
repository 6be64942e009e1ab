"""options: an order's position intent (buy_to_open, ...; null for stock) and a multi-leg order's fill preference

Revision ID: 0003pi
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa


revision = '0003pi'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mbt_orders') as batch:
        batch.add_column(sa.Column('position_intent', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('fill_preference', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mbt_orders') as batch:
        batch.drop_column('fill_preference')
        batch.drop_column('position_intent')
