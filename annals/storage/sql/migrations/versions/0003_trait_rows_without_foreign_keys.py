"""Trait rows without a foreign key to their event.

PostgreSQL checks a foreign key with a trigger per inserted row (a ``SELECT ... FOR KEY
SHARE`` of the parent): about thirteen trait rows per event made those checks a third of the
time spent writing a batch (82 instead of 123 ms per 1,000 events measured on PostgreSQL 15).
Trait rows are only ever written in the same transaction as their event, with the id the
driver chose for it, and the expirer deletes an event's traits in the transaction that
deletes the event: the driver keeps the reference, the database no longer checks it.

The event -> event_type and trait_type -> event_type foreign keys stay (one check per event
or per new catalogue row; the expirer relies on the first one, see ``_prune_event_type``).

PostgreSQL and MySQL/MariaDB drop the constraints in place, without touching rows. SQLite
cannot drop a constraint: each trait table is copied into a new table (minutes and twice the
disk space of the trait tables for tens of millions of events; writers wait meanwhile).

The downgrade deletes trait rows whose event no longer exists (there are none unless the
database was written by something else than Annals), then adds the constraints back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TRAIT_TABLES = ("trait_string", "trait_integer", "trait_float", "trait_datetime")


def _constraint(table: str) -> str:
    return f"fk_{table}_event_id_event"


# Batch mode with recreate="auto": a plain ALTER TABLE on PostgreSQL and MySQL/MariaDB; on
# SQLite, which cannot ALTER a constraint, a copy of the table with or without it.


def upgrade() -> None:
    for table in TRAIT_TABLES:
        with op.batch_alter_table(table, recreate="auto") as batch:
            batch.drop_constraint(_constraint(table), type_="foreignkey")


def downgrade() -> None:
    for table in TRAIT_TABLES:
        op.execute(
            f"DELETE FROM {table} WHERE NOT EXISTS "
            f"(SELECT 1 FROM event WHERE event.id = {table}.event_id)"
        )
        with op.batch_alter_table(table, recreate="auto") as batch:
            batch.create_foreign_key(
                _constraint(table), "event", ["event_id"], ["id"], ondelete="CASCADE"
            )
