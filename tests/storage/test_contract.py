"""The storage contract: every driver, on every engine, behaves the same.

Runs against real SQLite, PostgreSQL and MariaDB databases (one fresh database per test).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

import pytest
import sqlalchemy as sa

from annals.errors import InvalidMarker
from annals.models import Event, Trait, TraitDescription, TraitType
from annals.query import EventQuery, Op, Scope, ScopeKind, SortKey, TraitFilter
from annals.storage.base import StorageDriver

pytestmark = pytest.mark.db

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123456)
ALL = Scope.everything()


def ev(
    n: int,
    event_type: str = "compute.instance.create.end",
    *,
    project: str | None = "p1",
    user: str | None = "u1",
    traits: Sequence[Trait] = (),
    seconds: int | None = None,
    raw: object = None,
) -> Event:
    base: list[Trait] = []
    if project is not None:
        base.append(Trait("project_id", TraitType.STRING, project))
    if user is not None:
        base.append(Trait("user_id", TraitType.STRING, user))
    return Event(
        message_id=f"msg-{n:04d}",
        event_type=event_type,
        generated=T0 + dt.timedelta(seconds=n if seconds is None else seconds),
        traits=tuple(base) + tuple(traits),
        raw={"n": n} if raw is None else raw,
    )


def ids(events: Sequence[Event]) -> list[str]:
    return [e.message_id for e in events]


def test_round_trip_preserves_everything(driver: StorageDriver) -> None:
    when = dt.datetime(2023, 12, 31, 23, 59, 59, 999999)
    original = Event(
        "round-trip",
        "volume.create.end",
        dt.datetime(2024, 2, 29, 1, 2, 3, 7),
        (
            Trait("big", TraitType.INTEGER, 2**63 - 1),
            Trait("small", TraitType.INTEGER, -(2**63)),
            Trait("ratio", TraitType.FLOAT, 1e-300),
            Trait("pi", TraitType.FLOAT, 3.141592653589793),
            Trait("when", TraitType.DATETIME, when),
            Trait("name", TraitType.STRING, "Zoë ☃ " + "x" * 400),
            Trait("empty", TraitType.STRING, ""),
        ),
        {"nested": {"list": [1, 2.5, None, True, "é"]}, "big": "y" * 200_000},
    )
    assert driver.record_events([original]).stored == 1
    [got] = driver.get_events(EventQuery(message_id="round-trip"))
    assert got.generated == original.generated
    assert got.raw == original.raw
    assert sorted(got.traits, key=lambda t: t.name) == sorted(original.traits, key=lambda t: t.name)


def test_duplicates_are_skipped_and_reported(driver: StorageDriver) -> None:
    first = driver.record_events([ev(1), ev(2)])
    assert (first.stored, first.duplicates) == (2, ())
    again = driver.record_events([ev(2), ev(3), ev(3)])
    assert again.stored == 1
    assert sorted(again.duplicates) == ["msg-0002", "msg-0003"]
    assert ids(driver.get_events(EventQuery())) == ["msg-0001", "msg-0002", "msg-0003"]


def test_concurrent_writers_of_the_same_events_store_each_once(driver: StorageDriver) -> None:
    batch = [ev(n) for n in range(200)]
    errors: list[BaseException] = []
    results = []

    def write() -> None:
        try:
            results.append(driver.record_events(batch))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(r.stored for r in results) == 200
    assert len(driver.get_events(EventQuery(limit=1000))) == 200


def test_a_failing_batch_stores_nothing(
    driver: StorageDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error half-way through a batch (events written, float traits not yet)
    rolls the whole batch back."""
    real_insert = driver._insert_rows  # type: ignore[attr-defined]

    def failing_insert(conn: object, table: sa.Table, *args: object) -> None:
        if table.name == "trait_float":
            raise RuntimeError("injected failure")
        real_insert(conn, table, *args)

    monkeypatch.setattr(driver, "_insert_rows", failing_insert)
    with pytest.raises(RuntimeError, match="injected"):
        driver.record_events([ev(1), ev(2, traits=[Trait("f", TraitType.FLOAT, 1.0)])])
    monkeypatch.undo()
    assert driver.get_events(EventQuery()) == []
    assert driver.record_events([ev(1)]).stored == 1


@pytest.fixture(params=["as planned", "every trait filter walks the events"])
def trait_plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQL driver starts a query from a trait filter's matches only when they are few
    (else it checks each event in order); test data is always small, so the second run forces
    the other plan on SQLite and MariaDB: both must give the same answers."""
    if request.param != "as planned":
        from annals.storage.sql import driver as sql_driver

        monkeypatch.setattr(sql_driver, "MIN_SELECTIVE_TRAIT_ROWS", 0)
        monkeypatch.setattr(sql_driver, "MAX_SELECTIVE_TRAIT_ROWS", 0)


def test_filters(driver: StorageDriver, trait_plan: None) -> None:
    driver.record_events(
        [
            ev(
                1,
                "a",
                traits=[
                    Trait("mem", TraitType.INTEGER, 512),
                    Trait("state", TraitType.STRING, "active"),
                ],
            ),
            ev(
                2,
                "b",
                traits=[
                    Trait("mem", TraitType.INTEGER, 2048),
                    Trait("state", TraitType.STRING, "error"),
                ],
            ),
            ev(
                3,
                "a",
                traits=[Trait("mem", TraitType.INTEGER, 4096), Trait("load", TraitType.FLOAT, 0.5)],
            ),
            ev(
                4,
                "c",
                traits=[
                    Trait("mem", TraitType.STRING, "2048"),
                    Trait("at", TraitType.DATETIME, T0),
                ],
            ),
        ]
    )

    def q(**kw: object) -> list[str]:
        return ids(driver.get_events(EventQuery(**kw)))  # type: ignore[arg-type]

    def tf(name: str, ttype: TraitType, op: Op, value: object) -> TraitFilter:
        return TraitFilter(name, ttype, op, value)  # type: ignore[arg-type]

    assert q(event_type="a") == ["msg-0001", "msg-0003"]
    assert q(event_type="nope") == []
    assert q(message_id="msg-0002") == ["msg-0002"]
    assert q(start=T0 + dt.timedelta(seconds=2)) == ["msg-0002", "msg-0003", "msg-0004"]
    assert q(end=T0 + dt.timedelta(seconds=2)) == ["msg-0001", "msg-0002"]
    # microsecond boundaries are exact
    assert q(end=T0 + dt.timedelta(seconds=2, microseconds=-1)) == ["msg-0001"]
    expectations = {
        Op.LT: ["msg-0001"],
        Op.LE: ["msg-0001", "msg-0002"],
        Op.EQ: ["msg-0002"],
        Op.NE: ["msg-0001", "msg-0003"],
        Op.GE: ["msg-0002", "msg-0003"],
        Op.GT: ["msg-0003"],
    }
    for op, want in expectations.items():
        assert q(traits=(tf("mem", TraitType.INTEGER, op, 2048),)) == want, op
    # the filter type picks the trait type: the string "2048" is not the integer 2048
    assert q(traits=(tf("mem", TraitType.STRING, Op.EQ, "2048"),)) == ["msg-0004"]
    assert q(traits=(tf("load", TraitType.FLOAT, Op.GT, 0.25),)) == ["msg-0003"]
    assert q(traits=(tf("at", TraitType.DATETIME, Op.EQ, T0),)) == ["msg-0004"]
    assert q(traits=(tf("state", TraitType.STRING, Op.EQ, "ACTIVE"),)) == []  # case-sensitive
    # conditions are ANDed, also two on the same trait
    both = (tf("mem", TraitType.INTEGER, Op.GT, 600), tf("mem", TraitType.INTEGER, Op.LT, 3000))
    assert q(traits=both) == ["msg-0002"]
    assert q(event_type="a", traits=(tf("mem", TraitType.INTEGER, Op.GE, 1000),)) == ["msg-0003"]


def test_scopes(driver: StorageDriver) -> None:
    driver.record_events(
        [
            ev(1, project="p1", user="u1"),
            ev(2, project="p1", user="u2"),
            ev(3, project="p2", user="u1"),
            ev(4, project=None, user="u1"),
            ev(5, project=None, user=None),
            Event("int-project", "t", T0, (Trait("project_id", TraitType.INTEGER, 7),)),
        ]
    )

    def q(scope: Scope) -> list[str]:
        return ids(driver.get_events(EventQuery(scope=scope)))

    assert q(Scope(ScopeKind.OWNER, "p1", "u1")) == ["msg-0001"]
    assert q(Scope(ScopeKind.OWNER, "p2", "u2")) == []
    assert q(Scope(ScopeKind.ADMIN_PROJECT, "p1")) == [
        "int-project",
        "msg-0001",
        "msg-0002",
        "msg-0004",
        "msg-0005",
    ]
    assert len(q(ALL)) == 6
    assert q(Scope(ScopeKind.NOTHING)) == []


def test_owner_traits(driver: StorageDriver) -> None:
    """project_id and user_id, which the SQL driver keeps in event columns (0004), behave as
    every other string trait: filters with every operator, trait listings, trait values."""
    driver.record_events(
        [
            ev(1, "a", project="p1", user="u1"),
            ev(2, "a", project="p2", user=None),
            ev(3, "a", project=None, user="u3"),
            ev(4, "b", project=None, user=None),
            Event("int-project", "b", T0, (Trait("project_id", TraitType.INTEGER, 7),)),
        ]
    )

    def q(name: str, op: Op, value: object, kind: TraitType = TraitType.STRING) -> list[str]:
        flt = TraitFilter(name, kind, op, value)  # type: ignore[arg-type]
        return ids(driver.get_events(EventQuery(traits=(flt,))))

    assert q("project_id", Op.EQ, "p1") == ["msg-0001"]
    # An event without the trait matches no operator, ne included.
    assert q("project_id", Op.NE, "p1") == ["msg-0002"]
    assert q("project_id", Op.GT, "p1") == ["msg-0002"]
    assert q("project_id", Op.LE, "p2") == ["msg-0001", "msg-0002"]
    assert q("user_id", Op.NE, "u1") == ["msg-0003"]
    assert q("project_id", Op.EQ, 7, TraitType.INTEGER) == ["int-project"]
    assert q("project_id", Op.EQ, "7") == []
    assert q("user_id", Op.EQ, "nobody") == []
    [third] = driver.get_events(EventQuery(message_id="msg-0003"))
    assert third.traits == (Trait("user_id", TraitType.STRING, "u3"),)

    owner_p2 = Scope(ScopeKind.ADMIN_PROJECT, "p2")
    assert driver.get_trait_types("a", owner_p2) == [
        TraitDescription("project_id", TraitType.STRING),
        TraitDescription("user_id", TraitType.STRING),  # msg-0003: no project, so visible
    ]
    assert driver.get_trait_types("a", Scope(ScopeKind.OWNER, "p2", "u9")) == []
    assert driver.get_trait_types("b", ALL) == [TraitDescription("project_id", TraitType.INTEGER)]
    assert list(driver.get_traits("a", "project_id", ALL)) == [
        Trait("project_id", TraitType.STRING, "p1"),
        Trait("project_id", TraitType.STRING, "p2"),
    ]
    assert list(driver.get_traits("a", "user_id", owner_p2)) == [
        Trait("user_id", TraitType.STRING, "u3"),
    ]
    assert list(driver.get_traits("b", "project_id", ALL)) == [
        Trait("project_id", TraitType.INTEGER, 7),
    ]


def test_sort_limit_and_marker(driver: StorageDriver) -> None:
    driver.record_events([ev(n, seconds=n // 2) for n in range(10)])  # pairs share a time
    everything = ids(driver.get_events(EventQuery()))
    assert everything == [f"msg-{n:04d}" for n in range(10)]
    desc = ids(driver.get_events(EventQuery(sort=(SortKey("generated", True),))))
    # The implicit message_id tie-break follows the direction of the last sort key.
    assert desc == everything[::-1]
    by_id_desc = ids(driver.get_events(EventQuery(sort=(SortKey("message_id", True),))))
    assert by_id_desc == everything[::-1]
    for sort in [
        (),
        (SortKey("generated", True),),
        (SortKey("message_id", True),),
        (SortKey("generated"), SortKey("message_id", True)),
    ]:
        query = EventQuery(sort=sort) if sort else EventQuery()
        full = ids(driver.get_events(query))
        pages: list[str] = []
        marker = None
        while True:
            page = ids(driver.get_events(EventQuery(sort=query.sort, limit=3, marker=marker)))
            if not page:
                break
            pages += page
            marker = page[-1]
        assert pages == full, sort


def test_large_pages_come_whole_and_in_order(driver: StorageDriver) -> None:
    """Pages over 1,000 events come through the engines' streaming cursors (PostgreSQL's
    named cursor, MySQL's unbuffered one) in parts: every part, in order, traits included."""
    events = [
        ev(n, project=f"p{n % 3}", traits=(Trait("n", TraitType.INTEGER, n),), seconds=n // 2)
        for n in range(2_600)
    ]
    for start in range(0, len(events), 1_000):
        driver.record_events(events[start : start + 1_000])
    got = driver.get_events(EventQuery(limit=2_500))
    assert got == [
        Event(e.message_id, e.event_type, e.generated, tuple(sorted(e.traits)), e.raw)
        for e in events[:2_500]
    ]
    desc = driver.get_events(EventQuery(limit=2_200, sort=(SortKey("generated", True),)))
    assert ids(desc) == ids(events[::-1][:2_200])
    scoped = driver.get_events(
        EventQuery(limit=1_500, scope=Scope(ScopeKind.ADMIN_PROJECT, project_id="p1"))
    )
    assert ids(scoped) == ids([e for n, e in enumerate(events) if n % 3 == 1][:1_500])


def test_marker_must_be_visible(driver: StorageDriver) -> None:
    driver.record_events([ev(1, project="p1"), ev(2, project="p2")])
    with pytest.raises(InvalidMarker):
        driver.get_events(EventQuery(marker="nope"))
    with pytest.raises(InvalidMarker):
        driver.get_events(EventQuery(marker="msg-0002", scope=Scope(ScopeKind.OWNER, "p1", "u1")))
    # Also when the filters cannot match anything (an event type nobody stored).
    with pytest.raises(InvalidMarker):
        driver.get_events(EventQuery(event_type="no.such.type", marker="nope"))
    assert driver.get_events(EventQuery(event_type="no.such.type", marker="msg-0001")) == []


def test_event_types_and_traits(driver: StorageDriver) -> None:
    driver.record_events(
        [
            ev(1, "b.type", traits=[Trait("size", TraitType.INTEGER, 10)]),
            ev(
                2,
                "a.type",
                traits=[Trait("size", TraitType.FLOAT, 20.5), Trait("at", TraitType.DATETIME, T0)],
            ),
            ev(3, "b.type", traits=[Trait("size", TraitType.INTEGER, 100)]),
        ]
    )
    assert driver.get_event_types(ALL) == ["a.type", "b.type"]
    assert driver.get_trait_types("a.type", ALL) == [
        TraitDescription("project_id", TraitType.STRING),
        TraitDescription("user_id", TraitType.STRING),
        TraitDescription("size", TraitType.FLOAT),
        TraitDescription("at", TraitType.DATETIME),
    ]
    assert driver.get_trait_types("nope", ALL) == []
    assert list(driver.get_traits("b.type", "size", ALL)) == [
        Trait("size", TraitType.INTEGER, 10),
        Trait("size", TraitType.INTEGER, 100),
    ]
    assert list(driver.get_traits("b.type", "nope", ALL)) == []
    scoped = Scope(ScopeKind.OWNER, "p9", "u9")
    assert driver.get_event_types(scoped) == []
    assert driver.get_trait_types("a.type", scoped) == []
    assert list(driver.get_traits("b.type", "size", scoped)) == []


def test_capabilities_and_schema(driver: StorageDriver) -> None:
    assert driver.schema_is_current()
    driver.upgrade()  # idempotent
    assert driver.schema_is_current()
    caps = driver.storage_capabilities()
    assert caps["storage:production_ready"] is (not driver.url.startswith("sqlite"))
    driver.ping()


def test_clear(driver: StorageDriver) -> None:
    driver.record_events([ev(1)])
    driver.clear()
    assert driver.get_events(EventQuery()) == []
    assert driver.record_events([ev(1)]).stored == 1


def test_refresh_statistics_and_counts(driver: StorageDriver) -> None:
    driver.record_events([ev(1, "a"), ev(2, "b"), ev(3, "a")])
    driver.refresh_statistics()
    assert driver.event_type_counts() == {"a": 2, "b": 1}
