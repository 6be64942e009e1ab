"""archived ticks keep a model quote's inputs

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mbt_tick_archive', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model_inputs', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mbt_tick_archive', schema=None) as batch_op:
        batch_op.drop_column('model_inputs')
