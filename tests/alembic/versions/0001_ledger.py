"""Create the ledger tables."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "orm_ledger",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account", sa.String(34), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("tags", sa.ARRAY(sa.Text), server_default="{}"),
    )
    op.create_index("orm_ledger_account", "orm_ledger", ["account"])
    op.create_table(
        "orm_ledger_note",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ledger_id", sa.Integer, sa.ForeignKey("orm_ledger.id", ondelete="CASCADE")),
        sa.Column("note", sa.Text),
    )


def downgrade():
    op.drop_table("orm_ledger_note")
    op.drop_index("orm_ledger_account", table_name="orm_ledger")
    op.drop_table("orm_ledger")
