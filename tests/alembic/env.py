"""Alembic environment: online migrations against GATEHOUSE_ALEMBIC_URL,
one transaction per migration, as Alembic runs them by default on
PostgreSQL (transactional DDL)."""

import os

from alembic import context
from sqlalchemy import create_engine

url = os.environ["GATEHOUSE_ALEMBIC_URL"]
engine = create_engine(url, connect_args={"sslmode": os.environ.get("PGSSLMODE", "require")})

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
