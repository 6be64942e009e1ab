"""holders' do-not-exercise instructions for expiring long options

Revision ID: 0009_expiry_instructions
Revises: 0008_order_class_holds
"""

from alembic import op
import sqlalchemy as sa

import services.common.persistence.sqltypes


revision = "0009_expiry_instructions"
down_revision = "0008_order_class_holds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mbt_option_instructions",
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("instruction", sa.String(length=24), nullable=False),
        sa.Column("expiration", sa.Date(), nullable=False),
        sa.Column("cutoff_at", services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
        sa.Column("given_at", services.common.persistence.sqltypes.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["mbt_accounts.account_id"],
        ),
        sa.PrimaryKeyConstraint("account_id", "symbol"),
    )


def downgrade() -> None:
    op.drop_table("mbt_option_instructions")
