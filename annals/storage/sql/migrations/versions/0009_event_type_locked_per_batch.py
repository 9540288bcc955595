"""PostgreSQL and MySQL/MariaDB: no foreign key from event to event_type.

The key was checked once per inserted event row: on PostgreSQL a trigger per row, which ran
a query locking the event type row (FOR KEY SHARE): 6.65% of the server's CPU samples during
a load (perf), and 7.8 s against 7.0 s of server CPU for an in-process load of 100k events
with and without it (medians of 3, session 11's machine).
The writer now takes that lock itself, once per batch, on the batch's event types
(SQLDriver._lock_event_types), and an expirer pruning an event type still waits for it: the
guarantee is the same, one statement per batch instead of one per event.

MySQL/MariaDB also lose the index InnoDB made for the key when the table was created (on
``event_type_id`` alone): ``(event_type_id, generated, message_id)`` serves every query.

SQLite keeps its key: one writer at a time, a cheap check, and dropping a key there copies
the whole table (and would drop the expression indexes of 0006 and 0007).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

KEY = "fk_event_event_type_id_event_type"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        return
    op.drop_constraint(KEY, "event", type_="foreignkey")
    if bind.dialect.name in ("mysql", "mariadb"):
        indexes = {ix["name"] for ix in sa.inspect(bind).get_indexes("event")}
        if KEY in indexes:
            op.drop_index(KEY, table_name="event")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        return
    op.create_foreign_key(KEY, "event", "event_type", ["event_type_id"], ["id"])
