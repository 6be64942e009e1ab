"""multi-leg option orders: the legs a hold is bound to

Revision ID: 0005_hold_legs
Revises: 0004_gdpr
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_hold_legs'
down_revision = '0004_gdpr'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mbt_buying_power_reservations') as batch:
        batch.add_column(sa.Column('legs', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mbt_buying_power_reservations') as batch:
        batch.drop_column('legs')
