"""investor settings: a user's own fill preference default for multi-leg orders and the
starting cash their account opens with

Revision ID: 0006_user_fill_preference
Revises: 0005_hold_legs
"""

from alembic import op
import sqlalchemy as sa

import services.common.persistence.sqltypes


revision = '0006_user_fill_preference'
down_revision = '0005_hold_legs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('fill_preference', sa.String(length=16), nullable=True))
        batch.add_column(
            sa.Column('starting_cash', services.common.persistence.sqltypes.ExactDecimal(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('starting_cash')
        batch.drop_column('fill_preference')
