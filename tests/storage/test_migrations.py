"""The Alembic migrations build exactly the schema the driver's tables describe."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from annals.storage.base import StorageDriver
from annals.storage.sql.tables import metadata

pytestmark = pytest.mark.db


def test_models_and_migrations_agree(driver: StorageDriver) -> None:
    engine: sa.Engine = driver.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_keeps_data(driver: StorageDriver) -> None:
    from annals.ingest.events import parse_event

    driver.record_events([parse_event({"message_id": "keep", "event_type": "t",
                                       "generated": "2024-01-01T00:00:00"})])
    driver.upgrade()
    driver.upgrade()
    assert driver.schema_is_current()
    from annals.query import EventQuery

    assert [e.message_id for e in driver.get_events(EventQuery())] == ["keep"]
