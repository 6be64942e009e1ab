"""gateway passkeys

Revision ID: 0001
Revises: 
"""

from alembic import op
import sqlalchemy as sa
import services.common.persistence.sqltypes


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gateway_passkeys',
    sa.Column('credential_id', sa.String(length=1400), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('credential_public_key', sa.LargeBinary(), nullable=False),
    sa.Column('sign_count', sa.BigInteger(), nullable=False),
    sa.Column('transports', sa.String(length=128), nullable=False),
    sa.Column('aaguid', sa.String(length=36), nullable=False),
    sa.Column('backed_up', sa.Boolean(), nullable=False),
    sa.Column('created_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('credential_id')
    )
    with op.batch_alter_table('gateway_passkeys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_passkeys_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('gateway_passkeys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_passkeys_user_id'))

    op.drop_table('gateway_passkeys')
