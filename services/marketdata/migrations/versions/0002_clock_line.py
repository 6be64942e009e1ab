"""the replay clock keeps its line (wall anchor and speed), not only a point

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
import services.common.persistence.sqltypes


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mbt_marketdata_clock', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wall_at_ns', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('speed', services.common.persistence.sqltypes.ExactDecimal(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mbt_marketdata_clock', schema=None) as batch_op:
        batch_op.drop_column('speed')
        batch_op.drop_column('wall_at_ns')
