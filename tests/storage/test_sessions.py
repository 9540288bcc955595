"""Settings every connection of the SQL driver gets on its engine (SQLite's are in
test_write_path: WAL, durable commits)."""

from __future__ import annotations

import datetime as dt
import socket
import time
from typing import Any

import pytest
import sqlalchemy as sa

from annals.errors import StorageUnavailable
from annals.models import Event, Trait, TraitType
from annals.query import EventQuery, Scope
from annals.storage.base import StorageDriver
from annals.storage.sql import driver as driver_module
from annals.storage.sql.driver import ConnectionLost, SQLDriver

pytestmark = pytest.mark.db


@pytest.mark.backends("postgresql")
def test_postgresql_sessions_plan_no_parallel_workers(driver: StorageDriver) -> None:
    """Pages are short index walks: starting parallel workers cost more than the walk."""
    assert isinstance(driver, SQLDriver)
    for _ in range(2):  # a new connection, then one back from the pool
        with driver.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW max_parallel_workers_per_gather").scalar() == "0"


@pytest.mark.backends("mysql")
def test_mariadb_sessions_keep_exists_correlated(driver: StorageDriver) -> None:
    assert isinstance(driver, SQLDriver)
    with driver.engine.connect() as conn:
        switches = str(conn.exec_driver_sql("SELECT @@optimizer_switch").scalar())
    assert "exists_to_in=off" in switches.split(",")


def _record_one(driver: SQLDriver) -> None:
    driver.record_events(
        [
            Event(
                message_id="m-1",
                event_type="t",
                generated=dt.datetime(2024, 5, 1, 12, 0),
                traits=(Trait("host", TraitType.STRING, "h1"),),
                raw={},
            )
        ]
    )


def _pings(driver: SQLDriver, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The pings the driver's pool sends from now on."""
    pings: list[object] = []
    real = driver.engine.dialect.do_ping

    def counting(dbapi_conn: Any) -> bool:
        pings.append(dbapi_conn)
        return real(dbapi_conn)

    monkeypatch.setattr(driver.engine.dialect, "do_ping", counting)
    return pings


@pytest.mark.backends("postgresql", "mysql")
def test_a_connection_used_a_moment_ago_is_not_pinged(
    sql_driver: SQLDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_one(sql_driver)
    pings = _pings(sql_driver, monkeypatch)
    for _ in range(3):
        assert [e.message_id for e in sql_driver.get_events(EventQuery(limit=10))] == ["m-1"]
    assert pings == []
    # Idle for longer than PING_IF_IDLE_FOR: checked before use.
    pool: Any = sql_driver.engine.pool
    records = [record for record in pool._pool.queue if "annals_idle_since" in record.info]
    assert records
    for record in records:
        record.info["annals_idle_since"] -= driver_module.PING_IF_IDLE_FOR
    assert sql_driver.get_event_types(Scope.everything()) == ["t"]
    assert len(pings) == 1


def _end_pooled_sessions(sql_driver: SQLDriver, backend: str) -> int:
    """End, from another connection, the server session of every connection in the pool
    (used a moment ago, so not pinged before its next use); how many there were."""
    sessions = []
    pool: Any = sql_driver.engine.pool
    pooled = [sql_driver.engine.raw_connection() for _ in range(pool.checkedin())]
    for pooled_conn in pooled:
        cursor = pooled_conn.cursor()
        cursor.execute(
            "SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()"
        )
        row = cursor.fetchone()
        assert row is not None
        sessions.append(int(row[0]))
        cursor.close()
        pooled_conn.rollback()
    for pooled_conn in pooled:
        pooled_conn.close()  # back to the pool
    killer = SQLDriver(sql_driver.url)
    try:
        with killer.engine.connect() as conn:
            for session in sessions:
                if backend == "postgresql":
                    conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": session})
                else:
                    conn.exec_driver_sql(f"KILL CONNECTION {session}")
    finally:
        killer.close()
    time.sleep(0.2)  # the server has closed the sockets
    return len(sessions)


@pytest.mark.backends("postgresql", "mysql")
def test_a_read_on_a_connection_the_server_ended_is_run_again(
    sql_driver: SQLDriver, backend: str
) -> None:
    _record_one(sql_driver)
    assert sql_driver.get_event_types(Scope.everything()) == ["t"]
    assert _end_pooled_sessions(sql_driver, backend) >= 1
    # The first statement fails on the dead connection; the read runs again on a new one.
    assert [e.message_id for e in sql_driver.get_events(EventQuery(limit=10))] == ["m-1"]
    assert _end_pooled_sessions(sql_driver, backend) >= 1
    assert sql_driver.get_event_types(Scope.everything()) == ["t"]
    assert _end_pooled_sessions(sql_driver, backend) >= 1
    assert [d.name for d in sql_driver.get_trait_types("t", Scope.everything())] == ["host"]


@pytest.mark.backends("postgresql", "mysql")
def test_a_write_on_a_connection_the_server_ended_is_run_again(
    sql_driver: SQLDriver, backend: str
) -> None:
    assert sql_driver.get_event_types(Scope.everything()) == []
    assert _end_pooled_sessions(sql_driver, backend) >= 1
    _record_one(sql_driver)
    assert [e.message_id for e in sql_driver.get_events(EventQuery(limit=10))] == ["m-1"]


@pytest.mark.backends("postgresql", "mysql")
def test_a_database_that_cannot_be_reached_is_an_outage(database_url: str) -> None:
    """No connection at all is not a lost one: a 503 at once (no second try)."""
    url = sa.make_url(database_url).set(host="127.0.0.1", port=closed_port())
    unreachable = SQLDriver(url.render_as_string(hide_password=False))
    try:
        for read in (
            lambda: unreachable.get_events(EventQuery(limit=10)),
            lambda: unreachable.get_event_types(Scope.everything()),
        ):
            with pytest.raises(StorageUnavailable) as caught:
                read()
            assert not isinstance(caught.value, ConnectionLost)
        with pytest.raises(StorageUnavailable) as caught:
            _record_one(unreachable)
        assert not isinstance(caught.value, ConnectionLost)
    finally:
        unreachable.close()


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
