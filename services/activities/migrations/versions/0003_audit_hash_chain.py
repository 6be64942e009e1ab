"""audit_log hash chain

Revision ID: 0003
Revises: 0002

Adds each row's position, the keyed hashes of actor and user, the previous row's hash and
its own, and chains the rows already there in the order they were recorded, with the key
the process is configured with (``MBT_AUDIT_ACTOR_KEY``).
"""

from alembic import context, op
import sqlalchemy as sa
import services.common.persistence.sqltypes
from services.activities import audit_chain
from services.activities.audit_trail import actor_key


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

COLUMNS = ('chain_seq', 'actor_hash', 'user_hash', 'prev_hash', 'row_hash')
# The table as this revision finds it (never the current model: later revisions may change it).
AUDIT_LOG = sa.table(
    'audit_log', *(sa.column(name) for name in (
        'audit_id', 'actor_type', 'actor_id', 'action', 'entity_type', 'entity_id', 'user_id', 'request_id',
        'service', *COLUMNS)),
    sa.column('before', sa.JSON()), sa.column('after', sa.JSON()),
    sa.column('occurred_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True)),
    sa.column('recorded_at', services.common.persistence.sqltypes.UtcDateTime(timezone=True)))


def _chain_existing_rows(key: bytes) -> None:
    connection = op.get_bind()
    previous = None
    for row in connection.execute(sa.select(AUDIT_LOG).order_by(AUDIT_LOG.c.recorded_at, AUDIT_LOG.c.audit_id)).all():
        entry = audit_chain.Entry(
            sequence=0, audit_id=row.audit_id, actor_type=row.actor_type, actor_id=row.actor_id, actor_hash="",
            action=row.action, entity_type=row.entity_type, entity_id=row.entity_id, user_id=row.user_id,
            user_hash="", before=row.before, after=row.after, request_id=row.request_id, service=row.service,
            occurred_at=row.occurred_at, recorded_at=row.recorded_at)
        sealed = audit_chain.seal(key, entry, previous)
        connection.execute(sa.update(AUDIT_LOG).where(AUDIT_LOG.c.audit_id == row.audit_id).values(
            chain_seq=sealed.sequence, actor_hash=sealed.actor_hash, user_hash=sealed.user_hash,
            prev_hash=sealed.prev_hash, row_hash=sealed.row_hash))
        previous = audit_chain.Link(sealed.sequence, sealed.audit_id, sealed.row_hash)


def upgrade() -> None:
    settings = context.config.attributes.get("settings")
    if settings is None and op.get_bind().execute(sa.select(sa.func.count()).select_from(AUDIT_LOG)).scalar_one():
        raise RuntimeError("chaining the existing audit rows needs the key (MBT_AUDIT_ACTOR_KEY): migrate them "
                           "from the service, which passes its settings")
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chain_seq', sa.BigInteger(), nullable=True))
        for name in COLUMNS[1:]:
            batch_op.add_column(sa.Column(name, sa.String(length=64), nullable=True))
    if settings is not None:
        _chain_existing_rows(actor_key(settings))
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.alter_column('chain_seq', existing_type=sa.BigInteger(), nullable=False)
        for name in COLUMNS[1:]:
            batch_op.alter_column(name, existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(batch_op.f('ix_audit_log_chain_seq'), ['chain_seq'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_chain_seq'))
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
