"""The Alembic migrations build exactly the schema the driver's tables describe."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from annals.query import Scope
from annals.storage.base import StorageDriver
from annals.storage.sql.tables import metadata

pytestmark = pytest.mark.db


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_models_and_migrations_agree(driver: StorageDriver) -> None:
    engine: sa.Engine = driver.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    if driver.dialect_name == "sqlite":  # type: ignore[attr-defined]
        # The owner indexes are not created on SQLite (conditional DDL, which Alembic does
        # not compare); the day indexes in their place are expressions, which it cannot.
        replaced = SQLITE_REPLACED_INDEXES + tuple(
            f"ix_{table}_name_value_event_id" for table in TRAIT_TABLE_NAMES
        )
        skipped = [entry for entry in diff if entry[0] == "add_index" and entry[1].name in replaced]
        assert sorted(entry[1].name for entry in skipped) == sorted(replaced)
        diff = [entry for entry in diff if entry not in skipped]
        assert _event_indexes(driver) == HEAD_EVENT_INDEXES["sqlite"]
        assert _trait_layout(driver) == HEAD_TRAIT_LAYOUT["sqlite"]
    else:
        # The event -> event_type key is declared for SQLite only (migration 0009).
        dropped = [entry for entry in diff if entry[0] == "add_fk"]
        assert [(fk.parent.name, fk.name) for _, fk in dropped] == [("event", EVENT_TYPE_KEY)]
        diff = [entry for entry in diff if entry not in dropped]
        assert EVENT_TYPE_KEY not in _event_indexes(driver, every=True)
    assert _event_foreign_keys(driver) == (
        {EVENT_TYPE_KEY} if driver.dialect_name == "sqlite" else set()  # type: ignore[attr-defined]
    )
    assert diff == []


EVENT_TYPE_KEY = "fk_event_event_type_id_event_type"


def _event_foreign_keys(driver: StorageDriver) -> set[str | None]:
    inspector = sa.inspect(driver.engine)  # type: ignore[attr-defined]
    found = inspector.get_foreign_keys("event")
    if driver.dialect_name == "sqlite":  # type: ignore[attr-defined]
        # SQLite's keys have no names: the one there is must be the event type's.
        assert [(fk["constrained_columns"], fk["referred_table"]) for fk in found] == [
            (["event_type_id"], "event_type")
        ]
        return {EVENT_TYPE_KEY}
    return {fk["name"] for fk in found}


def test_upgrade_is_idempotent_and_keeps_data(driver: StorageDriver) -> None:
    from annals.ingest.events import parse_event

    driver.record_events(
        [parse_event({"message_id": "keep", "event_type": "t", "generated": "2024-01-01T00:00:00"})]
    )
    driver.upgrade()
    driver.upgrade()
    assert driver.schema_is_current()
    from annals.query import EventQuery

    assert [e.message_id for e in driver.get_events(EventQuery())] == ["keep"]


FIRST_REVISION = "0001"


def test_upgrade_from_the_first_revision_keeps_data(database_url: str) -> None:
    """A database made at the first revision, filled, then upgraded to head."""
    from alembic import command

    from annals.query import EventQuery
    from annals.storage import get_driver
    from annals.storage.sql.driver import SQLDriver

    driver = get_driver(database_url)
    assert isinstance(driver, SQLDriver)
    try:
        with driver.engine.begin() as conn:
            command.upgrade(driver._alembic_config(conn), FIRST_REVISION)
        with driver.engine.begin() as conn:  # rows as revision 0001 lays them out
            conn.execute(sa.text("INSERT INTO event_type (id, name) VALUES (1, 'old.type')"))
            conn.execute(
                sa.text(
                    "INSERT INTO event (id, message_id, event_type_id, generated, project_id, "
                    "user_id, raw) VALUES (1, 'm-1', 1, 1700000000123456, 'p', 'u', '{\"a\": 1}')"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO trait_string (event_id, name, value) VALUES (1, 'project_id', 'p')"
                )
            )
            # Columns that disagree with the trait rows (never written by Annals): 0004
            # makes them say what the traits say before it drops the owner trait rows.
            conn.execute(
                sa.text(
                    "INSERT INTO event (id, message_id, event_type_id, generated, project_id, "
                    "user_id, raw) VALUES (2, 'm-2', 1, 1700000000123457, 'stale', NULL, NULL)"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO trait_string (event_id, name, value) VALUES "
                    "(2, 'project_id', 'p2'), (2, 'user_id', 'u2')"
                )
            )
            conn.execute(
                sa.text("INSERT INTO trait_integer (event_id, name, value) VALUES (1, 'n', 42)")
            )
            conn.execute(
                sa.text("INSERT INTO trait_type (event_type_id, name, type) VALUES (1, 'n', 2)")
            )
        assert not driver.schema_is_current() or _head(driver) == FIRST_REVISION
        driver.upgrade()
        assert driver.schema_is_current()
        event, second = driver.get_events(EventQuery())
        assert event.message_id == "m-1"
        assert event.raw == {"a": 1}
        assert {t.name: t.value for t in event.traits} == {"project_id": "p", "n": 42}
        assert {t.name: t.value for t in second.traits} == {"project_id": "p2", "user_id": "u2"}
        assert _owner_columns(driver) == [("p", None), ("p2", "u2")]
        assert _owner_trait_rows(driver) == 0
        assert event.generated.microsecond == 123456
        assert _event_indexes(driver) == HEAD_EVENT_INDEXES[driver.dialect_name]
        assert _owner_statistics(driver) is (driver.dialect_name == "postgresql")
        assert _trait_foreign_keys(driver) == {}
        assert _event_foreign_keys(driver) == (
            {EVENT_TYPE_KEY} if driver.dialect_name == "sqlite" else set()
        )
        assert _trait_layout(driver) == HEAD_TRAIT_LAYOUT[driver.dialect_name]
        # A trait row whose event is gone: possible only without the foreign keys (0003).
        with driver.engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO trait_string (event_id, name, value) VALUES (99, 'x', 'y')")
            )
        # And back: the downgrades restore the 0001 indexes and foreign keys (dropping the
        # orphaned trait row, which the foreign key would refuse), data untouched; up again.
        with driver.engine.begin() as conn:
            command.downgrade(driver._alembic_config(conn), FIRST_REVISION)
        assert _event_indexes(driver) == FIRST_EVENT_INDEXES
        assert _owner_statistics(driver) is False
        assert _trait_foreign_keys(driver) == {
            table: ("event", "CASCADE") for table in TRAIT_TABLE_NAMES
        }
        assert _event_foreign_keys(driver) == {EVENT_TYPE_KEY}
        assert _owner_trait_rows(driver) == 3  # written back from the columns
        assert _trait_layout(driver) == FIRST_TRAIT_LAYOUT
        with driver.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM trait_string")).scalar() == 3
        driver.upgrade()
        assert _event_indexes(driver) == HEAD_EVENT_INDEXES[driver.dialect_name]
        assert _trait_foreign_keys(driver) == {}
        assert _owner_trait_rows(driver) == 0
        assert _trait_layout(driver) == HEAD_TRAIT_LAYOUT[driver.dialect_name]
        event, second = driver.get_events(EventQuery())
        assert event.message_id == "m-1"
        assert {t.name: t.value for t in event.traits} == {"project_id": "p", "n": 42}
        assert {t.name: t.value for t in second.traits} == {"project_id": "p2", "user_id": "u2"}
        assert [
            (t.name, t.value) for t in driver.get_traits("old.type", "n", Scope.everything())
        ] == [("n", 42)]
    finally:
        driver.close()


FIRST_EVENT_INDEXES = {
    "ix_event_generated_message_id": ["generated", "message_id"],
    "ix_event_event_type_id_generated": ["event_type_id", "generated"],
    "ix_event_project_id_user_id_generated": ["project_id", "user_id", "generated"],
}
_HEAD_EVENT_INDEXES = {
    "ix_event_generated_message_id": ["generated", "message_id"],
    "ix_event_event_type_id_generated_message_id": ["event_type_id", "generated", "message_id"],
    "ix_event_project_id_generated_message_id": ["project_id", "generated", "message_id"],
    "ix_event_user_id_generated_message_id": ["user_id", "generated", "message_id"],
}
#: SQLite has the owner indexes led by the event's day instead (0006).
SQLITE_REPLACED_INDEXES = (
    "ix_event_project_id_generated_message_id",
    "ix_event_user_id_generated_message_id",
)
HEAD_EVENT_INDEXES = {
    "sqlite": {
        **{k: v for k, v in _HEAD_EVENT_INDEXES.items() if k not in SQLITE_REPLACED_INDEXES},
        "ix_event_day_project_id": [
            "generated / 86400000000",
            "project_id",
            "generated",
            "message_id",
        ],
        "ix_event_day_user_id": ["generated / 86400000000", "user_id", "generated", "message_id"],
    },
    "postgresql": _HEAD_EVENT_INDEXES,
    "mysql": _HEAD_EVENT_INDEXES,
}


def _owner_columns(driver: StorageDriver) -> list[tuple[str | None, str | None]]:
    from annals.storage.sql.driver import SQLDriver

    assert isinstance(driver, SQLDriver)
    with driver.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT project_id, user_id FROM event ORDER BY id"))
        return [(row[0], row[1]) for row in rows]


def _owner_trait_rows(driver: StorageDriver) -> int:
    from annals.storage.sql.driver import SQLDriver

    assert isinstance(driver, SQLDriver)
    with driver.engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT count(*) FROM trait_string WHERE name IN ('project_id', 'user_id')")
        ).scalar()
    return int(found or 0)


TRAIT_TABLE_NAMES = ("trait_string", "trait_integer", "trait_float", "trait_datetime")
#: Per trait table: (rows keyed by a rowid, primary key, secondary indexes).
FIRST_TRAIT_LAYOUT = {
    table: (
        True,
        ["event_id", "name"],
        {f"ix_{table}_name_value_event_id": ["name", "value", "event_id"]},
    )
    for table in TRAIT_TABLE_NAMES
}
HEAD_TRAIT_LAYOUT = {
    # Only SQLite has a choice (0005): WITHOUT ROWID.
    # SQLite: WITHOUT ROWID (0005), the value index led by the event id's bucket (0007).
    "sqlite": {
        table: (
            False,
            ["event_id", "name"],
            {f"ix_{table}_name_bucket_value": ["name", "event_id >> 12", "value", "event_id"]},
        )
        for table in TRAIT_TABLE_NAMES
    },
    "postgresql": FIRST_TRAIT_LAYOUT,
    "mysql": FIRST_TRAIT_LAYOUT,
}


TraitLayout = tuple[bool, list[str], dict[str | None, list[str | None]]]


def _trait_layout(driver: StorageDriver) -> dict[str, TraitLayout]:
    from annals.storage.sql.driver import SQLDriver

    assert isinstance(driver, SQLDriver)
    inspector = sa.inspect(driver.engine)
    found: dict[str, TraitLayout] = {}
    for table in TRAIT_TABLE_NAMES:
        with_rowid = True
        if driver.dialect_name == "sqlite":
            with driver.engine.connect() as conn:
                sql = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
                ).scalar()
            with_rowid = "WITHOUT ROWID" not in str(sql).upper()
        if driver.dialect_name == "sqlite":
            indexes = dict(_sqlite_indexes(driver, table))
        else:
            indexes = {ix["name"]: list(ix["column_names"]) for ix in inspector.get_indexes(table)}
        primary = inspector.get_pk_constraint(table)["constrained_columns"]
        found[table] = (with_rowid, primary, indexes)
    return found


def _trait_foreign_keys(driver: StorageDriver) -> dict[str, tuple[str, str | None]]:
    """Trait table -> (referred table, ON DELETE) of its foreign keys."""
    from annals.storage.sql.driver import SQLDriver

    assert isinstance(driver, SQLDriver)
    inspector = sa.inspect(driver.engine)
    found: dict[str, tuple[str, str | None]] = {}
    for table in TRAIT_TABLE_NAMES:
        for fk in inspector.get_foreign_keys(table):
            ondelete = (fk.get("options") or {}).get("ondelete")
            found[table] = (fk["referred_table"], ondelete.upper() if ondelete else None)
    return found


def _owner_statistics(driver: StorageDriver) -> bool:
    """Whether PostgreSQL's extended statistics on (project_id, user_id) exist."""
    from annals.storage.sql.driver import SQLDriver

    assert isinstance(driver, SQLDriver)
    if driver.dialect_name != "postgresql":
        return False
    with driver.engine.connect() as conn:
        found = conn.exec_driver_sql(
            # In this test's own schema: other tests' schemas share the database.
            "SELECT count(*) FROM pg_statistic_ext WHERE stxname = 'event_owner_dependencies' "
            "AND stxnamespace = current_schema()::regnamespace"
        ).scalar()
    return found == 1


def _event_indexes(driver: StorageDriver, every: bool = False) -> dict[str, list[str]]:
    """The event table's secondary indexes by name (not the unique message_id constraint,
    nor, before 0009, the index InnoDB made for the event type key, unless ``every``)."""
    from annals.storage.sql.driver import SQLDriver

    assert isinstance(driver, SQLDriver)
    if driver.dialect_name == "sqlite":
        return {
            str(name): [str(c) for c in columns]
            for name, columns in _sqlite_indexes(driver, "event").items()
        }
    found = sa.inspect(driver.engine).get_indexes("event")
    return {
        str(ix["name"]): [str(c) for c in ix["column_names"]]
        for ix in found
        if every or (not ix.get("unique") and ix["name"] != EVENT_TYPE_KEY)
    }


def _sqlite_indexes(driver: StorageDriver, table: str) -> dict[str | None, list[str | None]]:
    """SQLite: a table's declared indexes (not the automatic ones of its constraints) from
    their definition; SQLAlchemy does not reflect expression indexes."""
    from annals.storage.sql.driver import SQLDriver

    assert isinstance(driver, SQLDriver)
    with driver.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = ? AND sql IS NOT NULL",
            (table,),
        ).all()
    return {
        name: [part.strip() for part in sql[sql.index("(") + 1 : sql.rindex(")")].split(",")]
        for name, sql in rows
    }


def _head(driver: StorageDriver) -> str:
    from alembic.script import ScriptDirectory

    from annals.storage.sql.driver import SQLDriver

    assert isinstance(driver, SQLDriver)
    with driver.engine.connect() as conn:
        head = ScriptDirectory.from_config(driver._alembic_config(conn)).get_current_head()
    assert head is not None
    return head


@pytest.mark.slow
@pytest.mark.backends("postgresql", "mysql")
def test_dbsync_while_the_api_serves(
    driver: StorageDriver, live_server: Any, conf_factory: Any
) -> None:
    """dbsync on a live database: requests keep succeeding, dbsync finds nothing to do."""
    import subprocess
    import sys
    import threading

    import httpx

    from tests.conftest import ADMIN

    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=live_server.url, timeout=10) as http:
            n = 0
            while not stop.is_set():
                doc = {
                    "message_id": f"sync-{n}",
                    "event_type": "t",
                    "generated": "2024-01-01T00:00:00",
                }
                statuses.append(http.post("/v2/events", json=doc, headers=ADMIN).status_code)
                statuses.append(http.get("/v2/events", headers=ADMIN).status_code)
                n += 1

    thread = threading.Thread(target=load)
    thread.start()
    try:
        conf = conf_factory({"database": {"connection": driver.url}})
        for _ in range(2):
            result = subprocess.run(
                [sys.executable, "-m", "annals", "dbsync", "--config-file", str(conf)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, result.stderr
    finally:
        stop.set()
        thread.join()
    assert statuses and set(statuses) <= {200, 201}
