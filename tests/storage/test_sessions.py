"""Settings every connection of the SQL driver gets on its engine (SQLite's are in
test_write_path: WAL, durable commits)."""

from __future__ import annotations

import pytest

from annals.storage.base import StorageDriver
from annals.storage.sql.driver import SQLDriver

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
