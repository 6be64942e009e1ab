"""the order the ledger applied its entries in, per account

Revision ID: 0010_ledger_sequence
Revises: 0009_expiry_instructions

Entries already there are numbered in the order the ledger read them until now (time, then
id; carried-forward balances 0), the best order known for them.
"""

from alembic import op
import sqlalchemy as sa


revision = '0010_ledger_sequence'
down_revision = '0009_expiry_instructions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mbt_account_ledger') as batch:
        batch.add_column(sa.Column('sequence', sa.Integer(), nullable=True))
    op.execute(
        """
        UPDATE mbt_account_ledger SET sequence = (
            SELECT numbered.n FROM (
                SELECT entry_id, ROW_NUMBER() OVER (
                    PARTITION BY account_id ORDER BY occurred_at, entry_id
                ) AS n
                FROM mbt_account_ledger WHERE kind <> 'carried_forward'
            ) AS numbered
            WHERE numbered.entry_id = mbt_account_ledger.entry_id
        )
        """
    )
    op.execute("UPDATE mbt_account_ledger SET sequence = 0 WHERE kind = 'carried_forward'")
    with op.batch_alter_table('mbt_account_ledger') as batch:
        batch.alter_column('sequence', existing_type=sa.Integer(), nullable=False)
        batch.create_index('ix_mbt_account_ledger_account_sequence', ['account_id', 'sequence'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('mbt_account_ledger') as batch:
        batch.drop_index('ix_mbt_account_ledger_account_sequence')
        batch.drop_column('sequence')
