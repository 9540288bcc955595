"""Database errors told apart by the engine's own error code (annals.storage.sql.dberrors).

Every error here is real: raised by a real SQLite, PostgreSQL or MariaDB database, then
classified, and mapped by the driver to the storage error the API and the consumer act on
(a conflict is retried, a refusal waits for an operator, an outage for the database).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from annals.errors import StorageError, StorageUnavailable
from annals.models import Event, Trait, TraitType
from annals.query import EventQuery
from annals.storage import get_driver
from annals.storage.sql.dberrors import Failure, classify
from annals.storage.sql.driver import SQLDriver, WriteConflict

pytestmark = pytest.mark.db

T0 = dt.datetime(2024, 5, 1, 12, 0, 0)


def event(n: int) -> Event:
    return Event(
        message_id=f"err-{n}",
        event_type="compute.instance.update",
        generated=T0 + dt.timedelta(seconds=n),
        traits=(Trait("project_id", TraitType.STRING, "p1"), Trait("n", TraitType.INTEGER, n)),
        raw={"n": n},
    )


@pytest.fixture(autouse=True)
def one_event(request: pytest.FixtureRequest) -> None:
    """The database tests start with one stored event (err-1)."""
    if "sql_driver" in request.fixturenames:
        request.getfixturevalue("sql_driver").record_events([event(1)])


def dbapi_error(drv: SQLDriver, work: Callable[[Any], object]) -> Exception:
    """The DB-API exception ``work`` raises on a raw connection of ``drv``'s engine."""
    raw = drv.engine.raw_connection()
    try:
        with pytest.raises(drv.engine.dialect.loaded_dbapi.Error) as caught:
            work(raw)
        return caught.value
    finally:
        raw.invalidate()  # (a connection that saw this error goes no further)


def mapped(drv: SQLDriver, orig: Exception) -> Exception:
    """What the driver makes of ``orig``, raised in one of its transactions."""
    wrapped = sa_exc.DBAPIError.instance("-", None, orig, drv.engine.dialect.loaded_dbapi.Error)
    assert isinstance(wrapped, sa_exc.DBAPIError)
    return SQLDriver._storage_error(wrapped)


def run(raw: Any, *statements: str) -> None:
    cursor = raw.cursor()
    for statement in statements:
        cursor.execute(statement)


def test_a_syntax_error_is_a_plain_database_error(sql_driver: SQLDriver) -> None:
    orig = dbapi_error(sql_driver, lambda raw: run(raw, "SELEC 1"))
    assert classify(orig) is Failure.OTHER
    error = mapped(sql_driver, orig)
    assert type(error) is StorageError and error.message.startswith("Database error: ")


def test_a_read_only_database_refuses_writes(
    sql_driver: SQLDriver, database_url: str, backend: str, tmp_path: Path
) -> None:
    """The same database opened read-only: writes are refused (not retried, not an
    outage), with the engine's own words; reads go on."""
    if backend == "sqlite":
        path = sa.make_url(database_url).database
        read_only = get_driver(f"sqlite:///file:{path}?mode=ro&uri=true")
    else:
        read_only = get_driver(database_url)
        setting = {
            "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            "mysql": "SET SESSION TRANSACTION READ ONLY",
        }[backend]

        @sa.event.listens_for(read_only.engine, "connect")  # type: ignore[attr-defined]
        def _read_only(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(setting)
            cursor.close()

    try:
        with pytest.raises(StorageError) as refused:
            read_only.record_events([event(2)])
        assert type(refused.value) is StorageError
        assert refused.value.message.startswith("Database refused the write: ")
        words = {
            "sqlite": "readonly database",
            "postgresql": "read-only transaction",
            "mysql": "READ ONLY transaction",
        }
        assert words[backend] in refused.value.message
        got = read_only.get_events(EventQuery())
        assert [e.message_id for e in got] == ["err-1"]
    finally:
        read_only.close()
    assert [e.message_id for e in sql_driver.get_events(EventQuery())] == ["err-1"]


def test_a_lock_held_by_another_transaction_is_a_conflict(
    sql_driver: SQLDriver, backend: str
) -> None:
    holder = sql_driver.engine.raw_connection()
    try:
        holding = {
            "sqlite": ["BEGIN IMMEDIATE"],
            "postgresql": ["BEGIN", "LOCK TABLE event IN ACCESS EXCLUSIVE MODE"],
            "mysql": ["BEGIN", "SELECT id FROM event FOR UPDATE"],
        }[backend]
        if backend == "sqlite":
            holder.driver_connection.isolation_level = None  # type: ignore[union-attr]
        run(holder, *holding)
        waiting = {
            "sqlite": ["PRAGMA busy_timeout=0", "BEGIN IMMEDIATE"],
            "postgresql": ["SET lock_timeout = '50ms'", "SELECT count(*) FROM event"],
            "mysql": [
                "SET SESSION innodb_lock_wait_timeout = 1",
                "BEGIN",
                "UPDATE event SET raw = raw",
            ],
        }[backend]
        orig = dbapi_error(sql_driver, lambda raw: run(raw, *waiting))
    finally:
        holder.invalidate()
    assert classify(orig) is Failure.CONFLICT, orig
    assert isinstance(mapped(sql_driver, orig), WriteConflict)


@pytest.mark.backends("postgresql", "mysql")
def test_a_connection_ended_by_the_server_is_an_outage(sql_driver: SQLDriver, backend: str) -> None:
    victim = sql_driver.engine.raw_connection()
    try:
        cursor = victim.cursor()
        cursor.execute("SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT 1")
        if backend == "mysql":
            cursor.execute("SELECT CONNECTION_ID()")
        row = cursor.fetchone()
        assert row is not None
        session = row[0]
        with sql_driver.engine.connect() as killer:
            if backend == "postgresql":
                killer.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": session})
            else:
                killer.exec_driver_sql(f"KILL CONNECTION {int(session)}")
        with pytest.raises(sql_driver.engine.dialect.loaded_dbapi.Error) as caught:
            for _ in range(50):  # until the client has read the server's goodbye
                cursor = victim.cursor()
                cursor.execute("SELECT 1")
    finally:
        victim.invalidate()
    assert classify(caught.value) in (Failure.UNAVAILABLE, None), caught.value
    assert type(mapped(sql_driver, caught.value)) is StorageUnavailable


@pytest.mark.backends("sqlite")
def test_sqlite_without_its_directory_is_an_outage(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError) as caught:
        sqlite3.connect(tmp_path / "gone" / "annals.sqlite")
    assert classify(caught.value) is Failure.UNAVAILABLE


def test_client_library_errors_have_no_code() -> None:
    assert classify(RuntimeError("the connection is closed")) is None
    assert classify(sqlite3.ProgrammingError("Cannot operate on a closed database.")) is None


def test_codes_not_text_decide() -> None:
    """A refusal's words in an error of another kind do not make it a refusal."""

    class PgError(Exception):
        sqlstate = "22P02"  # invalid_text_representation, quoting the value

    assert classify(PgError('invalid input syntax for type bigint: "disk full"')) is (Failure.OTHER)
