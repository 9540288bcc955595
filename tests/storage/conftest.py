"""Fixtures of the SQL driver's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from annals.storage import get_driver
from annals.storage.sql.driver import SQLDriver


@pytest.fixture
def sql_driver(database_url: str) -> Iterator[SQLDriver]:
    """The SQL driver on the test's fresh database, schema created."""
    drv = get_driver(database_url)
    assert isinstance(drv, SQLDriver)
    drv.upgrade()
    try:
        yield drv
    finally:
        drv.close()
