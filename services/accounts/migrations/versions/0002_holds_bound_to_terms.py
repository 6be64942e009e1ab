"""holds bound to the terms of each order version; inbox payload digests

Revision ID: 0002
Revises: 0001
"""

import warnings

from alembic import op
import sqlalchemy as sa
import services.common.persistence.sqltypes
from services.common.persistence.migration_ops import add_inbox_payload_digest_v1, drop_inbox_payload_digest_v1


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TABLE = 'mbt_buying_power_reservations'
# Batch mode copies the table with its reflected primary key before applying the new one;
# SQLAlchemy warns about that intermediate state, which is expected here.
PRIMARY_KEY_CHANGE = ".*as primary_key=True, not matching"


def upgrade() -> None:
    add_inbox_payload_digest_v1('accounts')
    with warnings.catch_warnings(), op.batch_alter_table(TABLE, recreate='always') as batch:
        warnings.filterwarnings("ignore", message=PRIMARY_KEY_CHANGE, category=sa.exc.SAWarning)
        batch.add_column(sa.Column('side', sa.String(length=8), nullable=True))
        batch.add_column(sa.Column('order_qty', services.common.persistence.sqltypes.ExactDecimal(), nullable=True))
        batch.add_column(sa.Column('price_bound', services.common.persistence.sqltypes.ExactDecimal(), nullable=True))
        batch.add_column(sa.Column('multiplier', services.common.persistence.sqltypes.ExactDecimal(), nullable=True))
        batch.add_column(sa.Column('release_reason', sa.String(length=16), server_default='', nullable=False))
        batch.create_primary_key('mbt_buying_power_reservations_pkey', ['order_id', 'order_version'])
    # Before this revision a hold was released only when its order ended.
    op.execute(sa.text(f"UPDATE {TABLE} SET release_reason = 'canceled' WHERE released_at IS NOT NULL"))


def downgrade() -> None:
    # One row per order again: keep each order's newest version.
    op.execute(sa.text(
        f"DELETE FROM {TABLE} WHERE order_version < "
        f"(SELECT MAX(newer.order_version) FROM {TABLE} AS newer WHERE newer.order_id = {TABLE}.order_id)"))
    with warnings.catch_warnings(), op.batch_alter_table(TABLE, recreate='always') as batch:
        warnings.filterwarnings("ignore", message=PRIMARY_KEY_CHANGE, category=sa.exc.SAWarning)
        batch.drop_column('release_reason')
        batch.drop_column('multiplier')
        batch.drop_column('price_bound')
        batch.drop_column('order_qty')
        batch.drop_column('side')
        batch.create_primary_key('mbt_buying_power_reservations_pkey', ['order_id'])
    drop_inbox_payload_digest_v1('accounts')
