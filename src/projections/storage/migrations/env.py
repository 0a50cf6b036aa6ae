"""Alembic's entry point, run programmatically by :func:`projections.storage.schema.migrate`
on the connection it passes (no ``alembic.ini``, no URL: the ledger's own database)."""

from __future__ import annotations

from alembic import context

from projections.storage.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
