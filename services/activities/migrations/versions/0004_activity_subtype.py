"""activity subtype

Revision ID: 0004
Revises: 0003

An activity's subtype: for `expiration` activities, expired_worthless, exercised, assigned
or cash_settled (empty for the others).
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mbt_activities') as batch:
        batch.add_column(sa.Column('subtype', sa.String(length=24), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('mbt_activities') as batch:
        batch.drop_column('subtype')
