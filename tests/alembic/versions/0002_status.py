"""Add a status with a check constraint, backfill it, and widen a column."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    op.add_column("orm_ledger", sa.Column("status", sa.String(16)))
    op.execute("INSERT INTO orm_ledger (id, account, amount) VALUES (1, 'DE00-TEST', 10.50), (2, 'DE00-TEST', -3.25)")
    op.execute("UPDATE orm_ledger SET status = 'booked' WHERE status IS NULL")
    op.alter_column("orm_ledger", "status", nullable=False, server_default="pending")
    op.create_check_constraint("orm_ledger_status", "orm_ledger", "status IN ('pending', 'booked', 'void')")
    op.alter_column("orm_ledger", "account", type_=sa.String(64))
    op.execute("UPDATE orm_ledger SET tags[1] = 'migrated' WHERE id = 1")


def downgrade():
    op.alter_column("orm_ledger", "account", type_=sa.String(34))
    op.drop_constraint("orm_ledger_status", "orm_ledger", type_="check")
    op.drop_column("orm_ledger", "status")
    op.execute("DELETE FROM orm_ledger WHERE id IN (1, 2)")
