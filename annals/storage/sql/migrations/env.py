"""Alembic environment. The connection is always handed in by the driver (never from a URL)."""

from __future__ import annotations

from alembic import context

from annals.storage.sql.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
