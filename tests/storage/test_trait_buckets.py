"""Trait filters over a store whose event ids span several buckets, on every engine.

SQLite reads trait matches from value indexes led by the event id's bucket of 4,096 ids
(migration 0007), one bucket after the other. Here 9,000 events span three buckets; every
filter, selective (read from the index) or broad (checked per event), must find exactly
what the same filter finds in Python. On SQLite the plan of a selective filter is checked
too: the bucket index, sought once per bucket, read once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from annals.models import Event, Trait, TraitType, TraitValue
from annals.query import EventQuery, Op, Scope, TraitFilter
from annals.storage.base import StorageDriver
from annals.storage.sql import tables as t
from annals.storage.sql.driver import SQLDriver

pytestmark = pytest.mark.db

COUNT = 9_000
T0 = dt.datetime(2024, 6, 1)


def _event(n: int) -> Event:
    return Event(
        f"m-{n:05d}",
        "t.e" if n % 2 else "t.o",
        T0 + dt.timedelta(seconds=n),
        (
            Trait("uid", TraitType.STRING, f"i-{n:05d}"),
            Trait("grp", TraitType.STRING, f"g{n % 7}"),
            Trait("size", TraitType.INTEGER, n % 13),
            Trait("ratio", TraitType.FLOAT, n / 8),
            Trait("at", TraitType.DATETIME, T0 + dt.timedelta(minutes=n % 100)),
        ),
        {},
    )


EVENTS = [_event(n) for n in range(COUNT)]


@pytest.fixture
def stored(driver: StorageDriver) -> StorageDriver:
    for start in range(0, COUNT, 1000):
        assert driver.record_events(EVENTS[start : start + 1000]).stored == 1000
    return driver


def _value(event: Event, name: str) -> TraitValue:
    return next(tr.value for tr in event.traits if tr.name == name)


COMPARE: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: lambda a, b: a == b,
    Op.NE: lambda a, b: a != b,
    Op.LT: lambda a, b: a < b,
    Op.LE: lambda a, b: a <= b,
    Op.GT: lambda a, b: a > b,
    Op.GE: lambda a, b: a >= b,
}
FILTERS = [
    TraitFilter("uid", TraitType.STRING, Op.EQ, "i-00007"),
    TraitFilter("uid", TraitType.STRING, Op.EQ, "i-04096"),
    TraitFilter("uid", TraitType.STRING, Op.EQ, "i-08999"),
    TraitFilter("uid", TraitType.STRING, Op.EQ, "absent"),
    TraitFilter("uid", TraitType.STRING, Op.GE, "i-08990"),
    TraitFilter("uid", TraitType.STRING, Op.LT, "i-00020"),
    TraitFilter("grp", TraitType.STRING, Op.EQ, "g3"),
    TraitFilter("size", TraitType.INTEGER, Op.EQ, 12),
    TraitFilter("size", TraitType.INTEGER, Op.GT, 11),
    TraitFilter("ratio", TraitType.FLOAT, Op.LE, 2.0),
    TraitFilter("ratio", TraitType.FLOAT, Op.GT, 1124.5),
    TraitFilter("at", TraitType.DATETIME, Op.EQ, T0 + dt.timedelta(minutes=42)),
]


@pytest.mark.parametrize("limit", [5, 10_000])
def test_filters_across_buckets(stored: StorageDriver, limit: int) -> None:
    for flt in FILTERS:
        for event_type in (None, "t.e"):
            query = EventQuery(traits=(flt,), event_type=event_type, limit=limit)
            expected = [
                e.message_id
                for e in EVENTS
                if COMPARE[flt.op](_value(e, flt.name), flt.value)
                and (event_type is None or e.event_type == event_type)
            ][:limit]
            found = [e.message_id for e in stored.get_events(query)]
            assert found == expected, (flt, event_type, limit)


def test_two_filters_across_buckets(stored: StorageDriver) -> None:
    query = EventQuery(
        traits=(
            TraitFilter("grp", TraitType.STRING, Op.EQ, "g2"),
            TraitFilter("size", TraitType.INTEGER, Op.EQ, 5),
        ),
        limit=10_000,
    )
    expected = [e.message_id for e in EVENTS if _value(e, "grp") == "g2" and _value(e, "size") == 5]
    assert [e.message_id for e in stored.get_events(query)] == expected
    values = sorted(str(tr.value) for tr in stored.get_traits("t.e", "uid", Scope.everything()))
    assert values == sorted(f"i-{n:05d}" for n in range(1, COUNT, 2))


@pytest.mark.backends("sqlite")
def test_sqlite_selective_filter_seeks_each_bucket(stored: StorageDriver) -> None:
    assert isinstance(stored, SQLDriver)
    statements: list[tuple[str, Any]] = []

    def capture(_c: object, _cur: object, statement: str, params: Any, *_: object) -> None:
        if "_buckets" in statement:
            statements.append((statement, params))

    query = EventQuery(traits=(FILTERS[1],), limit=5)
    sa.event.listen(stored.engine, "before_cursor_execute", capture)
    try:
        assert [e.message_id for e in stored.get_events(query)] == ["m-04096"]
    finally:
        sa.event.remove(stored.engine, "before_cursor_execute", capture)
    # One read of the index (the matches, few enough to be named in the page statement).
    ((statement, params),) = statements
    with stored.engine.connect() as conn:
        plan = [
            str(row[3]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
        ]
    index = t.SQLITE_BUCKET_INDEXES["trait_string"]
    assert any(
        f"USING COVERING INDEX {index} (name=? AND <expr>=? AND value=?)" in line for line in plan
    ), plan
