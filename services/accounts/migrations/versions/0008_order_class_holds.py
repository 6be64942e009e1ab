"""order classes: the exit group a bracket's or oco's two exits share, so they hold once

Revision ID: 0008_order_class_holds
Revises: 0007_user_settings
"""

from alembic import op
import sqlalchemy as sa


revision = '0008_order_class_holds'
down_revision = '0007_user_settings'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mbt_buying_power_reservations') as batch:
        batch.add_column(sa.Column('exit_group', sa.String(length=40), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('mbt_buying_power_reservations') as batch:
        batch.drop_column('exit_group')
