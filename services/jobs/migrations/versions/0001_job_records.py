"""job records and schedule cursors

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
    op.create_table('mbt_job_runs',
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('job_key', sa.String(length=128), nullable=False),
    sa.Column('arguments', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=128), nullable=False),
    sa.Column('lease_until', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('progress', sa.JSON(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('offered_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('started_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('job', 'job_key')
    )
    with op.batch_alter_table('mbt_job_runs', schema=None) as batch_op:
        batch_op.create_index('ix_mbt_job_runs_state', ['state'], unique=False)

    op.create_table('mbt_job_schedule',
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('last_key', sa.String(length=128), nullable=False),
    sa.Column('due_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job')
    )


def downgrade() -> None:
    op.drop_table('mbt_job_schedule')
    with op.batch_alter_table('mbt_job_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_mbt_job_runs_state')

    op.drop_table('mbt_job_runs')
