"""SQLite: the trait value indexes lead with the name and the event id's bucket.

``(name, value, event_id)`` puts a new trait row where its value sorts: for a trait whose
values are all different (an instance id, a request id) every row of a batch lands on a
page of its own, and SQLite's commit writes each changed page to the WAL. With
``(name, event_id >> 12, value, event_id)`` the rows of a batch of new events, whose ids
are the newest, go to the last bucket of 4,096 event ids of each name: a few dozen pages.

A trait filter still reads its matches from the index: for each bucket the table holds
(from its first event id to its last, a recursive CTE in the driver) one seek on (name,
bucket, value). The expression must stay written exactly as here for SQLite to match the
queries' ``event_id >> 12`` to the indexes.

PostgreSQL and MySQL/MariaDB keep ``(name, value, event_id)``.

Building an index reads its trait table once (writers wait meanwhile).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TRAIT_TABLES = ("trait_string", "trait_integer", "trait_float", "trait_datetime")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TRAIT_TABLES:
        op.execute(
            f"CREATE INDEX ix_{table}_name_bucket_value ON {table} "
            "(name, event_id >> 12, value, event_id)"
        )
        op.drop_index(f"ix_{table}_name_value_event_id", table_name=table)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TRAIT_TABLES:
        op.create_index(f"ix_{table}_name_value_event_id", table, ["name", "value", "event_id"])
        op.drop_index(f"ix_{table}_name_bucket_value", table_name=table)
