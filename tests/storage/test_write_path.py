"""The SQL driver's batch write path: ids chosen before the insert, the trait catalogue kept
without a cache, SQLite writers in several processes, durable SQLite settings.

Runs against real SQLite, PostgreSQL and MariaDB databases (one fresh database per test).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import shutil
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from annals.errors import StorageError
from annals.models import Event, Trait, TraitDescription, TraitType
from annals.query import EventQuery, Scope
from annals.storage import get_driver
from annals.storage.sql import tables as t
from annals.storage.sql.driver import SQLITE_ROWS_PER_INSERT, SQLDriver
from tests.conftest import wait_for

pytestmark = pytest.mark.db

T0 = dt.datetime(2024, 5, 1, 12, 0, 0)
ALL = Scope.everything()


def event(n: int, event_type: str = "compute.instance.create.end") -> Event:
    """An event whose every trait value says which event it belongs to."""
    return Event(
        message_id=f"m-{n:05d}",
        event_type=event_type,
        generated=T0 + dt.timedelta(seconds=n),
        traits=(
            Trait("project_id", TraitType.STRING, f"p{n % 3}"),
            Trait("user_id", TraitType.STRING, f"u{n}"),
            Trait("n", TraitType.INTEGER, n),
            Trait("half", TraitType.FLOAT, n / 2),
            Trait("at", TraitType.DATETIME, T0 + dt.timedelta(minutes=n)),
        ),
        raw={"n": n},
    )


def check_stored(drv: SQLDriver, numbers: list[int], make: Callable[[int], Event] = event) -> None:
    got = drv.get_events(EventQuery(limit=10_000))
    assert [e.message_id for e in got] == [f"m-{n:05d}" for n in sorted(numbers)]
    for stored in got:
        sent = make(int(stored.message_id[2:]))
        in_order = tuple(sorted(sent.traits, key=lambda tr: (tr.name, tr.type)))
        assert stored == replace(sent, traits=in_order)  # raw included


def check_trait_rows(drv: SQLDriver, numbers: list[int]) -> None:
    """Every non-owner trait of the events ``numbers`` has its row, at its own event (the rows
    trait filters read; check_stored reads the event's trait document)."""
    ev = t.event
    with drv.engine.connect() as conn:
        for table, name in ((t.trait_integer, "n"), (t.trait_float, "half")):
            rows = conn.execute(
                sa.select(ev.c.message_id, table.c.value)
                .join(table, table.c.event_id == ev.c.id)
                .where(table.c.name == name)
            ).all()
            expected = {f"m-{n:05d}": n if name == "n" else n / 2 for n in numbers}
            assert len(rows) == len(numbers)
            assert dict(rows) == expected
        count = conn.execute(sa.select(sa.func.count()).select_from(t.trait_datetime)).scalar()
        assert count == len(numbers)


def test_traits_go_to_their_own_event_across_batches(sql_driver: SQLDriver) -> None:
    first = sql_driver.record_events([event(n) for n in range(0, 300)])
    assert (first.stored, first.duplicates) == (300, ())
    # Duplicates in the middle of a batch: the new events' ids and traits still line up.
    again = sql_driver.record_events([event(n) for n in range(250, 520)])
    assert again.stored == 220
    assert sorted(again.duplicates) == [f"m-{n:05d}" for n in range(250, 300)]
    check_stored(sql_driver, list(range(520)))
    with sql_driver.engine.connect() as conn:
        owners = conn.execute(
            sa.select(t.event.c.message_id, t.event.c.project_id, t.event.c.user_id)
        ).all()
    assert {m: (p, u) for m, p, u in owners} == {
        f"m-{n:05d}": (f"p{n % 3}", f"u{n}") for n in range(520)
    }


def test_large_batches_of_trait_rows(sql_driver: SQLDriver) -> None:
    """Batches with more trait rows of a type than one multi-row INSERT takes on SQLite
    (SQLITE_ROWS_PER_INSERT): whole statements plus a remainder, every row at its event."""
    count = 2 * SQLITE_ROWS_PER_INSERT + 37
    assert sql_driver.record_events([event(n) for n in range(count)]).stored == count
    assert sql_driver.record_events([event(n) for n in range(count, count + 3)]).stored == 3
    check_stored(sql_driver, list(range(count + 3)))
    check_trait_rows(sql_driver, list(range(count + 3)))


@pytest.mark.backends("sqlite")
def test_sqlite_multi_row_inserts_respect_the_parameter_limit(sql_driver: SQLDriver) -> None:
    """A SQLite built with a low limit on bound parameters (999 before 3.32; 10 here, so
    three trait rows per statement) still stores every row."""

    def low_limit(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)

    sa.event.listen(sql_driver.engine, "connect", low_limit)
    sql_driver.engine.dispose()
    with sql_driver.engine.connect() as conn:
        limit = conn.connection.dbapi_connection.getlimit(  # type: ignore[union-attr]
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER
        )
    assert limit == 10
    assert sql_driver.record_events([event(n) for n in range(25)]).stored == 25
    check_stored(sql_driver, list(range(25)))
    check_trait_rows(sql_driver, list(range(25)))


def test_ids_after_the_newest_events_were_deleted(sql_driver: SQLDriver) -> None:
    """New ids never collide with stored ones, whatever was deleted before: here events
    deleted without their trait rows (no foreign key since migration 0003), whose ids new
    events must not take (SQLite picks ids after the largest one in use)."""
    sql_driver.record_events([event(n) for n in range(10)])
    with sql_driver.engine.begin() as conn:
        conn.execute(t.event.delete().where(t.event.c.message_id >= "m-00005"))
    sql_driver.record_events([event(n) for n in range(5, 20)])
    check_stored(sql_driver, list(range(20)))


@pytest.mark.backends("postgresql")
def test_postgresql_ids_come_from_the_column_sequence(sql_driver: SQLDriver) -> None:
    """Rows inserted without an id (the column default) after a batch do not collide."""
    sql_driver.record_events([event(n) for n in range(50)])
    with sql_driver.engine.begin() as conn:
        type_id = conn.execute(sa.select(t.event_type.c.id)).scalar_one()
        conn.execute(
            t.event.insert().values(
                message_id="by-default", event_type_id=type_id, generated=0, raw="{}"
            )
        )
        ids = conn.execute(sa.select(t.event.c.id).order_by(t.event.c.id)).scalars().all()
    assert len(set(ids)) == 51
    assert ids[-1] > max(ids[:-1])


def test_the_catalogue_is_written_again_after_a_prune(sql_driver: SQLDriver) -> None:
    """Another process (the expirer) may remove catalogue rows at any time: a writer that
    has written them before writes them again when it stores events that have them."""
    sql_driver.record_events([event(1)])
    with sql_driver.engine.begin() as conn:
        conn.execute(t.trait_type.delete())
    assert sql_driver.get_trait_types("compute.instance.create.end", ALL) == []
    sql_driver.record_events([event(2)])
    assert set(sql_driver.get_trait_types("compute.instance.create.end", ALL)) == {
        TraitDescription("at", TraitType.DATETIME),
        TraitDescription("half", TraitType.FLOAT),
        TraitDescription("n", TraitType.INTEGER),
        TraitDescription("project_id", TraitType.STRING),
        TraitDescription("user_id", TraitType.STRING),
    }


@pytest.mark.backends("sqlite", "postgresql")
def test_writers_of_two_processes(database_url: str, sql_driver: SQLDriver) -> None:
    """Two drivers (as two API workers) writing at once, overlapping batches included:
    everything stored once, every batch whole."""
    other = get_driver(database_url)
    assert isinstance(other, SQLDriver)
    drivers = [sql_driver, other]
    errors: list[BaseException] = []
    stored = [0, 0]

    def write(slot: int) -> None:
        try:
            for start in range(0, 400, 50):
                # Each writer has batches of its own and batches both send.
                numbers = range(start, start + 50) if start % 100 else range(start, start + 60)
                batch = [event(n + (1000 * slot if start % 100 else 0)) for n in numbers]
                stored[slot] += drivers[slot].record_events(batch).stored
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(slot,)) for slot in (0, 1)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        other.close()
    assert not errors
    expected = sorted(
        {n for start in range(0, 400, 100) for n in range(start, start + 60)}
        | {
            n + 1000 * slot
            for slot in (0, 1)
            for start in range(50, 400, 100)
            for n in range(start, start + 50)
        }
    )
    assert sum(stored) == len(expected)
    check_stored(sql_driver, expected)


@pytest.mark.backends("sqlite")
def test_sqlite_stays_durable(sql_driver: SQLDriver) -> None:
    """WAL with a full fsync at every commit; writes take the write lock up front."""
    sql_driver.record_events([event(1)])
    with sql_driver.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    with sql_driver._tx(write=True) as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]


def _events_in_main_file(drv: SQLDriver, tmp_path: Path) -> int:
    """Events in a copy of the database file alone: what checkpoints have put there."""
    source = Path(str(drv.sa_url.database))
    copy = tmp_path / "main-file-only.db"
    shutil.copyfile(source, copy)
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT count(*) FROM event").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.backends("sqlite")
def test_sqlite_checkpoints_in_the_background(sql_driver: SQLDriver, tmp_path: Path) -> None:
    """A write commit wakes the checkpointer thread, which copies the WAL into the database
    file; SQLite's own auto-checkpoint would not have run for a WAL this small. A reader
    holding an older snapshot does not block it or the writers; close() stops the thread."""
    checkpointer = sql_driver._checkpointer
    assert checkpointer is not None
    sql_driver.record_events([event(n) for n in range(10)])
    wait_for(lambda: checkpointer.completed >= 1, 20, "a background checkpoint")
    wait_for(lambda: _events_in_main_file(sql_driver, tmp_path) == 10, 20, "10 events in the file")
    with sql_driver.engine.connect() as reader:  # an open read transaction (old snapshot)
        assert reader.exec_driver_sql("SELECT count(*) FROM event").scalar() == 10
        done = checkpointer.completed
        sql_driver.record_events([event(n) for n in range(10, 20)])
        wait_for(lambda: checkpointer.completed > done, 20, "a checkpoint beside the reader")
        assert reader.exec_driver_sql("SELECT count(*) FROM event").scalar() == 10
    sql_driver.record_events([event(n) for n in range(20, 30)])
    wait_for(lambda: _events_in_main_file(sql_driver, tmp_path) == 30, 20, "30 events in the file")
    check_stored(sql_driver, list(range(30)))
    thread = checkpointer._thread
    sql_driver.close()
    assert thread is not None and not thread.is_alive()


@pytest.mark.backends("sqlite")
def test_sqlite_checkpointer_after_fork(sql_driver: SQLDriver, tmp_path: Path) -> None:
    """A worker forked from a process whose checkpointer runs (gunicorn forks its workers)
    starts a checkpointer of its own at its first write."""
    checkpointer = sql_driver._checkpointer
    assert checkpointer is not None
    sql_driver.record_events([event(1)])
    wait_for(lambda: checkpointer.completed >= 1, 20, "a background checkpoint")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def in_child() -> None:
        sql_driver.engine.dispose(close=False)  # the parent's connections stay the parent's
        assert sql_driver._checkpointer is not None
        before = sql_driver._checkpointer.completed
        sql_driver.record_events([event(n) for n in range(2, 12)])
        wait_for(lambda: checkpointer.completed > before, 20, "the child's own checkpoint")
        queue.put(True)

    child = context.Process(target=in_child)
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert queue.get(timeout=5) is True
    wait_for(lambda: _events_in_main_file(sql_driver, tmp_path) == 11, 20, "11 events in the file")


SPREAD = 250  # spacing of the events these tests spread over a batch


def test_duplicates_in_batch_order(sql_driver: SQLDriver) -> None:
    """Stored before, and repeated within the batch, far apart: reported in the order of
    the batch (stored before first, then repeats), each stored once."""
    before = [3, SPREAD + 7, 2 * SPREAD + 1]
    sql_driver.record_events([event(n) for n in before])
    numbers = [*range(3 * SPREAD), 5, SPREAD + 9, 5]
    result = sql_driver.record_events([event(n) for n in numbers])
    assert result.stored == 3 * SPREAD - len(before)
    assert result.duplicates == tuple(f"m-{n:05d}" for n in [*before, 5, SPREAD + 9, 5])
    check_stored(sql_driver, list(range(3 * SPREAD)))


def test_a_database_error_late_in_a_batch_stores_nothing(sql_driver: SQLDriver) -> None:
    """The database refuses a row late in the batch (a string longer than the column, which
    the parser would have refused): a storage error, nothing of the batch stored."""
    from annals.errors import StorageError

    bad = replace(event(2 * SPREAD + 3), message_id="x" * 300)
    sent = [event(n) for n in range(2 * SPREAD)] + [bad] + [event(n) for n in range(600, 700)]
    if sql_driver.dialect_name == "sqlite":  # no length limit: SQLite stores it
        assert sql_driver.record_events(sent).stored == len(sent)
        return
    with pytest.raises(StorageError):
        sql_driver.record_events(sent)
    assert sql_driver.get_events(EventQuery(limit=10)) == []
    assert sql_driver.record_events([event(1)]).stored == 1


def test_owner_traits_are_stored_once_in_their_event_columns(sql_driver: SQLDriver) -> None:
    """Since 0004 the string project_id/user_id traits are event columns, not trait rows;
    an event naming one of them twice is refused (before 0004 the trait key refused it)."""
    sql_driver.record_events([event(n) for n in range(5)])
    with sql_driver.engine.connect() as conn:
        names = set(conn.scalars(sa.select(t.trait_string.c.name).distinct()))
        owners = conn.execute(
            sa.select(t.event.c.project_id, t.event.c.user_id).order_by(t.event.c.id)
        ).all()
    assert names.isdisjoint({"project_id", "user_id"})
    assert [tuple(row) for row in owners] == [(f"p{n % 3}", f"u{n}") for n in range(5)]
    check_stored(sql_driver, list(range(5)))
    twice = Event(
        "twice",
        "t",
        T0,
        (Trait("user_id", TraitType.STRING, "a"), Trait("user_id", TraitType.STRING, "b")),
    )
    with pytest.raises(StorageError, match="two string traits named user_id"):
        sql_driver.record_events([event(9), twice])
    check_stored(sql_driver, list(range(5)))


def test_stored_message_ids_are_found_without_a_probe(
    sql_driver: SQLDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch is inserted without probing the message_id index first; one that holds a
    stored event fails on the unique index and is written again, probing, as are the batches
    after it until one holds no stored event."""
    probes: list[int] = []
    probe = sql_driver._existing_message_ids

    def counted(conn: sa.Connection, message_ids: list[str]) -> set[str]:
        probes.append(len(message_ids))
        return probe(conn, message_ids)

    monkeypatch.setattr(sql_driver, "_existing_message_ids", counted)
    assert sql_driver.record_events([event(n) for n in range(10)]).stored == 10
    assert probes == []
    result = sql_driver.record_events([event(n) for n in range(5, 15)])
    assert (result.stored, result.duplicates) == (5, tuple(f"m-{n:05d}" for n in range(5, 10)))
    assert probes == [10]  # the optimistic insert failed, the second attempt probed
    assert sql_driver.record_events([event(n) for n in range(15, 20)]).stored == 5
    assert probes == [10, 5]  # probing still: the last batch had a stored event
    assert sql_driver.record_events([event(n) for n in range(20, 25)]).stored == 5
    assert probes == [10, 5]  # the batch before had none: optimistic again
    check_stored(sql_driver, list(range(25)))


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "new-type"])
def test_a_writer_whose_type_cache_another_thread_clears(
    sql_driver: SQLDriver, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    """Another writer thread of the process clears the event type cache (as record_events
    does after an IntegrityError) while this one looks its types up: the lookup still
    answers for every type it was asked. Before, it re-read the shared cache for its answer,
    and concurrent writers of the same batch failed with a KeyError (seen in CI on MariaDB
    with mysqlclient, test_contract's concurrent writers)."""
    if cached:
        sql_driver.record_events([event(0)])

    class ClearedBetween:
        """The driver's type lock, as it is when another thread clears the cache between
        any two of this one's turns with it: cleared right after each release."""

        def __init__(self) -> None:
            self.lock = threading.Lock()

        def __enter__(self) -> None:
            self.lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self.lock.release()
            with self.lock:
                sql_driver._type_ids.clear()

    monkeypatch.setattr(sql_driver, "_type_lock", ClearedBetween())
    ids = sql_driver._event_type_ids({"compute.instance.create.end", "volume.create.end"})
    assert set(ids) == {"compute.instance.create.end", "volume.create.end"}
    assert sql_driver.record_events([event(1), event(2, "volume.create.end")]).stored == 2
    with sql_driver.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(t.event_type.c.name, t.event_type.c.id)).all())
    assert ids == {name: stored[name] for name in ids}
    got = [(e.message_id, e.event_type) for e in sql_driver.get_events(EventQuery())]
    assert got == [("m-00000", "compute.instance.create.end")] * cached + [
        ("m-00001", "compute.instance.create.end"),
        ("m-00002", "volume.create.end"),
    ]


def test_an_event_type_pruned_while_a_writer_looks_it_up(
    sql_driver: SQLDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The type is stored but not cached; an expirer prunes it between the writer's
    insert-if-missing and its read of the id: the lookup fails as a write conflict, and
    record_events writes the batch again, inserting the type anew."""
    sql_driver.record_events([event(1, "short.lived")])
    with sql_driver.engine.begin() as conn:
        _delete_event(conn, _row_id(conn, "m-00001"))
    sql_driver._type_ids.clear()
    insert_ignore = sql_driver._insert_ignore
    calls: list[str] = []

    def pruned_first(table: sa.Table) -> object:
        calls.append(table.name)
        if len(calls) == 1:  # the stored row is kept, then the expirer removes it
            return t.event_type.delete().where(t.event_type.c.name == sa.bindparam("name"))
        return insert_ignore(table)

    monkeypatch.setattr(sql_driver, "_insert_ignore", pruned_first)
    with pytest.raises(sa.exc.IntegrityError, match="are gone"):
        sql_driver._event_type_ids({"short.lived", "kept"})
    assert sql_driver._type_ids == {}  # nothing cached from the failed lookup
    calls.clear()
    # Inside record_events: the first lookup fails alike, and the batch is written again.
    assert sql_driver.record_events([replace(event(2, "short.lived"), traits=())]).stored == 1
    assert calls == ["event_type", "event_type"]
    assert _type_of_every_event(sql_driver) == [("m-00002", "short.lived")]
    assert sql_driver.get_event_types(ALL) == ["short.lived"]


def _delete_event(conn: sa.Connection, event_id: int) -> None:
    """What expiry deletes of one event: its trait rows and its row."""
    for table in t.TRAIT_TABLES.values():
        conn.execute(table.delete().where(table.c.event_id == event_id))
    conn.execute(t.event.delete().where(t.event.c.id == event_id))


def _row_id(conn: sa.Connection, message_id: str) -> int:
    row_id = conn.execute(sa.select(t.event.c.id).where(t.event.c.message_id == message_id))
    return int(row_id.scalar_one())


def _type_of_every_event(drv: SQLDriver) -> list[tuple[str, str | None]]:
    """(message_id, event type name) of every event row, the name None for an event whose
    event type row is gone."""
    with drv.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.event.c.message_id, t.event_type.c.name)
            .select_from(t.event.outerjoin(t.event_type))
            .order_by(t.event.c.message_id)
        ).all()
    return [(m, name) for m, name in rows]


def test_a_writer_whose_event_type_another_process_pruned(database_url: str) -> None:
    """The expirer (another process) prunes an event type whose id a writer has cached: the
    writer's next event of that type gets the type back, under a new id, never a dangling
    one (PostgreSQL and MySQL keep no foreign key from event to event_type since 0009)."""
    writer, expirer = get_driver(database_url), get_driver(database_url)
    assert isinstance(writer, SQLDriver) and isinstance(expirer, SQLDriver)
    try:
        writer.upgrade()
        writer.record_events([event(1, "short.lived"), event(2, "kept")])
        old_id = writer._type_ids["short.lived"]
        with expirer.engine.begin() as conn:  # expired, then pruned
            _delete_event(conn, _row_id(conn, "m-00001"))
        assert expirer._prune_metadata({"short.lived", "kept"})[0] == ("short.lived",)
        assert writer._type_ids["short.lived"] == old_id  # stale
        # No traits: the catalogue's own foreign key must not be what catches the stale id.
        assert writer.record_events([replace(event(3, "short.lived"), traits=())]).stored == 1
        assert _type_of_every_event(writer) == [("m-00002", "kept"), ("m-00003", "short.lived")]
        assert writer.get_event_types(ALL) == ["kept", "short.lived"]
    finally:
        writer.close()
        expirer.close()


@pytest.mark.backends("postgresql", "mysql")
@pytest.mark.parametrize("pruned", [True, False], ids=["pruned", "kept"])
def test_a_writer_waits_for_a_prune_in_progress(database_url: str, pruned: bool) -> None:
    """A prune holds its event type row (FOR UPDATE) while it decides: a writer with events
    of that type waits for it, then stores them under the type's id, or under a new one
    when the prune removed the type."""
    writer, expirer = get_driver(database_url), get_driver(database_url)
    assert isinstance(writer, SQLDriver) and isinstance(expirer, SQLDriver)
    done: list[int] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            # No traits: the catalogue's foreign key must not be what catches a stale id.
            done.append(writer.record_events([replace(event(2, "busy.type"), traits=())]).stored)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        writer.upgrade()
        writer.record_events([event(1, "busy.type")])
        with expirer.engine.connect() as conn:
            tx = conn.begin()
            type_id = conn.execute(
                sa.select(t.event_type.c.id)
                .where(t.event_type.c.name == "busy.type")
                .with_for_update()
            ).scalar()
            if pruned:
                _delete_event(conn, _row_id(conn, "m-00001"))
                conn.execute(t.trait_type.delete().where(t.trait_type.c.event_type_id == type_id))
                conn.execute(t.event_type.delete().where(t.event_type.c.id == type_id))
            thread = threading.Thread(target=write)
            thread.start()
            thread.join(1.0)
            assert thread.is_alive(), "the writer did not wait for the prune"
            tx.commit()
        thread.join(30)
        assert not errors, errors
        assert done == [1]
        expected = [("m-00002", "busy.type")]
        if not pruned:
            expected.insert(0, ("m-00001", "busy.type"))
        assert _type_of_every_event(writer) == expected
        assert (writer._type_ids["busy.type"] != type_id) is pruned
    finally:
        writer.close()
        expirer.close()


def tagged(n: int, tag: str = "fine") -> Event:
    """event(n) with string traits besides the owners (trait_string rows, which PostgreSQL
    writes over a second connection), one of them ``tag``."""
    base = event(n)
    strings = (Trait("host", TraitType.STRING, f"h{n % 7}"), Trait("tag", TraitType.STRING, tag))
    return replace(base, traits=(*base.traits, *strings))


#: A row the database itself refuses: a trigger on ``table`` (per engine) rejecting the
#: value "boom" in ``column``.
REFUSALS = {
    "sqlite": (
        "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} WHEN NEW.{column} = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    ),
    "postgresql": (
        "CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.{column} = 'boom' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW "
        "EXECUTE FUNCTION refuse_{table}()",
    ),
    "mysql": (
        "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW "
        "BEGIN IF NEW.{column} = 'boom' THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF; END",
    ),
}


def _refuse(drv: SQLDriver, table: str, column: str) -> None:
    with drv.engine.begin() as conn:
        for statement in REFUSALS[drv.dialect_name]:
            conn.exec_driver_sql(statement.format(table=table, column=column))


def _row_counts(drv: SQLDriver) -> dict[str, int]:
    tables = [t.event, *t.TRAIT_TABLES.values()]
    with drv.engine.connect() as conn:
        return {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in tables
        }


def _string_rows(drv: SQLDriver) -> set[tuple[str, str, str]]:
    ev, ts = t.event, t.trait_string
    with drv.engine.connect() as conn:
        rows = conn.execute(
            sa.select(ev.c.message_id, ts.c.name, ts.c.value).join(ev, ev.c.id == ts.c.event_id)
        )
        return {(m, n, v) for m, n, v in rows}


@pytest.mark.parametrize(
    ("table", "column"),
    [("event", "message_id"), ("trait_string", "value"), ("trait_integer", "name")],
)
def test_a_refused_row_stores_nothing_of_its_batch(
    sql_driver: SQLDriver, table: str, column: str
) -> None:
    """The database refuses one row late in a batch: an event row, a string trait row or an
    integer trait row (PostgreSQL writes the string trait rows over a second connection, in a
    transaction of their own, the integer ones after the events): nothing of the batch is
    stored, in any table, and the batches around it are whole."""
    sql_driver.record_events([tagged(n) for n in range(10)])
    before = _row_counts(sql_driver)
    _refuse(sql_driver, table, column)
    bad = tagged(700, tag="boom")
    if table == "event":
        bad = replace(bad, message_id="boom")
    elif table == "trait_integer":
        bad = replace(bad, traits=(*bad.traits, Trait("boom", TraitType.INTEGER, 1)))
    sent = (
        [tagged(n) for n in range(100, 100 + 2 * SPREAD)]
        + [bad]
        + [tagged(n) for n in range(900, 950)]
    )
    with pytest.raises(StorageError, match="refused by the test"):
        sql_driver.record_events(sent)
    assert _row_counts(sql_driver) == before
    assert sql_driver.record_events([tagged(n) for n in range(10, 20)]).stored == 10
    check_stored(sql_driver, list(range(20)), tagged)
    assert _string_rows(sql_driver) == {
        (f"m-{n:05d}", name, value)
        for n in range(20)
        for name, value in (("host", f"h{n % 7}"), ("tag", "fine"))
    }
    assert _row_counts(sql_driver)["trait_string"] == 40  # no row without its event


def test_a_batch_written_again_leaves_no_trait_rows_behind(sql_driver: SQLDriver) -> None:
    """A batch holding stored events fails on the unique message_id index after its string
    trait rows were sent (PostgreSQL: over the second connection) and is written again,
    probing: the string trait rows are exactly those of the stored events."""
    sql_driver.record_events([tagged(n) for n in range(0, 300, 2)])
    result = sql_driver.record_events([tagged(n) for n in range(300)])
    assert result.stored == 150
    assert len(result.duplicates) == 150
    check_stored(sql_driver, list(range(300)), tagged)
    assert _row_counts(sql_driver)["trait_string"] == 600
    assert len(_string_rows(sql_driver)) == 600
