"""SQLite: trait tables clustered on their primary key (``WITHOUT ROWID``).

A SQLite table whose primary key is not a single INTEGER column is stored twice: a B-tree of
rows keyed by a hidden rowid, and an automatic unique index on the declared key. Every
trait row cost three B-tree inserts (rows, ``(event_id, name)``, ``(name, value,
event_id)``); without the rowid the rows live in the ``(event_id, name)`` B-tree itself,
so a row is two inserts, and reading an event's traits is one range of that B-tree instead
of an index walk plus a lookup per row.

SQLite cannot change this in place: each trait table is copied into a new one (as 0003 did;
minutes and twice the disk space of the trait tables for tens of millions of events; writers
wait meanwhile). PostgreSQL and MySQL/MariaDB are untouched (InnoDB already clusters rows
on the primary key; PostgreSQL has no such option).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TRAIT_TABLES = ("trait_string", "trait_integer", "trait_float", "trait_datetime")


def _rebuild(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TRAIT_TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}
        ):
            pass


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)
