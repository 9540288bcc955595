"""Project- and user-scoped listings over many days, on every engine.

SQLite reads them from indexes led by the event's day (migration 0006): one day after the
other, within the days the store holds. These tests spread events over days, across the
epoch (negative ``generated``: SQLite's integer division truncates towards zero, so day 0
spans two calendar days) and on exact day boundaries, and compare every page, in both
directions, with and without markers and time windows, to the same listing sorted in
Python. On SQLite they also check the plan: the day index, in order, no sort.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from annals.models import Event, Trait, TraitType
from annals.query import EventQuery, Op, Scope, ScopeKind, SortKey, TraitFilter
from annals.storage.base import StorageDriver
from annals.storage.sql import tables as t
from annals.storage.sql.driver import SQLDriver

pytestmark = pytest.mark.db

EPOCH = dt.datetime(1970, 1, 1)
DAY = dt.timedelta(days=1)
#: Instants around the epoch and on day boundaries, then some days later and much later.
INSTANTS = [
    EPOCH - 3 * DAY,
    EPOCH - DAY - dt.timedelta(microseconds=1),
    EPOCH - DAY,
    EPOCH - dt.timedelta(hours=5),
    EPOCH - dt.timedelta(microseconds=1),
    EPOCH,
    EPOCH + dt.timedelta(hours=5),
    EPOCH + DAY - dt.timedelta(microseconds=1),
    EPOCH + DAY,
    EPOCH + 2 * DAY + dt.timedelta(hours=23, minutes=59, seconds=59),
    dt.datetime(2024, 2, 28, 23, 59, 59, 999999),
    dt.datetime(2024, 2, 29, 0, 0, 0),
    dt.datetime(2024, 3, 1, 12, 0, 0),
    dt.datetime(2024, 3, 9, 0, 0, 0),
]
OWNERS = [("p1", "u1"), ("p1", "u2"), ("p2", "u3"), (None, None), ("p1", None)]


def _events() -> list[Event]:
    events = []
    n = 0
    for when in INSTANTS:
        # Several events per instant (ties on generated: message_id decides) and owner.
        for project, user in OWNERS:
            for _ in range(2):
                traits = []
                if project is not None:
                    traits.append(Trait("project_id", TraitType.STRING, project))
                if user is not None:
                    traits.append(Trait("user_id", TraitType.STRING, user))
                traits.append(Trait("n", TraitType.INTEGER, n))
                events.append(
                    Event(f"m-{(n * 7919) % 1000:03d}-{n}", "t.e", when, tuple(traits), {})
                )
                n += 1
    return events


EVENTS = _events()


def _owner(event: Event, name: str) -> str | None:
    return next((str(tr.value) for tr in event.traits if tr.name == name), None)


def _visible(event: Event, scope: Scope) -> bool:
    project, user = _owner(event, "project_id"), _owner(event, "user_id")
    if scope.kind is ScopeKind.OWNER:
        return project == scope.project_id and user == scope.user_id
    if scope.kind is ScopeKind.ADMIN_PROJECT:
        return project in (scope.project_id, None)
    return True


def _expected(query: EventQuery) -> list[str]:
    found = [e for e in EVENTS if _visible(e, query.scope)]
    for flt in query.traits:
        found = [e for e in found if _owner(e, flt.name) == flt.value]
    if query.start is not None:
        found = [e for e in found if e.generated >= query.start]
    if query.end is not None:
        found = [e for e in found if e.generated <= query.end]
    descending = query.sort[0].descending
    found.sort(key=lambda e: (e.generated, e.message_id), reverse=descending)
    return [e.message_id for e in found]


def _pages(driver: StorageDriver, query: EventQuery) -> list[str]:
    """Every page of ``query``, following markers."""
    seen: list[str] = []
    marker = None
    while True:
        page = driver.get_events(replace(query, marker=marker))
        seen.extend(e.message_id for e in page)
        if len(page) < (query.limit or 0) or not page:
            return seen
        marker = page[-1].message_id


SCOPES = [
    Scope(ScopeKind.OWNER, "p1", "u1"),
    Scope(ScopeKind.OWNER, "p1", "u2"),
    Scope(ScopeKind.OWNER, "p2", "u3"),
    Scope(ScopeKind.OWNER, "p2", "u1"),  # nothing
    Scope(ScopeKind.ADMIN_PROJECT, "p1"),
    Scope(ScopeKind.ADMIN_PROJECT, "p3"),  # only events without a project
]
UP = (SortKey("generated"), SortKey("message_id"))
DOWN = (SortKey("generated", True), SortKey("message_id", True))


@pytest.fixture
def stored(driver: StorageDriver) -> StorageDriver:
    result = driver.record_events(EVENTS)
    assert result.stored == len(EVENTS)
    return driver


@pytest.mark.parametrize("sort", [UP, DOWN], ids=["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 3, 7, 1000])
def test_scoped_pages_in_order_across_days(
    stored: StorageDriver, sort: tuple[SortKey, ...], limit: int
) -> None:
    for scope in SCOPES:
        query = EventQuery(scope=scope, sort=sort, limit=limit)
        assert _pages(stored, query) == _expected(query), scope


@pytest.mark.parametrize("sort", [UP, DOWN], ids=["asc", "desc"])
def test_owner_filters_and_windows_across_days(
    stored: StorageDriver, sort: tuple[SortKey, ...]
) -> None:
    windows = [
        (None, None),
        (EPOCH - DAY, EPOCH),
        (EPOCH - dt.timedelta(microseconds=1), EPOCH + DAY - dt.timedelta(microseconds=1)),
        (EPOCH + DAY, None),
        (None, EPOCH - DAY - dt.timedelta(microseconds=1)),
        (dt.datetime(2024, 2, 29), dt.datetime(2024, 2, 29)),
        (dt.datetime(2030, 1, 1), None),  # after every event
    ]
    filters = [
        (),
        (TraitFilter("user_id", TraitType.STRING, Op.EQ, "u1"),),
        (TraitFilter("project_id", TraitType.STRING, Op.EQ, "p1"),),
        (
            TraitFilter("project_id", TraitType.STRING, Op.EQ, "p1"),
            TraitFilter("user_id", TraitType.STRING, Op.EQ, "u2"),
        ),
    ]
    for start, end in windows:
        for traits in filters:
            for scope in [Scope.everything(), SCOPES[0], SCOPES[4]]:
                query = EventQuery(
                    scope=scope, traits=traits, start=start, end=end, sort=sort, limit=4
                )
                assert _pages(stored, query) == _expected(query), (start, end, traits, scope)


def test_scoped_metadata_reads_across_days(stored: StorageDriver) -> None:
    for scope in SCOPES:
        visible = [e for e in EVENTS if _visible(e, scope)]
        assert stored.get_event_types(scope) == (["t.e"] if visible else [])
        values = sorted(repr(tr.value) for tr in stored.get_traits("t.e", "n", scope))
        assert values == sorted(
            repr(tr.value) for e in visible for tr in e.traits if tr.name == "n"
        )


def test_empty_store_scoped_listing(driver: StorageDriver) -> None:
    assert driver.get_events(EventQuery(scope=SCOPES[0], limit=10)) == []
    assert driver.get_event_types(SCOPES[4]) == []


# --- SQLite: the plan ----------------------------------------------------------------------


def _plans(driver: SQLDriver, query: EventQuery) -> list[list[str]]:
    """EXPLAIN QUERY PLAN of each listing statement ``get_events(query)`` runs."""
    statements: list[tuple[str, Any]] = []

    def capture(_c: object, _cur: object, statement: str, params: Any, *_: object) -> None:
        if "ORDER BY" in statement and "FROM event" in statement:
            statements.append((statement, params))

    sa.event.listen(driver.engine, "before_cursor_execute", capture)
    try:
        driver.get_events(query)
    finally:
        sa.event.remove(driver.engine, "before_cursor_execute", capture)
    plans = []
    with driver.engine.connect() as conn:
        for statement, params in statements:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
            plans.append([str(row[3]) for row in rows])
    return plans


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("sort", [UP, DOWN], ids=["asc", "desc"])
def test_sqlite_reads_owners_from_the_day_indexes_without_sorting(
    stored: StorageDriver, sort: tuple[SortKey, ...]
) -> None:
    assert isinstance(stored, SQLDriver)
    with stored.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    by_owner = {owner: index for index, owner in t.SQLITE_DAY_INDEXES.items()}
    user_index, project_index = by_owner["user_id"], by_owner["project_id"]
    cases = [
        (EventQuery(scope=SCOPES[0], sort=sort, limit=5), user_index),
        (
            EventQuery(
                scope=Scope.everything(),
                traits=(TraitFilter("project_id", TraitType.STRING, Op.EQ, "p1"),),
                sort=sort,
                limit=5,
            ),
            project_index,
        ),
        (EventQuery(scope=SCOPES[0], sort=sort, limit=5, start=EPOCH, end=EPOCH + DAY), user_index),
    ]
    for query, index in cases:
        (plan,) = _plans(stored, query)
        assert any(f"USING INDEX {index} (<expr>=? AND " in line for line in plan), plan
        assert not any("TEMP B-TREE" in line for line in plan), plan
    # Own project OR no project: each alternative from the project day index, in order, up
    # to the limit; the only sorts are of those short lists (SCAN anon_n), for the merge.
    (plan,) = _plans(stored, EventQuery(scope=SCOPES[4], sort=sort, limit=5))
    assert sum(f"USING INDEX {project_index} (<expr>=? AND " in line for line in plan) == 2, plan
    sorted_after = [plan[i - 1] for i, line in enumerate(plan) if "TEMP B-TREE" in line]
    assert len(sorted_after) == 2, plan
    assert all(line.startswith("SCAN anon_") for line in sorted_after), plan
