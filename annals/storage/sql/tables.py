"""Schema of the SQL driver.

Designed for the queries the API runs, not copied from Panko:

* ``event.generated`` is an integer count of microseconds since the epoch (UTC): exact on every
  engine, compact, and indexed together with ``message_id`` for the default sort and keyset
  pagination.
* ``event.project_id`` / ``event.user_id`` hold the string traits of the same names, so the
  visibility scope every request carries is an indexed column test instead of a trait lookup.
  Since migration 0004 they are the only copy: those two traits have no ``trait_string``
  rows (the driver reads, filters and lists them from the columns).
* One trait table per type, each keyed ``(event_id, name)`` and indexed ``(name, value,
  event_id)`` so a trait filter is an index range scan, not a scan of every trait.
* Trait rows carry no foreign key to their event (migration 0003): PostgreSQL checked it with
  a trigger per row, a third of the write time. The driver keeps the reference: traits are
  written in their event's transaction (PostgreSQL's string trait rows: in a second one on
  another connection, committed just before it, SQLDriver._copy_postgresql) and deleted in
  the transaction that deletes it.
  Likewise events carry none to their event type on PostgreSQL and MySQL/MariaDB (0009):
  the writer share-locks the batch's event type rows once, which is what the per-row check
  did (SQLDriver._lock_event_types).
* On SQLite the trait tables are ``WITHOUT ROWID`` (migration 0005): a trait row is one entry
  of the ``(event_id, name)`` B-tree, not a rowid row plus an index entry pointing to it.
* ``trait_type`` keeps the distinct (event type, trait name, type) triples, so listing the
  traits of an event type never scans events.
* On SQLite, whose commits cost one WAL page write per page changed, the indexes a batch of
  new events would otherwise scatter over lead with a bucket the batch shares: the owner
  listing indexes with the event's day (migration 0006, SQLITE_DAY_INDEXES) and the trait
  value indexes with the event id's bucket (migration 0007, SQLITE_BUCKET_INDEXES). Reads
  walk the buckets in order (the driver's ON_STORED_DAYS / ON_STORED_BUCKETS).

Strings compare in byte order on every engine (case- and accent-sensitive, the same order
everywhere): MySQL/MariaDB tables are utf8mb4 with a binary collation, PostgreSQL's string
columns are ``COLLATE "C"`` (migration 0010), SQLite compares ``BINARY``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from annals.models import NAME_LENGTH, STRING_VALUE_LENGTH, TraitType

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

MYSQL_TABLE_ARGS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mariadb_engine": "InnoDB",
    "mariadb_charset": "utf8mb4",
    "mariadb_collate": "utf8mb4_bin",
}


def _not_sqlite(
    ddl: Any,
    target: Any,
    bind: Any,
    tables: Any = None,
    state: Any = None,
    *,
    dialect: sa.Dialect,
    compiler: Any = None,
    checkfirst: bool,
) -> bool:
    """Conditional DDL: created on every engine but SQLite."""
    return dialect.name != "sqlite"


# SQLite only aliases the rowid for a column declared exactly INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
RawText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def _string(length: int) -> sa.types.TypeEngine[str]:
    """A string column, compared in byte order on every engine: ``COLLATE "C"`` on PostgreSQL
    (migration 0010), as SQLite's ``BINARY`` and MySQL's ``utf8mb4_bin`` (MYSQL_TABLE_ARGS)."""
    return sa.String(length).with_variant(postgresql.VARCHAR(length, collation="C"), "postgresql")


Name = _string(NAME_LENGTH)

event_type = sa.Table(
    "event_type",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", Name, nullable=False, unique=True),
    **MYSQL_TABLE_ARGS,
)

event = sa.Table(
    "event",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("message_id", Name, nullable=False, unique=True),
    # A foreign key on SQLite only: PostgreSQL and MySQL/MariaDB dropped it in migration
    # 0009 (the writer locks a batch's event type rows once instead of a check per event).
    # Declared here for SQLite and for the order of ``metadata.sorted_tables``.
    sa.Column("event_type_id", sa.Integer, sa.ForeignKey("event_type.id"), nullable=False),
    sa.Column("generated", sa.BigInteger, nullable=False),
    sa.Column("project_id", Name, nullable=True),
    sa.Column("user_id", Name, nullable=True),
    sa.Column("raw", RawText, nullable=True),
    # The event's trait documents as the API shows them (models.encode_traits), written with
    # the trait rows (migration 0008): a page copies them instead of reading every trait row.
    # NULL for events stored before 0008, whose traits are read from the trait tables.
    sa.Column("traits", RawText, nullable=True),
    # Every listing is ORDER BY generated, message_id LIMIT n: each index ends with those two
    # columns, so an equality on its first column reads the page in order and stops at n.
    sa.Index(None, "generated", "message_id"),
    sa.Index(None, "event_type_id", "generated", "message_id"),
    # PostgreSQL and MySQL/MariaDB: owner listings. SQLite has these led by the day instead
    # (SQLITE_DAY_INDEXES, migration 0006).
    sa.Index(None, "project_id", "generated", "message_id").ddl_if(callable_=_not_sqlite),
    # Member listings (project AND user): a user's events are few, and mostly in one project.
    # (project_id, user_id, generated, message_id) would be exact, but is over MySQL's
    # 3,072-byte key limit with 255-character utf8mb4 columns.
    sa.Index(None, "user_id", "generated", "message_id").ddl_if(callable_=_not_sqlite),
    **MYSQL_TABLE_ARGS,
)

#: SQLite: an event's day (microseconds per day). The owner listing indexes lead with
#: ``generated / SQLITE_DAY_MICROS`` (SQLite's integer division) so that a batch of recent
#: events changes one day's region of each, not the end of every project's and user's range
#: (migration 0006). Queries must write the expression exactly so (driver.EVENT_DAY).
SQLITE_DAY_MICROS = 86_400_000_000
#: SQLite: index name -> owner column, each index being (day, owner, generated, message_id).
#: Not in ``metadata``: Alembic cannot compare expression indexes; tests check them.
SQLITE_DAY_INDEXES = {
    "ix_event_day_project_id": "project_id",
    "ix_event_day_user_id": "user_id",
}


#: SQLite: the trait value indexes lead with the trait name and the event id's bucket of
#: 2**SQLITE_ID_BUCKET_BITS ids, ``(name, event_id >> SQLITE_ID_BUCKET_BITS, value,
#: event_id)`` (migration 0007): the traits of a batch of new events, whose ids are the
#: newest, change the last bucket's region of each name instead of a page per random value
#: (an instance id). Not in ``metadata`` (expression indexes); tests check them.
SQLITE_ID_BUCKET_BITS = 12
SQLITE_BUCKET_INDEXES = {
    "trait_string": "ix_trait_string_name_bucket_value",
    "trait_integer": "ix_trait_integer_name_bucket_value",
    "trait_float": "ix_trait_float_name_bucket_value",
    "trait_datetime": "ix_trait_datetime_name_bucket_value",
}


def _trait_table(name: str, value_type: sa.types.TypeEngine[Any]) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("event_id", BigId, primary_key=True),
        sa.Column("name", Name, primary_key=True),
        sa.Column("value", value_type, nullable=False),
        # PostgreSQL and MySQL/MariaDB; SQLite's leads with the event id's bucket (0007).
        sa.Index(None, "name", "value", "event_id").ddl_if(callable_=_not_sqlite),
        # SQLite: the rows live in the (event_id, name) B-tree itself (migration 0005).
        sqlite_with_rowid=False,
        **MYSQL_TABLE_ARGS,
    )


trait_string = _trait_table("trait_string", _string(STRING_VALUE_LENGTH))
trait_integer = _trait_table("trait_integer", sa.BigInteger())
trait_float = _trait_table("trait_float", sa.Double())
trait_datetime = _trait_table("trait_datetime", sa.BigInteger())  # microseconds since epoch

TRAIT_TABLES: dict[TraitType, sa.Table] = {
    TraitType.STRING: trait_string,
    TraitType.INTEGER: trait_integer,
    TraitType.FLOAT: trait_float,
    TraitType.DATETIME: trait_datetime,
}

trait_type = sa.Table(
    "trait_type",
    metadata,
    sa.Column(
        "event_type_id",
        sa.Integer,
        sa.ForeignKey("event_type.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", Name, primary_key=True),
    sa.Column("type", sa.SmallInteger, primary_key=True, autoincrement=False),
    **MYSQL_TABLE_ARGS,
)
