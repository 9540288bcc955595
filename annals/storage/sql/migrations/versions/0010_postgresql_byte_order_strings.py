"""PostgreSQL: every string column compares in byte order (``COLLATE "C"``).

A database created with a libc locale (``en_US.UTF-8``, and ``C.UTF-8`` too before
PostgreSQL 17) compares text through ``strcoll``: every key comparison of a B-tree insert
or probe on ``message_id``, the owner columns and the trait names and values went through
the C library's collation code, where byte order is a ``memcmp``. Ingestion spends most of
the server's time in those B-tree inserts (perf, session 15: ~71% of its CPU samples).

Byte order is also what SQLite (``BINARY``) and MySQL/MariaDB (``utf8mb4_bin``, 0001) use,
so a string range filter (``q.op=lt`` on a string trait) or the ``message_id`` tie-break of
a sort now gives the same order on every engine, whatever locale the database was created
with. Equality is unchanged under any deterministic collation.

Changing a column's collation keeps its rows (varchar to varchar is binary-coercible) and
rebuilds the indexes on it: on a large store this migration takes as long as building those
indexes once, under an exclusive lock of each table in turn.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: table -> (column, length) of every string column.
COLUMNS = {
    "event_type": (("name", 255),),
    "event": (("message_id", 255), ("project_id", 255), ("user_id", 255)),
    "trait_string": (("name", 255), ("value", 500)),
    "trait_integer": (("name", 255),),
    "trait_float": (("name", 255),),
    "trait_datetime": (("name", 255),),
    "trait_type": (("name", 255),),
}


def _collate(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        changes = ", ".join(
            f'ALTER COLUMN {name} TYPE varchar({length}) COLLATE "{collation}"'
            for name, length in columns
        )
        op.execute(f"ALTER TABLE {table} {changes}")


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    # Back to the database's default collation.
    _collate("default")
