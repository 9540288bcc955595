"""Expiry: old events go, recent ones stay, metadata follows, writers and readers go on."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from annals import timeutil
from annals.models import Event, Trait, TraitDescription, TraitType
from annals.query import EventQuery, Scope
from annals.storage.base import StorageDriver
from tests.test_cli import run

pytestmark = pytest.mark.db
ALL = Scope.everything()
NOW = dt.datetime(2026, 11, 27, 12, 0, 0)


def event(
    n: int, age: dt.timedelta, event_type: str = "old.type", traits: tuple[Trait, ...] = ()
) -> Event:
    return Event(f"e-{n:06d}", event_type, NOW - age, traits)


def test_expiry_removes_exactly_the_old_events(driver: StorageDriver) -> None:
    ttl = 3600
    old = [event(n, dt.timedelta(seconds=ttl + 1 + n)) for n in range(25)]
    boundary = event(100, dt.timedelta(seconds=ttl))  # exactly at the cutoff: kept
    young = [event(200 + n, dt.timedelta(seconds=n)) for n in range(5)]
    driver.record_events([*old, boundary, *young])
    result = driver.clear_expired_data(ttl, batch_size=10, now=NOW)
    assert result.deleted == 25
    assert result.batches == 3
    assert result.cutoff == NOW - dt.timedelta(seconds=ttl)
    left = {e.message_id for e in driver.get_events(EventQuery(limit=1000))}
    assert left == {boundary.message_id} | {e.message_id for e in young}
    again = driver.clear_expired_data(ttl, batch_size=10, now=NOW)
    assert (again.deleted, again.batches) == (0, 0)


def test_expired_events_leave_no_trait_rows(driver: StorageDriver) -> None:
    """Trait rows have no foreign key (migration 0003): the expirer deletes them itself."""
    import sqlalchemy as sa

    day = dt.timedelta(days=1)
    every_type = (
        Trait("s", TraitType.STRING, "x"),
        Trait("i", TraitType.INTEGER, 1),
        Trait("f", TraitType.FLOAT, 1.5),
        Trait("d", TraitType.DATETIME, NOW),
    )
    driver.record_events(
        [event(n, 10 * day, traits=every_type) for n in range(30)]
        + [event(100, dt.timedelta(0), traits=every_type)]
    )
    assert driver.clear_expired_data(5 * 86400, batch_size=7, now=NOW).deleted == 30
    engine: sa.Engine = driver.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        for table in ("trait_string", "trait_integer", "trait_float", "trait_datetime"):
            left = conn.execute(sa.text(f"SELECT event_id FROM {table}")).scalars().all()
            assert len(left) == 1, table
    [kept] = driver.get_events(EventQuery())
    assert kept.message_id == "e-000100" and len(kept.traits) == 4


def test_disabled_ttl_keeps_everything(driver: StorageDriver) -> None:
    driver.record_events([event(1, dt.timedelta(days=3650))])
    result = driver.clear_expired_data(0)
    assert result.cutoff is None and result.deleted == 0
    assert len(driver.get_events(EventQuery())) == 1


def test_metadata_without_events_is_pruned(driver: StorageDriver) -> None:
    day = dt.timedelta(days=1)
    driver.record_events(
        [
            event(1, 10 * day, "gone.type", (Trait("a", TraitType.STRING, "x"),)),
            event(
                2,
                10 * day,
                "kept.type",
                (Trait("old_only", TraitType.INTEGER, 1), Trait("both", TraitType.STRING, "y")),
            ),
            event(3, dt.timedelta(0), "kept.type", (Trait("both", TraitType.STRING, "z"),)),
        ]
    )
    result = driver.clear_expired_data(5 * 86400, now=NOW)
    assert result.deleted == 2
    assert result.removed_event_types == ("gone.type",)
    assert result.removed_trait_types == ("kept.type/old_only:integer",)
    assert driver.get_event_types(ALL) == ["kept.type"]
    assert driver.get_trait_types("kept.type", ALL) == [TraitDescription("both", TraitType.STRING)]
    assert driver.get_trait_types("gone.type", ALL) == []
    # the removed type can come back (the writer's cached type id is stale now)
    driver.record_events([event(4, dt.timedelta(0), "gone.type")])
    assert driver.get_event_types(ALL) == ["gone.type", "kept.type"]


def test_expiry_while_writers_and_readers_run(driver: StorageDriver) -> None:
    """Nothing newer than the TTL is lost and nothing older survives, with concurrent load."""
    ttl = 86400
    now = timeutil.utcnow()
    old = [
        Event(
            f"old-{n}",
            f"type.{n % 3}",
            now - dt.timedelta(days=2, seconds=n),
            (Trait("n", TraitType.INTEGER, n),),
        )
        for n in range(3000)
    ]
    for start in range(0, len(old), 500):
        driver.record_events(old[start : start + 500])
    stop = threading.Event()
    written: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        n = 0
        try:
            while not stop.is_set():
                batch = [
                    Event(
                        f"new-{n + i}",
                        f"type.{(n + i) % 4}",
                        timeutil.utcnow(),
                        (Trait("n", TraitType.INTEGER, n + i),),
                    )
                    for i in range(20)
                ]
                driver.record_events(batch)
                written.extend(e.message_id for e in batch)
                n += 20
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                driver.get_events(EventQuery(limit=50))
                driver.get_event_types(ALL)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    try:
        result = driver.clear_expired_data(ttl, batch_size=250)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert result.deleted == 3000
    left = {e.message_id for e in driver.get_events(EventQuery(limit=100_000))}
    assert left == set(written)
    assert set(driver.get_event_types(ALL)) == {f"type.{k}" for k in range(4)}
    for k in range(4):
        assert driver.get_trait_types(f"type.{k}", ALL) == [
            TraitDescription("n", TraitType.INTEGER)
        ]


def test_expirer_command(driver: StorageDriver, conf_factory: Callable[..., Path]) -> None:
    driver.record_events(
        [event(1, dt.timedelta(days=400)), Event("fresh", "old.type", timeutil.utcnow())]
    )
    conf = conf_factory(
        {
            "database": {
                "connection": driver.url,
                "event_time_to_live": 86400,
                "events_delete_batch_size": 100,
            }
        }
    )
    result = run("expirer", "--config-file", str(conf))
    assert result.returncode == 0, result.stderr
    assert "expired 1 events generated before" in result.stderr
    assert [e.message_id for e in driver.get_events(EventQuery())] == ["fresh"]
    keep = conf_factory({"database": {"connection": driver.url}})
    result = run("expirer", "--config-file", str(keep))
    assert "kept forever" in result.stderr
