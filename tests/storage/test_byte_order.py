"""Strings compare in byte order on every engine, whatever locale the database was made with.

String trait ranges (``q.op=lt`` on a string trait) and the ``message_id`` order of a listing
must give the same answer on SQLite (``BINARY``), MySQL/MariaDB (``utf8mb4_bin``) and
PostgreSQL, whose string columns are ``COLLATE "C"`` since migration 0010. Under a
linguistic collation (PostgreSQL's ``en-US``) ``"B"`` sorts after ``"a"``; in byte order
before it. The PostgreSQL tests below make a database whose default collation is ICU's
``en-US``, so that the schema, not the server's locale, is what they check.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from annals.models import Event, Trait, TraitType
from annals.query import EventQuery, Op, SortKey, TraitFilter
from annals.storage import get_driver
from annals.storage.sql.driver import SQLDriver, normalise_url
from tests.conftest import BACKENDS, IN_CI, PG_URL

pytestmark = pytest.mark.db

#: Byte order: uppercase ASCII, then lowercase ASCII, then anything beyond ASCII.
VALUES = ["B", "Z", "a", "b", "é", "Ω"]
WHEN = dt.datetime(2024, 5, 1, 12, 0, 0)


def _events() -> list[Event]:
    # One instant for all: the listing order is the message_id order alone.
    return [
        Event(
            message_id=value,
            event_type="order.test",
            generated=WHEN,
            traits=[Trait("word", TraitType.STRING, value)],
            raw={},
        )
        for value in reversed(VALUES)
    ]


def _check_byte_order(driver: SQLDriver) -> None:
    driver.record_events(_events())

    def words(op: Op, value: str) -> list[str]:
        query = EventQuery(traits=(TraitFilter("word", TraitType.STRING, op, value),))
        return [ev.message_id for ev in driver.get_events(query)]

    assert words(Op.LT, "a") == ["B", "Z"]
    assert words(Op.GE, "a") == ["a", "b", "é", "Ω"]
    assert words(Op.GT, "b") == ["é", "Ω"]
    assert words(Op.LE, "Z") == ["B", "Z"]
    listed = [ev.message_id for ev in driver.get_events(EventQuery())]
    assert listed == VALUES
    descending = EventQuery(sort=(SortKey("generated", descending=True),))
    assert [ev.message_id for ev in driver.get_events(descending)] == VALUES[::-1]
    # Keyset pages continue in the same order.
    first = driver.get_events(EventQuery(limit=2))
    after = driver.get_events(EventQuery(limit=3, marker=first[-1].message_id))
    assert [ev.message_id for ev in first + after] == VALUES[:5]


def test_strings_compare_in_byte_order(sql_driver: SQLDriver) -> None:
    _check_byte_order(sql_driver)


@pytest.fixture
def en_us_database() -> Iterator[str]:
    """A PostgreSQL database whose default collation is ICU's en-US; yields its URL."""
    if "postgresql" not in BACKENDS:
        pytest.skip("the PostgreSQL backend is not selected (ANNALS_TEST_BACKENDS)")
    admin = sa.create_engine(
        normalise_url(PG_URL), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    name = f"annals_t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            )
    except sa.exc.DBAPIError as exc:
        if IN_CI:
            pytest.fail(f"cannot make an ICU en-US database: {exc.orig}")
        pytest.skip(f"cannot make an ICU en-US database: {exc.orig}")
    try:
        yield sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


def _collations(driver: SQLDriver) -> dict[str, str | None]:
    with driver.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT table_name || '.' || column_name, collation_name "
                "FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND data_type = 'character varying'"
            )
        )
        return {name: collation for name, collation in rows}


STRING_COLUMNS = {
    "event.message_id",
    "event.project_id",
    "event.user_id",
    "event_type.name",
    "trait_type.name",
    "trait_string.name",
    "trait_string.value",
    "trait_integer.name",
    "trait_float.name",
    "trait_datetime.name",
}


def test_postgresql_en_us_database_orders_bytes(en_us_database: str) -> None:
    driver = get_driver(en_us_database)
    assert isinstance(driver, SQLDriver)
    try:
        with driver.engine.connect() as conn:  # the database's own order is not byte order
            assert conn.execute(sa.text("SELECT 'B' < 'a'")).scalar() is False
        driver.upgrade()
        collations = _collations(driver)
        assert {c for c in collations if c != "alembic_version.version_num"} == STRING_COLUMNS
        assert {collations[c] for c in STRING_COLUMNS} == {"C"}
        _check_byte_order(driver)
    finally:
        driver.close()


def test_postgresql_upgrade_to_byte_order_keeps_rows(en_us_database: str) -> None:
    """Events stored at revision 0009 under en-US, upgraded: kept, then listed in byte order;
    the downgrade gives the columns the database's collation back."""
    from alembic import command

    driver = get_driver(en_us_database)
    assert isinstance(driver, SQLDriver)
    try:
        with driver.engine.begin() as conn:
            command.upgrade(driver._alembic_config(conn), "0009")
        driver.record_events(_events())
        assert set(_collations(driver).values()) == {None}
        query = EventQuery(traits=(TraitFilter("word", TraitType.STRING, Op.LT, "a"),))
        assert driver.get_events(query) == []  # en-US: nothing here sorts below "a"
        driver.upgrade()
        assert [ev.message_id for ev in driver.get_events(query)] == ["B", "Z"]
        assert [ev.message_id for ev in driver.get_events(EventQuery())] == VALUES
        with driver.engine.begin() as conn:
            command.downgrade(driver._alembic_config(conn), "0009")
        assert set(_collations(driver).values()) == {None}
        assert len(driver.get_events(EventQuery())) == len(VALUES)
    finally:
        driver.close()
