"""Rename a table and a column, and add a partial unique index."""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade():
    op.rename_table("orm_ledger_note", "orm_ledger_memo")
    op.alter_column("orm_ledger_memo", "note", new_column_name="memo")
    op.create_index("orm_ledger_one_pending", "orm_ledger", ["account"], unique=True,
                    postgresql_where="status = 'pending'")


def downgrade():
    op.drop_index("orm_ledger_one_pending", table_name="orm_ledger")
    op.alter_column("orm_ledger_memo", "memo", new_column_name="note")
    op.rename_table("orm_ledger_memo", "orm_ledger_note")
