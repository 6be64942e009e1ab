"""investor settings: a user's own fill preference default for multi-leg orders and the
starting cash their account opens with

Revision ID: 0007_user_settings
Revises: 0006_eod
"""

from alembic import op
import sqlalchemy as sa

import services.common.persistence.sqltypes


revision = '0007_user_settings'
down_revision = '0006_eod'
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
