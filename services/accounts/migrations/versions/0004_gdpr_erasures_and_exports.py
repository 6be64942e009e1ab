"""GDPR: erasure requests (and tombstones) and data exports

Revision ID: 0004_gdpr
Revises: 0003_graduation_overrides
"""

from alembic import op
import sqlalchemy as sa
import services.common.persistence.sqltypes


revision = '0004_gdpr'
down_revision = '0003_graduation_overrides'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mbt_erasures',
    sa.Column('erasure_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('user_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('due_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('erasure_id')
    )
    with op.batch_alter_table('mbt_erasures', schema=None) as batch_op:
        batch_op.create_index('ix_mbt_erasures_status_due', ['status', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_mbt_erasures_user_hash'), ['user_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_mbt_erasures_user_id'), ['user_id'], unique=False)

    op.create_table('mbt_data_exports',
    sa.Column('export_id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ready_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('archive', sa.LargeBinary(), nullable=True),
    sa.Column('archive_sha256', sa.String(length=64), nullable=False),
    sa.Column('archive_bytes', sa.BigInteger(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('export_id')
    )
    with op.batch_alter_table('mbt_data_exports', schema=None) as batch_op:
        batch_op.create_index('ix_mbt_data_exports_user', ['user_id', 'requested_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('mbt_data_exports', schema=None) as batch_op:
        batch_op.drop_index('ix_mbt_data_exports_user')
    op.drop_table('mbt_data_exports')
    with op.batch_alter_table('mbt_erasures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mbt_erasures_user_id'))
        batch_op.drop_index(batch_op.f('ix_mbt_erasures_user_hash'))
        batch_op.drop_index('ix_mbt_erasures_status_due')
    op.drop_table('mbt_erasures')
