"""Events keep their trait documents in ``event.traits`` (migration 0008).

A page copies that text instead of reading the trait tables; events stored before 0008
(``traits`` NULL) are still read from their trait rows. Both must give the same events and,
to the byte, the same JSON and XML, on every engine: these tests store awkward traits,
then read every page with the documents, with some of them removed (a store upgraded with
older events in it), and with all of them removed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import orjson
import pytest
import sqlalchemy as sa

from annals.api import serializers
from annals.models import Event, StoredTraits, Trait, TraitType, encode_traits, trait_doc
from annals.query import EventQuery, Op, SortKey, TraitFilter
from annals.storage.base import StorageDriver
from annals.storage.sql import tables as t

pytestmark = pytest.mark.db

S, INT, F, D = TraitType.STRING, TraitType.INTEGER, TraitType.FLOAT, TraitType.DATETIME

TRAIT_SETS: list[tuple[Trait, ...]] = [
    (),
    (Trait("project_id", S, "p1"), Trait("user_id", S, "u1")),
    (
        Trait("project_id", S, "p1"),
        Trait("zeta", S, "last by name"),
        Trait("Alpha", S, "upper case sorts first"),
        Trait("n", INT, 2**62),
        Trait("neg", INT, -7),
        Trait("f", F, 0.1),
        Trait("tiny", F, 1e-300),
        Trait("huge", F, 1.5e300),
        Trait("whole", F, 3.0),
        Trait("negzero", F, -0.0),
        Trait("at", D, dt.datetime(2024, 2, 29, 23, 59, 59, 999999)),
        Trait("at0", D, dt.datetime(2024, 3, 1)),
        Trait("old", D, dt.datetime(1969, 12, 31, 23, 59, 59, 1)),
    ),
    (
        # one name, two types: ordered by name, then type
        Trait("same", INT, 1),
        Trait("same", S, "one"),
        Trait("user_id", S, "u2"),
        Trait("ünïcødé", S, '日本語 "quoted" \\ back\nslash \u2028'),
        Trait("long", S, "x" * 500),
        Trait("empty", S, ""),
    ),
    (Trait("project_id", INT, 5), Trait("user_id", D, dt.datetime(2020, 1, 1, 0, 0, 0, 5))),
]


def _events() -> list[Event]:
    base = dt.datetime(2024, 5, 1, 12, 0, 0)
    return [
        Event(
            message_id=f"m-{n:03d}",
            event_type=f"type.{n % 3}",
            generated=base + dt.timedelta(minutes=n % 7, microseconds=n),
            traits=TRAIT_SETS[n % len(TRAIT_SETS)],
            raw={"n": n, "text": "é"} if n % 2 else {},
        )
        for n in range(40)
    ]


QUERIES = [
    EventQuery(),
    EventQuery(limit=7),
    EventQuery(limit=7, sort=(SortKey("generated", descending=True),)),
    EventQuery(event_type="type.1"),
    EventQuery(traits=(TraitFilter("same", S, Op.EQ, "one"),)),
    EventQuery(traits=(TraitFilter("n", INT, Op.GE, 0),)),
    EventQuery(message_id="m-007"),
]


def _pages(driver: StorageDriver, query: EventQuery) -> list[list[Event]]:
    """Every page of ``query`` (markers from one page to the next)."""
    pages = [driver.get_events(query)]
    while query.limit is not None and len(pages[-1]) == query.limit:
        marker = pages[-1][-1].message_id
        pages.append(driver.get_events(replace(query, marker=marker)))
    return pages


def _rendered(driver: StorageDriver) -> list[tuple[bytes, bytes, list[list[Event]]]]:
    out = []
    for query in QUERIES:
        pages = _pages(driver, query)
        for fmt in (serializers.Format.JSON, serializers.Format.XML):
            assert all(serializers.render_events(page, fmt) for page in pages)
        json = b"".join(serializers.render_events(p, serializers.Format.JSON) for p in pages)
        xml = b"".join(serializers.render_events(p, serializers.Format.XML) for p in pages)
        out.append((json, xml, pages))
    return out


def _forget_documents(driver: StorageDriver, where: str) -> int:
    engine: sa.Engine = driver.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        return conn.execute(sa.text(f"UPDATE event SET traits = NULL WHERE {where}")).rowcount


def test_documents_and_trait_rows_read_the_same(driver: StorageDriver) -> None:
    events = _events()
    assert driver.record_events(events).stored == len(events)
    with_documents = _rendered(driver)
    # What was written reads back: every trait, in (name, type) order, values as written.
    stored = {e.message_id: e for e in with_documents[0][2][0]}
    for event in events:
        got = stored[event.message_id]
        assert isinstance(got.traits, StoredTraits)
        assert list(got.traits) == sorted(event.traits, key=lambda tr: (tr.name, tr.type))
        assert got == Event(
            event.message_id,
            event.event_type,
            event.generated,
            tuple(sorted(event.traits, key=lambda tr: (tr.name, tr.type))),
            event.raw,
        )
    # A store with older events in it: some events without their documents, then none.
    assert _forget_documents(driver, "id % 3 = 0") > 0
    assert _rendered(driver) == with_documents
    assert _forget_documents(driver, "traits IS NOT NULL") > 0
    without = _rendered(driver)
    assert without == with_documents
    assert not any(isinstance(e.traits, StoredTraits) for e in without[0][2][0])


def test_the_stored_document_is_the_api_rendering(driver: StorageDriver) -> None:
    """``event.traits`` holds what the API shows for the event's trait rows."""
    events = _events()
    driver.record_events(events)
    engine: sa.Engine = driver.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        texts = dict(conn.execute(sa.select(t.event.c.message_id, t.event.c.traits)).all())
    _forget_documents(driver, "traits IS NOT NULL")
    from_rows = {e.message_id: e for e in driver.get_events(EventQuery())}
    assert sorted(texts) == sorted(from_rows)
    for message_id, text in texts.items():
        traits = from_rows[message_id].traits
        assert not isinstance(traits, StoredTraits)
        assert orjson.loads(text) == [trait_doc(tr) for tr in traits]
        assert text == encode_traits(traits)
    # A negative zero is stored as zero, in the trait row as in the document.
    negzero = next(e for e in from_rows.values() if any(tr.name == "negzero" for tr in e.traits))
    assert '"value":"0.0"' in texts[negzero.message_id]
