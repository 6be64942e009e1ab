"""activities' teaching cards (margin interest)

Revision ID: 0007_cards
Revises: 0006_goal_streaks
"""

from alembic import op
import sqlalchemy as sa


revision = '0007_cards'
down_revision = '0006_goal_streaks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mbt_activities') as batch:
        batch.add_column(sa.Column('card', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mbt_activities') as batch:
        batch.drop_column('card')
