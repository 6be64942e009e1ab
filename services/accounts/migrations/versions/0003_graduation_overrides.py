"""graduation overrides

Revision ID: 0003_graduation_overrides
Revises: 0002

An operator's opening of a user's graduation gate: why, who, when.
"""

from alembic import op
import sqlalchemy as sa
import services.common.persistence.sqltypes


revision = '0003_graduation_overrides'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mbt_graduation_overrides',
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('operator', sa.String(length=128), nullable=False),
    sa.Column('granted_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id')
    )


def downgrade() -> None:
    op.drop_table('mbt_graduation_overrides')
