"""The SQL storage driver (SQLAlchemy 2 Core) for SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import resources
from typing import Any, ClassVar, TypeVar

import orjson
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.sql.elements import ColumnElement

from annals import timeutil
from annals.errors import InvalidMarker, StorageError, StorageUnavailable
from annals.models import (
    BY_NAME_AND_TYPE,
    OWNER_TRAITS,
    Event,
    RawJSON,
    RecordResult,
    StoredTraits,
    Trait,
    TraitDescription,
    TraitType,
    TraitValue,
    encode_traits,
    new_trait,
)
from annals.query import (
    INT64_MAX,
    INT64_MIN,
    EventQuery,
    Op,
    Scope,
    ScopeKind,
    SortKey,
    TraitFilter,
)
from annals.storage.base import StorageDriver
from annals.storage.sql import tables as t
from annals.storage.sql.dberrors import Failure, classify
from annals.storage.sql.sqlite_wal import WalCheckpointer

LOG = logging.getLogger(__name__)

#: The driver used when a URL names only the engine (``mysql://``, ``postgresql://``).
DEFAULT_DBAPI = {"mysql": "pymysql", "mariadb": "pymysql", "postgresql": "psycopg"}
#: Rows per statement when a list of keys goes into an ``IN (...)``.
IN_CHUNK = 500
#: Bounds of the number of matches below which a trait filter drives the query (see
#: _selectivity_cutoff: sqrt(page limit x events), 10,000 for pages of 100 among 1M events).
MIN_SELECTIVE_TRAIT_ROWS = 1_000
MAX_SELECTIVE_TRAIT_ROWS = 100_000
#: PostgreSQL pages larger than this are fetched through a server-side cursor.
STREAM_ROWS_ABOVE = 1000
#: A pooled connection idle this long (seconds) is pinged before use (_ping_when_idle).
PING_IF_IDLE_FOR = 1.0
WRITE_ATTEMPTS = 5
#: SQLite: rows per multi-row INSERT of a batch's rows (_insert_sqlite).
SQLITE_ROWS_PER_INSERT = 500
#: ... for rows of at most this many columns (trait rows); wider ones one row at a time.
SQLITE_MULTI_ROW_WIDTH = 3

_T = TypeVar("_T")

OPERATORS: dict[Op, Callable[[Any, Any], ColumnElement[bool]]] = {
    Op.LT: lambda col, v: col < v,
    Op.LE: lambda col, v: col <= v,
    Op.EQ: lambda col, v: col == v,
    Op.NE: lambda col, v: col != v,
    Op.GE: lambda col, v: col >= v,
    Op.GT: lambda col, v: col > v,
}


def normalise_url(url: str) -> sa.URL:
    """Pick our DB-API driver when the URL names none, and utf8mb4 for MySQL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    if "+" not in parsed.drivername and backend in DEFAULT_DBAPI:
        parsed = parsed.set(drivername=f"{backend}+{DEFAULT_DBAPI[backend]}")
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


class WriteConflict(StorageUnavailable):
    """A deadlock, lock timeout or serialization failure: retrying the transaction helps."""


class ConnectionLost(StorageUnavailable):
    """The connection broke under a statement (SQLAlchemy discarded it, and the rest of the
    pool): a read can be run again on a new one."""


def _sqlite_on_disk(url: sa.URL) -> bool:
    """Whether a SQLite URL names a database on disk (WAL mode) rather than memory."""
    return url.database not in (None, "", ":memory:")


def _sqlite_file(url: sa.URL) -> bool:
    """Whether a SQLite URL names a plain database file on disk (not a ``file:`` URI)."""
    return _sqlite_on_disk(url) and not url.query.get("uri")


def _chunks(items: Sequence[_T], size: int = IN_CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _from_micros(value: Any) -> TraitValue:
    return timeutil.from_micros(int(value))


#: Stored value -> TraitValue, per trait table.
LOADERS: dict[TraitType, Callable[[Any], TraitValue]] = {
    TraitType.STRING: str,
    TraitType.INTEGER: int,
    TraitType.FLOAT: float,
    TraitType.DATETIME: _from_micros,
}


#: SQLite: the largest event id in use, by an event or by a trait row (one index probe each).
_TRAIT_TOPS = " UNION ALL ".join(
    f"SELECT max(event_id) FROM {table.name}" for table in t.TRAIT_TABLES.values()
)
SQLITE_LARGEST_ID = f"SELECT max(m) FROM (SELECT max(id) AS m FROM event UNION ALL {_TRAIT_TOPS})"


#: String traits stored as columns of their event, not as trait_string rows (migration 0004):
#: every request's visibility scope tests them, and each was a second index entry per event.
OWNER_COLUMNS: dict[str, sa.Column[Any]] = {name: t.event.c[name] for name in OWNER_TRAITS}


def _owner_traits(project_id: str | None, user_id: str | None, same: dict[str, str]) -> list[Trait]:
    """The owner traits an event row holds in its columns (values shared through ``same``,
    as :meth:`SQLDriver._page_details` shares the other traits' values)."""
    found = []
    for name, value in zip(OWNER_TRAITS, (project_id, user_id), strict=True):
        if value is not None:
            found.append(new_trait(Trait, (name, TraitType.STRING, same.setdefault(value, value))))
    return found


def _event_types_gone(what: str, gone: Sequence[Any]) -> sa_exc.IntegrityError:
    """The error a writer raises on finding event types of its batch pruned by an expirer
    (``gone``: their names or ids, as ``what`` says): an IntegrityError, as the foreign key
    violation it replaces, so that record_events writes the batch again with fresh ids."""
    return sa_exc.IntegrityError(
        "SELECT id FROM event_type", gone, Exception(f"{what} {gone} are gone")
    )


def _filter_value(trait_type: TraitType, value: TraitValue) -> TraitValue | int:
    if trait_type is TraitType.DATETIME:
        assert not isinstance(value, (str, int, float))
        return timeutil.to_micros(value)
    return value


def _sqlite_day(micros: ColumnElement[Any]) -> ColumnElement[int]:
    """SQLite: the day of a ``generated`` value, as the day indexes write it (0006)."""
    return micros.op("/", return_type=sa.BigInteger)(sa.literal_column(str(t.SQLITE_DAY_MICROS)))


#: SQLite: the day of an event row, written exactly as the day indexes' leading expression
#: (0006), so that queries ordered or filtered by it use them.
EVENT_DAY = _sqlite_day(t.event.c.generated)


def _consecutive(
    name: str, label: str, first: ColumnElement[int], last: ColumnElement[int]
) -> sa.Select[Any]:
    """The integers from ``first`` to ``last``, in order: a SELECT of a recursive CTE (SQLite
    reads an IN list of it in order)."""
    start = sa.select(first.label(label)).cte(name, recursive=True)
    step = sa.select((start.c[label] + 1).label(label)).where(start.c[label] < last)
    return sa.select(start.union_all(step).c[label])


def _on_stored_days() -> ColumnElement[bool]:
    """SQLite: the event's day is one of those from the first stored event to the last, of
    those generated within the ``stored_days_low``..``stored_days_high`` parameters
    (microseconds; every event unless the statement is given other values, see
    stored_days_params).

    A recursive CTE makes the days, in order; SQLite reads an IN list in order, so a
    statement ordered by (day, generated, message_id) walks a day index one day after the
    other, an equality on the owner within each day, and stops at its limit. The first and
    last events are two probes of the ``generated`` index. Built once: a statement that
    uses it costs its compiled form's cache lookup, not a new CTE.
    """
    bounds = t.event.alias("day_bounds")
    within = (
        bounds.c.generated >= sa.bindparam("stored_days_low", INT64_MIN, type_=sa.BigInteger),
        bounds.c.generated <= sa.bindparam("stored_days_high", INT64_MAX, type_=sa.BigInteger),
    )
    first = sa.select(sa.func.min(bounds.c.generated)).where(*within).scalar_subquery()
    last = sa.select(sa.func.max(bounds.c.generated)).where(*within).scalar_subquery()
    days = _consecutive("stored_days", "day", _sqlite_day(first), _sqlite_day(last))
    return EVENT_DAY.in_(days)


def _sqlite_bucket(event_id: ColumnElement[Any]) -> ColumnElement[int]:
    """SQLite: the bucket of an event id, as the trait value indexes write it (0007)."""
    return event_id.op(">>", return_type=sa.BigInteger)(
        sa.literal_column(str(t.SQLITE_ID_BUCKET_BITS))
    )


def _on_stored_buckets(table: sa.Table) -> ColumnElement[bool]:
    """SQLite: a trait row's event id bucket is one of those from the table's first event id
    to its last (two probes of its primary key), made by a recursive CTE: a trait filter
    then seeks (name, bucket, value) once per bucket in the value index."""
    bounds = table.alias(f"{table.name}_bounds")
    first = sa.select(sa.func.min(bounds.c.event_id)).scalar_subquery()
    last = sa.select(sa.func.max(bounds.c.event_id)).scalar_subquery()
    buckets = _consecutive(
        f"{table.name}_buckets", "bucket", _sqlite_bucket(first), _sqlite_bucket(last)
    )
    return _sqlite_bucket(table.c.event_id).in_(buckets)


def stored_days_params(low: int | None, high: int | None) -> dict[str, int]:
    """Parameters of a statement with ON_STORED_DAYS for the days of the events generated
    within ``low``..``high`` microseconds (None: unbounded)."""
    return {
        "stored_days_low": INT64_MIN if low is None else low,
        "stored_days_high": INT64_MAX if high is None else high,
    }


class SQLDriver(StorageDriver):
    schemes: ClassVar[tuple[str, ...]] = ("sqlite", "postgresql", "mysql", "mariadb")

    def __init__(self, url: str, pool_size: int = 10, pool_timeout: int = 30) -> None:
        super().__init__(url)
        self.sa_url = normalise_url(url)
        self.dialect_name = self.sa_url.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect_name == "sqlite":
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
            kwargs["pool_pre_ping"] = True
        else:
            if self.dialect_name in ("mysql", "mariadb"):
                # As PostgreSQL: no gap locks between the expirer's range deletes and writers.
                kwargs["isolation_level"] = "READ COMMITTED"
            kwargs.update(
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=pool_timeout,
                pool_recycle=3600,
            )
        self.engine: Engine = sa.create_engine(self.sa_url, **kwargs)
        if self.dialect_name != "sqlite":
            self._ping_when_idle(self.engine)
        #: SQLite file databases: WAL checkpoints run in a thread, woken by write commits.
        self._checkpointer: WalCheckpointer | None = None
        if self.dialect_name == "sqlite":
            self._configure_sqlite(self.engine)
            if _sqlite_file(self.sa_url):
                self._checkpointer = WalCheckpointer(os.path.abspath(str(self.sa_url.database)))
        elif self.dialect_name in ("mysql", "mariadb"):
            self._configure_mariadb(self.engine)
        else:
            self._configure_postgresql(self.engine)
        #: PostgreSQL: the pool of the writers' second connections, which carry a batch's
        #: string trait rows while the first carries its event rows (_copy_postgresql). A
        #: pool of its own: a writer holds a connection of the first pool while it takes
        #: one of this one, never the other way round, so writers cannot wait on each other.
        #: Pinged at every checkout (one round trip per batch): a second stale connection
        #: after a database restart would otherwise fail the write that record_events has
        #: already retried once for the first.
        self._side_engine: Engine | None = None
        if self.dialect_name == "postgresql":
            self._side_engine = sa.create_engine(self.sa_url, pool_pre_ping=True, **kwargs)
            self._configure_postgresql(self._side_engine)
        self._type_ids: dict[str, int] = {}
        self._type_lock = threading.Lock()

    # --- engine plumbing ------------------------------------------------------------------

    @staticmethod
    def _ping_when_idle(engine: Engine) -> None:
        """A pooled connection is checked (one round trip) before use only when it has been
        idle for PING_IF_IDLE_FOR seconds or more.

        SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip per
        request. A connection used a moment ago is as good as a ping. Should it have died
        since anyway (the server restarted in that moment), the request's first statement
        fails as a disconnect: SQLAlchemy then discards every connection of the pool, and
        the read or write is run once more on a new one (_reading, record_events).
        """

        @sa.event.listens_for(engine, "checkin")
        def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
            record.info["annals_idle_since"] = time.monotonic()

        @sa.event.listens_for(engine, "checkout")
        def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            idle_since = record.info.pop("annals_idle_since", None)
            if idle_since is None or time.monotonic() - idle_since < PING_IF_IDLE_FOR:
                return  # new, or used a moment ago
            dialect = engine.dialect
            try:
                dialect.do_ping(dbapi_conn)
            except dialect.loaded_dbapi.Error as exc:
                if dialect.is_disconnect(exc, dbapi_conn, None):
                    # As pool_pre_ping: reconnect, and drop the rest of the pool too.
                    raise sa_exc.InvalidatePoolError(str(exc)) from exc
                raise

    @staticmethod
    def _configure_mariadb(engine: Engine) -> None:
        """MariaDB: keep EXISTS a correlated subquery.

        The driver writes EXISTS only for a trait filter that matches many events (see
        _selectivity_cutoff), to be checked per event while the events are read in sort
        order up to the page limit. MariaDB's exists_to_in rewrites it into a semi-join that
        sorts every match instead (1.6 s instead of 3 ms at 100k events).
        """

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            if "mariadb" in str(dbapi_conn.get_server_info()).lower():
                cur = dbapi_conn.cursor()
                cur.execute("SET SESSION optimizer_switch='exists_to_in=off'")
                cur.close()

    @staticmethod
    def _configure_postgresql(engine: Engine) -> None:
        """PostgreSQL: no parallel workers for Annals' sessions.

        Every listing reads a page of at most ``limit`` events in index order and stops;
        when the planner expects to walk far for it (a trait filter that matches few events,
        probed event by event), it plans a parallel scan, and starting the workers costs
        more than the scan: 6.9 ms instead of 1.9 ms for ``memory_mb ge`` a value 7% of the
        events reach, at 100k events.
        """

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("SET max_parallel_workers_per_gather = 0")
            cur.close()
            dbapi_conn.commit()

    @staticmethod
    def _configure_sqlite(engine: Engine) -> None:
        """WAL, durable commits, foreign keys, and BEGIN IMMEDIATE for writes.

        pysqlite's own transaction handling is switched off so that SQLAlchemy's BEGIN is the
        one that runs; writers take the write lock up front and wait for it (busy timeout)
        instead of failing on a lock upgrade.
        """

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if _sqlite_on_disk(engine.url):
                cur.execute("PRAGMA journal_mode=WAL")
                # Checkpoints normally run in the background (WalCheckpointer, every few
                # write commits). This is the writers' own backstop, for when that thread
                # falls behind: ~100 MB of WAL rather than SQLite's 4 MB, which one batch
                # of 1,000 events exceeds (~3,200 pages), and above what the checkpointer
                # lets build up between its runs. Commits fsync the WAL either way (FULL).
                cur.execute("PRAGMA wal_autocheckpoint=25000")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("annals_write", False)
            # A batch of 1,000 events dirties ~4,000 index pages: with SQLite's 2 MB page
            # cache, most of them were read again from the WAL as the insert went on. Writes
            # get 16 MiB; the next read on the connection trims it back to the default.
            if write != conn.info.get("annals_write_cache", False):
                conn.exec_driver_sql(f"PRAGMA cache_size={-16384 if write else -2000}")
                conn.info["annals_write_cache"] = write
            if write:
                SQLDriver._begin_immediate(conn)
            else:
                conn.exec_driver_sql("BEGIN")

    @staticmethod
    def _begin_immediate(conn: Connection) -> None:
        """BEGIN IMMEDIATE, taking the write lock within a few ms of another writer's commit.

        SQLite's own busy handler sleeps ever longer (1, 2, 5, 10, 15, 20, 25, 25, ... ms)
        while it waits: a writer queued behind a 60 ms batch could start ~25 ms after the
        lock was free, and two API workers writing at once were slower than one. Here the
        wait is polled every millisecond (for up to the usual 30 s); the last try is the
        plain statement with the full busy timeout, whose error (if any) surfaces as before.
        """
        dbapi_conn: Any = conn.connection.dbapi_connection
        busy = conn.engine.dialect.loaded_dbapi.OperationalError
        deadline = time.monotonic() + 30
        dbapi_conn.execute("PRAGMA busy_timeout=1")
        try:
            while time.monotonic() < deadline:
                try:
                    dbapi_conn.execute("BEGIN IMMEDIATE")
                    return
                except busy as exc:
                    if classify(exc) is not Failure.CONFLICT:  # not SQLITE_BUSY/LOCKED
                        break
                time.sleep(0.001)
        finally:
            dbapi_conn.execute("PRAGMA busy_timeout=30000")
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    @contextlib.contextmanager
    def _tx(
        self, write: bool = False, autocommit: bool = False, engine: Engine | None = None
    ) -> Iterator[Connection]:
        """A transaction, with database failures mapped to storage errors.

        IntegrityError passes through (writers retry on it); deadlocks and lock timeouts
        become WriteConflict (retried too); everything else is StorageUnavailable (cannot
        reach the database: 503, retry later) or StorageError (the database refused).

        ``autocommit`` (reads, PostgreSQL): no BEGIN and COMMIT around the statements, two
        round trips fewer. Each statement still sees one snapshot, as every statement of a
        READ COMMITTED transaction does: what a read needs consistent is one statement.
        """
        connected = False
        try:
            with (engine or self.engine).connect() as raw_conn:
                connected = True
                conn = raw_conn
                if write:
                    conn = raw_conn.execution_options(annals_write=True)
                elif autocommit and self.dialect_name == "postgresql":
                    conn = raw_conn.execution_options(isolation_level="AUTOCOMMIT")
                with conn.begin():
                    yield conn
        except sa_exc.IntegrityError:
            raise
        except sa_exc.DBAPIError as exc:
            raise self._storage_error(exc, connected) from exc
        if write and self._checkpointer is not None:
            self._checkpointer.wake()

    def _reading(self, work: Callable[[Connection], _T], autocommit: bool = True) -> _T:
        """``work`` in a read (see _tx for ``autocommit``), run once more when the connection
        broke under it: a pooled connection is not pinged when it was used a moment ago
        (_ping_when_idle), and may still have died since, with a database restart."""
        try:
            with self._tx(autocommit=autocommit) as conn:
                return work(conn)
        except ConnectionLost as exc:
            LOG.info("reading again on a new connection: %s", exc.message)
        with self._tx(autocommit=autocommit) as conn:
            return work(conn)

    @staticmethod
    def _storage_error(exc: sa_exc.DBAPIError, connected: bool = True) -> Exception:
        """The storage error for a database error, by the engine's error code (dberrors);
        an error without one (the client library's own: a connection already closed, a
        host that does not answer) is an outage if its DB-API class says so. A connection
        that broke once in use is ConnectionLost; one that could not be made is not."""
        text = str(exc.orig)
        failure = classify(exc.orig)
        if failure is Failure.CONFLICT:
            return WriteConflict(f"Transaction conflict: {text}")
        if failure is Failure.REFUSED:
            return StorageError(f"Database refused the write: {text}")
        uncoded_outage = failure is None and isinstance(
            exc, (sa_exc.OperationalError, sa_exc.InterfaceError)
        )
        if exc.connection_invalidated and connected:
            return ConnectionLost(f"Database unavailable: {text}")
        if failure is Failure.UNAVAILABLE or uncoded_outage or exc.connection_invalidated:
            return StorageUnavailable(f"Database unavailable: {text}")
        return StorageError(f"Database error: {text}")

    def _insert_ignore(self, table: sa.Table) -> Any:
        """INSERT that silently skips rows whose key already exists."""
        if self.dialect_name == "postgresql":
            return pg_dialect.insert(table).on_conflict_do_nothing()
        if self.dialect_name == "sqlite":
            return sqlite_dialect.insert(table).on_conflict_do_nothing()
        # MySQL has no DO NOTHING: assign a key column to itself, which changes nothing.
        first_key = next(iter(table.primary_key.columns))
        return mysql_dialect.insert(table).on_duplicate_key_update({first_key.name: first_key})

    # --- schema -----------------------------------------------------------------------------

    @staticmethod
    def _alembic_config(conn: Connection) -> AlembicConfig:
        ini = resources.files("annals.storage.sql") / "alembic.ini"
        config = AlembicConfig(str(ini))
        config.attributes["connection"] = conn
        return config

    def upgrade(self) -> None:
        try:
            with self.engine.begin() as conn:
                if self.dialect_name == "postgresql":
                    # Two dbsync runs at once: the second waits, then finds nothing to do.
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(827013)")
                alembic_command.upgrade(self._alembic_config(conn), "head")
        except sa_exc.DBAPIError as exc:
            raise self._storage_error(exc) from exc

    def schema_is_current(self) -> bool:
        with self._tx() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            head = ScriptDirectory.from_config(self._alembic_config(conn)).get_current_head()
        return current is not None and current == head

    def ping(self) -> None:
        # Through _reading: a pooled connection the database closed (a restart, sessions
        # ended) since its last use is replaced once, not reported as an outage.
        self._reading(lambda conn: conn.execute(sa.text("SELECT 1")))

    def clear(self) -> None:
        with self._tx(write=True) as conn:
            for table in reversed(t.metadata.sorted_tables):
                conn.execute(table.delete())
        with self._type_lock:
            self._type_ids.clear()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.engine.dispose()
        if self._side_engine is not None:
            self._side_engine.dispose()

    def storage_capabilities(self) -> dict[str, bool]:
        # SQLite is a single file on one host with one writer at a time: fine for a lab or a
        # small cloud, not what we call production-ready.
        return {"storage:production_ready": self.dialect_name != "sqlite"}

    # --- writes -----------------------------------------------------------------------------

    def record_events(self, events: Sequence[Event]) -> RecordResult:
        unique: dict[str, Event] = {}
        repeated: list[str] = []
        for ev in events:
            if ev.message_id in unique:
                repeated.append(ev.message_id)
            else:
                unique[ev.message_id] = ev
        if not unique:
            return RecordResult(0, tuple(repeated))
        reconnected = False
        # Optimistic unless the last batch held stored events: no probe of the message_id
        # index before the insert, whose unique index rejects a stored one anyway (then
        # the batch is written again, probing). A publisher's retry is the exception.
        probe = self._probe_next
        attempt = 0
        while True:
            attempt += 1
            try:
                type_ids = self._event_type_ids({ev.event_type for ev in unique.values()})
                with self._tx(write=True) as conn:
                    stored, existing = self._write_batch(
                        conn, list(unique.values()), type_ids, probe
                    )
                self._probe_next = bool(existing)
                return RecordResult(stored, tuple(existing + repeated))
            except sa_exc.IntegrityError as exc:
                # A stored message_id (not probed for, or stored by a concurrent writer since
                # the probe) or an event type an expirer removed since we cached its id
                # (see _lock_event_types): retry from scratch, probing.
                with self._type_lock:
                    self._type_ids.clear()
                if not probe:
                    probe = self._probe_next = True
                    attempt -= 1  # the expected way to meet a duplicate: not a conflict
                    LOG.debug("writing the batch again, probing: %s", exc.orig)
                    continue
                if attempt == WRITE_ATTEMPTS:
                    raise StorageError(f"Could not store events: {exc.orig}") from exc
                LOG.info("retrying batch after a write conflict: %s", exc.orig)
            except ConnectionLost as exc:
                # A pooled connection that died since its last use (see _reading). Once:
                # the database may be down. Should the commit itself have been lost, the
                # batch was stored, and this attempt reports its events as duplicates, as
                # the client's own retry after a 503 would.
                if reconnected or attempt == WRITE_ATTEMPTS:
                    raise
                reconnected = True
                LOG.info("writing again on a new connection: %s", exc.message)
            except WriteConflict as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise
                LOG.info("retrying batch after %s", exc.message)
                time.sleep(0.05 * attempt)

    def _event_type_ids(self, names: Iterable[str]) -> dict[str, int]:
        """The ids of the event types ``names``, inserting those not stored yet.

        Built from one look at the shared cache plus what this call read: another writer of
        this process may clear the cache at any moment (record_events, after an
        IntegrityError), so it is never read again for the answer.
        """
        wanted = set(names)
        with self._type_lock:
            known = {n: self._type_ids[n] for n in wanted if n in self._type_ids}
        missing = sorted(wanted - known.keys())
        if not missing:
            return known
        with self._tx(write=True) as conn:
            conn.execute(self._insert_ignore(t.event_type), [{"name": n} for n in missing])
            for chunk in _chunks(missing):
                rows = conn.execute(
                    sa.select(t.event_type.c.name, t.event_type.c.id).where(
                        t.event_type.c.name.in_(chunk)
                    )
                )
                known.update((name, type_id) for name, type_id in rows)
        gone = [n for n in missing if n not in known]
        if gone:
            # Pruned by an expirer between the insert and the read (PostgreSQL, MySQL):
            # record_events writes the batch again.
            raise _event_types_gone("event types", gone)
        with self._type_lock:
            self._type_ids.update((n, known[n]) for n in missing)
        return known

    def _write_batch(
        self, conn: Connection, events: list[Event], type_ids: dict[str, int], probe: bool
    ) -> tuple[int, list[str]]:
        ids = [ev.message_id for ev in events]
        existing = self._existing_message_ids(conn, ids) if probe else set()
        new = [ev for ev in events if ev.message_id not in existing] if existing else events
        if not new:
            return 0, [m for m in ids if m in existing]
        if self.dialect_name != "sqlite":
            self._lock_event_types(conn, {type_ids[ev.event_type] for ev in new})
        # SQLite and PostgreSQL: the ids are chosen before the insert (one query), so event
        # and trait rows are built in one pass and nothing is read back. MySQL: the trait
        # rows hold the event's position until the ids are read back after the insert.
        row_ids = self._new_event_ids(conn, len(new))
        trait_rows: dict[TraitType, list[tuple[Any, ...]]] = {tt: [] for tt in TraitType}
        catalogue: set[tuple[int, str, TraitType]] = set()
        event_rows: Iterable[tuple[Any, ...]]
        event_rows = self._event_rows(new, row_ids, type_ids, trait_rows, catalogue)
        columns = (
            "message_id",
            "event_type_id",
            "generated",
            "project_id",
            "user_id",
            "raw",
            "traits",
        )
        if self._side_engine is not None:
            self._copy_postgresql(conn, ("id", *columns), event_rows, trait_rows, catalogue)
        else:
            event_rows = list(event_rows)
            self._insert_rows(conn, t.event, ("id", *columns) if row_ids else columns, event_rows)
            if not row_ids:
                stored = self._stored_event_ids(conn, [ev.message_id for ev in new])
                by_position = [stored[ev.message_id] for ev in new]
                for kind, rows in trait_rows.items():
                    trait_rows[kind] = [
                        (by_position[pos], name, value) for pos, name, value in rows
                    ]
            self._insert_traits(conn, trait_rows, catalogue)
        return len(new), [m for m in ids if m in existing]

    def _insert_traits(
        self,
        conn: Connection,
        trait_rows: dict[TraitType, list[tuple[Any, ...]]],
        catalogue: set[tuple[int, str, TraitType]],
    ) -> None:
        """The batch's trait rows in ``trait_rows`` and its catalogue entries, on ``conn``."""
        for trait_type, values in trait_rows.items():
            if values:
                self._insert_rows(
                    conn, t.TRAIT_TABLES[trait_type], ("event_id", "name", "value"), values
                )
        if catalogue:
            self._record_catalogue(conn, sorted((a, b, int(c)) for a, b, c in catalogue))

    def _copy_postgresql(
        self,
        conn: Connection,
        columns: Sequence[str],
        event_rows: Iterator[tuple[Any, ...]],
        trait_rows: dict[TraitType, list[tuple[Any, ...]]],
        catalogue: set[tuple[int, str, TraitType]],
    ) -> None:
        """PostgreSQL: a batch's rows over two connections, so that two server processes
        insert them at once, while this one makes them.

        ``conn`` (the batch's transaction) COPYs the event rows as they are made; a second
        connection, from ``_side_engine``, COPYs each event's string trait rows right after
        its event row. The other trait rows and the catalogue follow on ``conn``. The index
        inserts of the event rows and those of the string trait rows (each about half of
        the server's work) then run in two backends instead of one after the other.

        Two transactions, committed in order: the trait rows first, then ``conn``'s (by the
        caller) with the events. Every read reaches trait rows through their event (a join
        or a probe by event id), so rows whose event is not committed yet are seen by
        nobody; a failure before the first commit rolls both back. A failure of the last
        commit alone (the connection lost at that moment) can leave string trait rows whose
        event was never stored: unreachable, never shown, never matched (event ids come from
        a sequence and are not given twice). The batch is acknowledged after both commits.
        """
        assert self._side_engine is not None
        dbapi_conn: Any = conn.connection.dbapi_connection
        event_copy = f"COPY event ({', '.join(columns)}) FROM STDIN"
        string_copy = "COPY trait_string (event_id, name, value) FROM STDIN"
        strings = trait_rows[TraitType.STRING]
        with self._tx(write=True, engine=self._side_engine) as side:
            side_conn: Any = side.connection.dbapi_connection
            try:
                with (
                    dbapi_conn.cursor() as cursor,
                    side_conn.cursor() as side_cursor,
                    cursor.copy(event_copy) as copy,
                    side_cursor.copy(string_copy) as side_copy,
                ):
                    write_event, write_string = copy.write_row, side_copy.write_row
                    for row in event_rows:  # each row adds its event's trait rows
                        write_event(row)
                        for string_row in strings:
                            write_string(string_row)
                        strings.clear()
            except self.engine.dialect.loaded_dbapi.Error as exc:
                raise self._dbapi_error(f"{event_copy}; {string_copy}", exc) from exc
            # Before the trait transaction commits: a refused row here leaves nothing behind.
            self._insert_traits(conn, trait_rows, catalogue)

    @staticmethod
    def _event_rows(
        new: list[Event],
        row_ids: list[int],
        type_ids: dict[str, int],
        trait_rows: dict[TraitType, list[tuple[Any, ...]]],
        catalogue: set[tuple[int, str, TraitType]],
    ) -> Iterator[tuple[Any, ...]]:
        """The event rows of ``new``, one at a time; each event's trait rows and catalogue
        entries are added to ``trait_rows`` and ``catalogue`` as its row is made.

        A generator so that on PostgreSQL this Python work runs while the server inserts
        the rows already sent: COPY streams them, and the server's index work for the event
        rows (the longest part of a batch) proceeds in its own process meanwhile.
        """
        append = {kind: rows.append for kind, rows in trait_rows.items()}
        add = catalogue.add
        string_type, integer_type, datetime_type = (
            TraitType.STRING,
            TraitType.INTEGER,
            TraitType.DATETIME,
        )
        add_string, add_integer = append[string_type], append[integer_type]
        to_micros, from_micros, dumps = timeutil.to_micros, timeutil.from_micros, orjson.dumps
        encode, owner_columns = encode_traits, OWNER_COLUMNS
        for position, ev in enumerate(new):
            event_id = row_ids[position] if row_ids else position
            type_id = type_ids[ev.event_type]
            owners: dict[str, str] = {}
            # The traits as they read back from their rows, for event.traits (0008): the
            # event's own Trait where its value is already the stored one (most of them).
            shown: list[tuple[str, TraitType, TraitValue]] = []
            keep = shown.append
            for trait in ev.traits:
                name, kind, value = trait
                stored: tuple[str, TraitType, TraitValue] = trait
                add((type_id, name, kind))
                # Strings and integers first, by identity: they are ~95% of all traits.
                if kind is string_type:
                    if type(value) is not str:
                        value = str(value)
                        stored = (name, kind, value)
                    if name in owner_columns:
                        # Stored in the event's own column only (migration 0004).
                        if name in owners:
                            raise StorageError(
                                f"event {ev.message_id} has two string traits named {name}"
                            )
                        owners[name] = value
                    else:
                        add_string((event_id, name, value))
                elif kind is integer_type:
                    if type(value) is not int:
                        assert not isinstance(value, dt.datetime)
                        value = int(value)
                        stored = (name, kind, value)
                    add_integer((event_id, name, value))
                elif kind is datetime_type:
                    assert isinstance(value, dt.datetime)
                    micros = to_micros(value)
                    append[kind]((event_id, name, micros))
                    stored = (name, kind, from_micros(micros))
                else:  # a float
                    # -0.0 is 0.0: SQLite keeps no negative zero, nor does any engine here
                    assert not isinstance(value, dt.datetime)
                    value = float(value) + 0.0
                    append[kind]((event_id, name, value))
                    stored = (name, kind, value)
                keep(stored)
            row = (
                ev.message_id,
                type_id,
                to_micros(ev.generated),
                owners.get("project_id"),
                owners.get("user_id"),
                raw.text if type(raw := ev.raw) is RawJSON else dumps(raw).decode(),
                encode(shown),
            )
            yield (event_id, *row) if row_ids else row

    #: PostgreSQL: the name of event.id's sequence (asked once).
    _event_id_sequence: str | None = None
    #: Probe for stored message ids before the next batch's insert (record_events).
    _probe_next = False

    def _lock_event_types(self, conn: Connection, type_ids: set[int]) -> None:
        """PostgreSQL and MySQL: share-lock the event type rows a batch refers to, as the
        per-row foreign key check did before migration 0009, once per batch.

        An expirer pruning one of them (``_prune_event_type``, FOR UPDATE) waits for this
        transaction to commit, and then sees its events; one that pruned it first makes this
        raise IntegrityError, and the batch is written again with fresh type ids. SQLite
        keeps the foreign key (one writer at a time; dropping it would copy the table).
        """
        keys = sorted(type_ids)
        where, params = self._in_condition("id", keys)
        lock = "FOR KEY SHARE" if self.dialect_name == "postgresql" else "LOCK IN SHARE MODE"
        found = self._fetch(conn, f"SELECT id FROM event_type WHERE {where} {lock}", params)
        if len(found) != len(keys):
            gone = sorted(set(keys) - {row[0] for row in found})
            raise _event_types_gone("event type ids", gone)

    def _existing_message_ids(self, conn: Connection, message_ids: list[str]) -> set[str]:
        """Those of ``message_ids`` already stored (probes of the unique index)."""
        existing: set[str] = set()
        # PostgreSQL takes the whole batch as one array; elsewhere IN lists of IN_CHUNK.
        chunks = [message_ids] if self.dialect_name == "postgresql" else _chunks(message_ids)
        for chunk in chunks:
            where, params = self._in_condition("message_id", chunk)
            found = self._fetch(conn, f"SELECT message_id FROM event WHERE {where}", params)
            existing.update(row[0] for row in found)
        return existing

    def _in_condition(self, column: str, keys: Sequence[Any]) -> tuple[str, Sequence[Any]]:
        """``column`` among ``keys`` for a statement run straight through the DB-API: the SQL
        condition and its parameters (``= ANY(array)`` on PostgreSQL, ``IN (...)`` elsewhere)."""
        if self.dialect_name == "postgresql":
            return f"{column} = ANY(%s)", [list(keys)]
        mark = "?" if self.dialect_name == "sqlite" else "%s"
        return f"{column} IN ({', '.join([mark] * len(keys))})", keys

    def _new_event_ids(self, conn: Connection, count: int) -> list[int]:
        """Ids for ``count`` new events, taken before they are inserted; [] on MySQL (its
        AUTO_INCREMENT gives them, read back after the insert).

        SQLite: this transaction holds the database's write lock (BEGIN IMMEDIATE), so the
        ids after the largest one are free, as SQLite itself would pick them; the largest
        one the trait tables use counts too, so that trait rows left by an event deleted
        behind the driver's back (no foreign key since 0003) cannot collide with a new
        event's (one index probe per table). PostgreSQL: values of the column's own
        sequence, which nobody else will ever be given.
        """
        if self.dialect_name == "sqlite":
            top = self._fetch(conn, SQLITE_LARGEST_ID, ())[0][0]
            first = (top or 0) + 1
            return list(range(first, first + count))
        if self.dialect_name == "postgresql":
            if self._event_id_sequence is None:
                self._event_id_sequence = self._fetch(
                    conn, "SELECT pg_get_serial_sequence('event', 'id')", ()
                )[0][0]
            rows = self._fetch(
                conn,
                "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                (self._event_id_sequence, count),
            )
            return [row[0] for row in rows]
        return []

    @staticmethod
    def _stored_event_ids(conn: Connection, message_ids: list[str]) -> dict[str, int]:
        row_ids: dict[str, int] = {}
        for chunk in _chunks(message_ids):
            rows = conn.execute(
                sa.select(t.event.c.message_id, t.event.c.id).where(t.event.c.message_id.in_(chunk))
            )
            row_ids.update({message_id: row_id for message_id, row_id in rows})
        return row_ids

    def _record_catalogue(self, conn: Connection, rows: list[tuple[int, str, int]]) -> None:
        """Add the (event type, trait name, type) rows that are not there yet.

        Not cached: the expirer (another process, often) may have pruned one since this
        process last wrote it; the insert runs after _lock_event_types, which waits for a
        prune of the batch's event types in progress (SQLite: one writer at a time).
        """
        if self.dialect_name == "postgresql":
            statement = (
                "INSERT INTO trait_type (event_type_id, name, type) "
                "SELECT * FROM unnest(%s::integer[], %s::text[], %s::smallint[]) "
                "ON CONFLICT DO NOTHING"
            )
            type_ids, names, kinds = (list(column) for column in zip(*rows, strict=True))
            self._fetch(conn, statement, (type_ids, names, kinds), rows_back=False)
        elif self.dialect_name == "sqlite":
            self._run_many(
                conn,
                "INSERT INTO trait_type (event_type_id, name, type) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                rows,
            )
        else:
            conn.execute(
                self._insert_ignore(t.trait_type),
                [{"event_type_id": a, "name": b, "type": c} for a, b, c in rows],
            )

    def _dbapi_error(self, statement: str, exc: Exception) -> sa_exc.StatementError:
        """A DB-API error as SQLAlchemy's exception (IntegrityError is retried)."""
        return sa_exc.DBAPIError.instance(
            statement, None, exc, self.engine.dialect.loaded_dbapi.Error
        )

    def _fetch(
        self,
        conn: Connection,
        statement: str,
        params: Sequence[Any] | dict[str, Any],
        rows_back: bool = True,
    ) -> list[Any]:
        """One statement straight through the DB-API cursor, in the connection's transaction:
        no SQLAlchemy compilation (the lists of keys here are long)."""
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(statement, params)
            return list(cursor.fetchall()) if rows_back else []
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise self._dbapi_error(statement, exc) from exc
        finally:
            cursor.close()

    def _run_many(self, conn: Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(statement, rows)
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise self._dbapi_error(statement, exc) from exc
        finally:
            cursor.close()

    def _insert_rows(
        self,
        conn: Connection,
        table: sa.Table,
        columns: Sequence[str],
        rows: Iterable[tuple[Any, ...]],
    ) -> None:
        """Bulk insert straight through the DB-API, in the connection's transaction: COPY on
        PostgreSQL; multi-row INSERTs on SQLite (_insert_sqlite); executemany of plain tuples
        on MySQL (PyMySQL rewrites it into multi-row INSERTs). Going around SQLAlchemy's
        per-row parameter processing matters here: these are the hottest loops of ingestion."""
        dbapi_conn: Any = conn.connection.dbapi_connection
        names = ", ".join(columns)
        head = f"INSERT INTO {table.name} ({names}) VALUES "
        marker = "?" if self.dialect_name == "sqlite" else "%s"
        one_row = f"({', '.join([marker] * len(columns))})"
        if self.dialect_name == "postgresql":
            statement = f"COPY {table.name} ({names}) FROM STDIN"
        else:
            statement = head + one_row
        cursor = dbapi_conn.cursor()
        try:
            if self.dialect_name == "postgresql":
                with cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
            elif self.dialect_name == "sqlite":
                self._insert_sqlite(cursor, head, one_row, len(columns), rows)
            else:
                cursor.executemany(statement, rows)
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise self._dbapi_error(statement, exc) from exc
        finally:
            cursor.close()

    @staticmethod
    def _insert_sqlite(
        cursor: Any, head: str, one_row: str, width: int, rows: Iterable[tuple[Any, ...]]
    ) -> None:
        """SQLite: ``rows`` inserted by ``head`` (``INSERT INTO t (...) VALUES ``) followed
        by ``one_row``'s markers: trait rows (three columns) in statements of
        SQLITE_ROWS_PER_INSERT rows each, the rest one at a time.

        One statement per row costs SQLite a VDBE run and the sqlite3 module a reset and a
        bind loop per row; for the small trait rows a multi-row INSERT (compiled once, then
        reused from the module's statement cache) does the same B-tree work in less time:
        ``trait_string`` 16.5-19.1 -> 14.1-14.7 ms per batch of 1,000 bench events
        (session 14, in-process, 3 rounds). Event rows (eight columns, ~2 KB) measured
        slower that way (13.7 -> 15.0 ms) and keep ``executemany``. Held under the
        connection's limit on bound parameters (32,766 since SQLite 3.32, 999 before).
        """
        rows = rows if isinstance(rows, list) else list(rows)
        whole = 0
        if width <= SQLITE_MULTI_ROW_WIDTH:
            limit = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            per = min(SQLITE_ROWS_PER_INSERT, limit // width)
            whole = len(rows) - len(rows) % per if per > 1 else 0
        if whole:
            many = head + ", ".join([one_row] * per)
            flat = itertools.chain.from_iterable
            for start in range(0, whole, per):
                cursor.execute(many, tuple(flat(rows[start : start + per])))
        if whole < len(rows):
            cursor.executemany(head + one_row, rows[whole:])

    # --- expiry -----------------------------------------------------------------------------

    @staticmethod
    def _with_retries(work: Callable[[], _T]) -> _T:
        """Run a transaction again when it lost a deadlock or a lock wait."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return work()
            except WriteConflict as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise
                LOG.info("retrying after %s", exc.message)
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def _expire_batch(self, cutoff: dt.datetime, limit: int) -> tuple[int, set[str]]:
        return self._with_retries(lambda: self._expire_batch_once(cutoff, limit))

    def _expire_batch_once(self, cutoff: dt.datetime, limit: int) -> tuple[int, set[str]]:
        ev = t.event
        with self._tx(write=True) as conn:
            rows = conn.execute(
                sa.select(ev.c.id, ev.c.event_type_id)
                .where(ev.c.generated < timeutil.to_micros(cutoff))
                .order_by(ev.c.generated)
                .limit(limit)
            ).all()
            if not rows:
                return 0, set()
            ids = [row.id for row in rows]
            if self.dialect_name == "postgresql":
                # Through the (event_id, name) keys whatever the statistics say: after a bulk
                # load, before ANALYZE, PostgreSQL planned these deletes as full scans of the
                # trait tables. Only for this transaction.
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            # Trait rows have no foreign key (migration 0003): they go first, in the same
            # transaction as their events, so no trait ever outlives its event.
            for chunk in _chunks(ids):
                for table in t.TRAIT_TABLES.values():
                    conn.execute(table.delete().where(table.c.event_id.in_(chunk)))
                conn.execute(ev.delete().where(ev.c.id.in_(chunk)))
            names = self._type_names(conn, {row.event_type_id for row in rows})
        return len(ids), set(names.values())

    def _prune_metadata(self, event_types: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        removed_types: list[str] = []
        removed_traits: list[str] = []
        for name in sorted(event_types):
            try:
                gone, traits = self._with_retries(functools.partial(self._prune_event_type, name))
            except sa_exc.IntegrityError as exc:
                # A writer referenced the type between our check and our delete: keep it.
                LOG.info("event type %s is in use again, kept: %s", name, exc.orig)
                continue
            if gone:
                removed_types.append(name)
            removed_traits.extend(traits)
        with self._type_lock:
            self._type_ids.clear()
        return tuple(removed_types), tuple(removed_traits)

    def _prune_event_type(self, name: str) -> tuple[bool, list[str]]:
        """One short transaction per event type.

        The event type row is locked first (FOR UPDATE): a writer storing events of this type
        share-locks the same row before it inserts them (_lock_event_types), so it waits for
        us, and every event committed before we got the lock is visible to the checks below.
        SQLite has one writer at a time anyway (BEGIN IMMEDIATE), and its foreign key.
        """
        ev, et, tt = t.event, t.event_type, t.trait_type
        removed: list[str] = []
        with self._tx(write=True) as conn:
            lock = sa.select(et.c.id).where(et.c.name == name)
            if self.dialect_name != "sqlite":
                lock = lock.with_for_update()
            type_id = conn.execute(lock).scalar()
            if type_id is None:
                return False, removed
            if (
                conn.execute(
                    sa.select(ev.c.id).where(ev.c.event_type_id == type_id).limit(1)
                ).first()
                is None
            ):
                conn.execute(tt.delete().where(tt.c.event_type_id == type_id))
                conn.execute(et.delete().where(et.c.id == type_id))
                return True, removed
            described = conn.execute(
                sa.select(tt.c.name, tt.c.type).where(tt.c.event_type_id == type_id)
            ).all()
            for trait_name, kind in described:
                table = t.TRAIT_TABLES[TraitType(kind)]
                carried: ColumnElement[bool]
                if kind == TraitType.STRING and trait_name in OWNER_COLUMNS:
                    carried = OWNER_COLUMNS[trait_name].is_not(None)
                else:
                    carried = sa.exists().where(
                        table.c.event_id == ev.c.id, table.c.name == trait_name
                    )
                used = conn.execute(
                    sa.select(ev.c.id).where(ev.c.event_type_id == type_id, carried).limit(1)
                ).first()
                if used is None:
                    conn.execute(
                        tt.delete().where(
                            tt.c.event_type_id == type_id,
                            tt.c.name == trait_name,
                            tt.c.type == kind,
                        )
                    )
                    removed.append(f"{name}/{trait_name}:{TraitType(kind).api_name}")
        return False, removed

    def refresh_statistics(self) -> None:
        """ANALYZE the tables, so the planner knows their size after a bulk load or expiry
        (PostgreSQL servers without autovacuum, SQLite always)."""
        with self._tx(write=True) as conn:
            if self.dialect_name == "postgresql":
                for table in t.metadata.sorted_tables:
                    conn.exec_driver_sql(f"ANALYZE {table.name}")
            elif self.dialect_name == "sqlite":
                conn.exec_driver_sql("ANALYZE")
            else:
                names = ", ".join(table.name for table in t.metadata.sorted_tables)
                conn.exec_driver_sql(f"ANALYZE TABLE {names}")

    def event_type_counts(self) -> dict[str, int]:
        ev, et = t.event, t.event_type
        stmt = (
            sa.select(et.c.name, sa.func.count(ev.c.id))
            .join(ev, ev.c.event_type_id == et.c.id)
            .group_by(et.c.name)
        )
        rows = self._reading(lambda conn: conn.execute(stmt).all())
        return {name: int(count) for name, count in rows}

    # --- reads ------------------------------------------------------------------------------

    @staticmethod
    def _scope_branches(scope: Scope) -> list[ColumnElement[bool]]:
        """The visibility scope as alternatives (ORed), each one served by an index in sort
        order; no alternative means no restriction."""
        ev = t.event
        if scope.kind is ScopeKind.ALL:
            return []
        if scope.kind is ScopeKind.ADMIN_PROJECT:
            return [ev.c.project_id == scope.project_id, ev.c.project_id.is_(None)]
        if scope.kind is ScopeKind.OWNER:
            return [sa.and_(ev.c.project_id == scope.project_id, ev.c.user_id == scope.user_id)]
        return [sa.false()]

    def _scope_condition(self, scope: Scope, by_day: bool = True) -> ColumnElement[bool] | None:
        """The scope as one condition; on SQLite, with ``by_day``, a project- or user-scoped
        one also names the days to read (see _by_day)."""
        branches = self._scope_branches(scope)
        if not branches:
            return None
        condition = sa.or_(*branches)
        if by_day and self._by_day(scope):
            condition = sa.and_(condition, self.ON_STORED_DAYS)
        return condition

    # SQLite keeps the owner listing indexes led by the event's day (migration 0006): the
    # owner's events are read day after day, in order, within the days the store holds.

    #: SQLite: the event's day is one of those the store holds (see _on_stored_days).
    ON_STORED_DAYS = _on_stored_days()
    #: SQLite, per trait table: the row's event id bucket is one of those the table holds.
    ON_STORED_BUCKETS = {kind: _on_stored_buckets(table) for kind, table in t.TRAIT_TABLES.items()}

    def _by_day(self, scope: Scope, filters: Sequence[TraitFilter] = ()) -> bool:
        """Whether a read restricted by ``scope`` and ``filters`` goes through a day index:
        on SQLite, when it names a project or a user."""
        if self.dialect_name != "sqlite":
            return False
        if scope.kind in (ScopeKind.OWNER, ScopeKind.ADMIN_PROJECT):
            return True
        return any(
            f.op is Op.EQ and f.type is TraitType.STRING and f.name in OWNER_COLUMNS
            for f in filters
        )

    def _conditions(self, conn: Connection, query: EventQuery) -> list[ColumnElement[bool]] | None:
        """The filters of ``query`` (not its scope) as conditions on ``event``; None when they
        cannot match anything (an unknown event type)."""
        ev = t.event
        conds: list[ColumnElement[bool]] = []
        if query.event_type is not None:
            # A constant, not a subquery: every planner then uses the type's index range and
            # its statistics (MariaDB sorted every event of the table otherwise).
            type_id = conn.execute(
                sa.select(t.event_type.c.id).where(t.event_type.c.name == query.event_type)
            ).scalar()
            if type_id is None:
                return None
            conds.append(ev.c.event_type_id == type_id)
        if query.message_id is not None:
            conds.append(ev.c.message_id == query.message_id)
        if query.start is not None:
            conds.append(ev.c.generated >= timeutil.to_micros(query.start))
        if query.end is not None:
            conds.append(ev.c.generated <= timeutil.to_micros(query.end))
        cutoff: int | None = None  # (asked once per query, on first need)
        for flt in query.traits:
            if flt.type is TraitType.STRING and flt.name in OWNER_COLUMNS:
                # An event column with its own listing index; NULL (no such trait) never
                # matches, as an absent trait row never did.
                conds.append(OPERATORS[flt.op](OWNER_COLUMNS[flt.name], flt.value))
                continue
            table = t.TRAIT_TABLES[flt.type]
            matches = OPERATORS[flt.op](table.c.value, _filter_value(flt.type, flt.value))
            # What finds the matches in the value index: on SQLite, one bucket after the
            # other (migration 0007, ON_STORED_BUCKETS).
            indexed = (
                sa.and_(self.ON_STORED_BUCKETS[flt.type], matches)
                if self.dialect_name == "sqlite"
                else matches
            )
            if self.dialect_name == "postgresql":
                # PostgreSQL plans IN and EXISTS alike (both become semi-joins) and chooses
                # by its statistics; equality goes through IN, as usual there.
                selective = flt.op is Op.EQ
            else:
                if cutoff is None:
                    cutoff = self._selectivity_cutoff(conn, query.limit)
                found = self._few_matches(conn, table, flt.name, indexed)
                if found is not None:
                    # Few enough to name: the events by id, the index not read again.
                    conds.append(ev.c.id.in_(found))
                    continue
                selective = self._matches_fewer_than(conn, table, flt.name, indexed, cutoff)
            if selective:
                # Few matches: read them from the (name, value) index, then sort only those.
                conds.append(
                    ev.c.id.in_(
                        sa.select(table.c.event_id).where(table.c.name == flt.name, indexed)
                    )
                )
            else:
                # Many matches: walk the events in sort order, probe each one's (event_id,
                # name) key, stop at the page limit.
                conds.append(
                    sa.exists().where(
                        table.c.event_id == ev.c.id, table.c.name == flt.name, matches
                    )
                )
        return conds

    @staticmethod
    def _selectivity_cutoff(conn: Connection, limit: int | None) -> int:
        """How few matches make a trait filter selective enough to start the query from them.

        SQLite and MariaDB take IN and EXISTS literally (SQLite: EXISTS = scan every event;
        IN = materialise every match), so the driver chooses. With m matches among n events,
        sorting the matches costs ~m, walking the events in order until a page of ``limit``
        is found ~limit x n / m: equal at m = sqrt(limit x n).
        """
        events = conn.execute(sa.select(sa.func.max(t.event.c.id))).scalar() or 0
        return max(
            MIN_SELECTIVE_TRAIT_ROWS,
            min(MAX_SELECTIVE_TRAIT_ROWS, math.isqrt((limit or 100) * int(events))),
        )

    @staticmethod
    def _few_matches(
        conn: Connection, table: sa.Table, name: str, matches: ColumnElement[bool]
    ) -> list[int] | None:
        """The event ids a trait filter matches when they are fewer than
        MIN_SELECTIVE_TRAIT_ROWS (then selective whatever the cutoff), else None: one short
        read of the covering value index, which the page statement then need not repeat
        (on SQLite that read seeks every stored bucket, migration 0007)."""
        probe = sa.select(table.c.event_id).where(table.c.name == name, matches)
        ids = list(conn.scalars(probe.limit(MIN_SELECTIVE_TRAIT_ROWS)))
        # (one trait row per event and name: the ids are distinct)
        return sorted(ids) if len(ids) < MIN_SELECTIVE_TRAIT_ROWS else None

    @staticmethod
    def _matches_fewer_than(
        conn: Connection, table: sa.Table, name: str, matches: ColumnElement[bool], cutoff: int
    ) -> bool:
        """Whether a trait filter matches fewer than ``cutoff`` rows (one short read of the
        covering (name, value, event_id) index)."""
        probe = sa.select(table.c.event_id).where(table.c.name == name, matches).limit(cutoff)
        found = conn.execute(sa.select(sa.func.count()).select_from(probe.subquery())).scalar()
        return int(found or 0) < cutoff

    @staticmethod
    def _sort_column(key: SortKey) -> sa.ColumnElement[Any]:
        column: sa.ColumnElement[Any] = t.event.c[key.key]
        return column

    def _after_marker(
        self, conn: Connection, query: EventQuery, sort: Sequence[SortKey]
    ) -> tuple[ColumnElement[bool], int]:
        """Keyset condition: rows strictly after the marker event in ``sort`` order; and the
        marker's ``generated``."""
        assert query.marker is not None
        where = [t.event.c.message_id == query.marker]
        # (one event by its unique message_id: no day to walk)
        scope = self._scope_condition(query.scope, by_day=False)
        if scope is not None:
            where.append(scope)
        row = conn.execute(
            sa.select(t.event.c.generated, t.event.c.message_id).where(*where)
        ).first()
        if row is None:
            raise InvalidMarker(f"Marker {query.marker} not found.")
        marker_values = {"generated": row.generated, "message_id": row.message_id}
        alternatives: list[ColumnElement[bool]] = []
        for i, key in enumerate(sort):
            col = self._sort_column(key)
            value = marker_values[key.key]
            equal_prefix = [self._sort_column(prev) == marker_values[prev.key] for prev in sort[:i]]
            step = col < value if key.descending else col > value
            alternatives.append(sa.and_(*equal_prefix, step))
        # The same bound on the first key alone, redundant but what an index can start from:
        # without it PostgreSQL read the first index's entries from the very start, filtering
        # the OR (83 ms instead of 0.1 ms for a marker 93,000 events deep).
        first = sort[0]
        column, start = self._sort_column(first), marker_values[first.key]
        from_marker = column <= start if first.descending else column >= start
        return sa.and_(from_marker, sa.or_(*alternatives)), int(row.generated)

    def _page_statement(
        self,
        query: EventQuery,
        sort: Sequence[SortKey],
        conds: list[ColumnElement[bool]],
        by_day: bool = False,
    ) -> sa.Select[Any]:
        ev = t.event
        # (_page reads the rows by position, in this order)
        columns = (
            ev.c.id,
            ev.c.message_id,
            ev.c.event_type_id,
            ev.c.generated,
            ev.c.project_id,
            ev.c.user_id,
            ev.c.raw,
            ev.c.traits,
        )

        def ordered(stmt: sa.Select[Any], source: sa.FromClause) -> sa.Select[Any]:
            keys = [source.c[k.key].desc() if k.descending else source.c[k.key].asc() for k in sort]
            if by_day and source is ev and sort[0].key == "generated":
                # (day, generated, message_id) is the same order, and the day index's own.
                day = EVENT_DAY
                keys.insert(0, day.desc() if sort[0].descending else day.asc())
            return stmt.order_by(*keys)

        branches = self._scope_branches(query.scope)
        if len(branches) < 2 or query.limit is None or query.message_id is not None:
            scope = [sa.or_(*branches)] if branches else []
            stmt = ordered(sa.select(*columns).where(*conds, *scope), ev)
            return stmt if query.limit is None else stmt.limit(query.limit)
        # Own project OR no project: an OR defeats the (project_id, generated, message_id)
        # index (every event of the project would be sorted). Each alternative is read in
        # order up to the limit instead, and the two short lists are merged.
        parts = [
            ordered(sa.select(*columns).where(*conds, branch), ev).limit(query.limit).subquery()
            for branch in branches
        ]
        merged = sa.union_all(*(sa.select(part) for part in parts)).subquery()
        return ordered(sa.select(merged), merged).limit(query.limit)

    def _page_rows_in_parts(self, conn: Connection, stmt: sa.Select[Any]) -> list[Any]:
        """PostgreSQL: a large page through a server-side cursor, 1,000 rows at a time.

        libpq otherwise receives the whole result (~17 MB more per 10,000-event page, measured)
        before any Python row is made from it. Straight through psycopg's named cursor:
        SQLAlchemy's ``yield_per`` used one too, but still fetched everything at once.
        """
        compiled = stmt.compile(dialect=self.engine.dialect)
        dbapi_conn: Any = conn.connection.dbapi_connection
        cursor = dbapi_conn.cursor(name="annals_page")
        rows: list[Any] = []
        try:
            cursor.execute(str(compiled), compiled.params)
            while part := cursor.fetchmany(1000):
                rows.extend(part)
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise self._dbapi_error(str(compiled), exc) from exc
        finally:
            # (in a failed transaction CLOSE fails too: the first error is the one to report)
            with contextlib.suppress(self.engine.dialect.loaded_dbapi.Error):
                cursor.close()
        return rows

    def get_events(self, query: EventQuery) -> list[Event]:
        sort = query.effective_sort()
        # (PostgreSQL reads a large page through a server-side cursor: in a transaction)
        large = (query.limit or 0) > STREAM_ROWS_ABOVE
        return self._reading(lambda conn: self._page(conn, query, sort, large), not large)

    def _page(
        self, conn: Connection, query: EventQuery, sort: Sequence[SortKey], large: bool
    ) -> list[Event]:
        # The marker is checked first: an unknown one is an error even when the filters
        # cannot match anything.
        after, marked = (
            (None, None) if query.marker is None else self._after_marker(conn, query, sort)
        )
        conds = self._conditions(conn, query)
        if conds is None:
            return []
        if after is not None:
            conds.append(after)
        params: dict[str, int] = {}
        by_day = query.message_id is None and self._by_day(query.scope, query.traits)
        if by_day:
            # The days to walk: those of the time range, and from the marker's on.
            low = None if query.start is None else timeutil.to_micros(query.start)
            high = None if query.end is None else timeutil.to_micros(query.end)
            if marked is not None and sort[0].key == "generated":
                if sort[0].descending:
                    high = marked if high is None else min(high, marked)
                else:
                    low = marked if low is None else max(low, marked)
            conds.append(self.ON_STORED_DAYS)
            params = stored_days_params(low, high)
        stmt = self._page_statement(query, sort, conds, by_day)
        if large and self.dialect_name == "postgresql":
            rows = self._page_rows_in_parts(conn, stmt)
        elif large and self.dialect_name in ("mysql", "mariadb"):
            # An unbuffered cursor (SSCursor): the driver does not hold the whole result
            # as well as the rows made from it.
            result = conn.execution_options(stream_results=True).execute(stmt)
            rows = [row for part in result.partitions(STREAM_ROWS_ABOVE) for row in part]
        else:
            rows = list(conn.execute(stmt, params).all())
        if not rows:
            return []
        # Rows are read by position (the columns of _page_statement): a named lookup on a
        # SQLAlchemy Row costs ~1 µs, ~0.6 ms per 100-event page.
        same: dict[str, str] = {}
        # Events stored since 0008 hold their trait documents; older ones have trait rows only.
        type_names, traits = self._page_details(
            conn, [row[0] for row in rows if row[7] is None], {row[2] for row in rows}, same
        )
        from_micros = timeutil.from_micros
        events = []
        for row_id, message_id, type_id, generated, project_id, user_id, raw, stored in rows:
            events.append(
                Event(
                    message_id,
                    type_names[type_id],
                    from_micros(generated),
                    StoredTraits(stored)
                    if stored is not None
                    else tuple(
                        sorted(
                            [*traits.get(row_id, ()), *_owner_traits(project_id, user_id, same)],
                            key=BY_NAME_AND_TYPE,
                        )
                    ),
                    RawJSON(raw) if raw else {},  # passed on as the JSON text it is
                )
            )
        return events

    def _type_names(self, conn: Connection, type_ids: set[int]) -> dict[int, str]:
        where, params = self._in_condition("id", sorted(type_ids))
        rows = self._fetch(conn, f"SELECT id, name FROM event_type WHERE {where}", params)
        return {type_id: name for type_id, name in rows}

    def _page_details(
        self, conn: Connection, event_ids: list[int], type_ids: set[int], same: dict[str, str]
    ) -> tuple[dict[int, str], dict[int, list[Trait]]]:
        """What a page's event rows do not hold: the names of their event types and the
        traits of ``event_ids`` (events stored before 0008), in one round trip per 500
        events (a UNION ALL of the four trait tables, the first one also reading the type
        names), straight through the DB-API cursor; SQLAlchemy's compilation of the id lists
        and its per-row result processing were half the time of a 100-event page.

        Each table's values come in a column of their own type (string; integer, which
        datetimes share as microseconds; float), so that no engine converts them to a
        common type on the way. Rows of kind 0 are event types: (0, id, name, ...).
        """
        if not event_ids:  # every event of the page holds its trait documents
            return self._type_names(conn, type_ids), {}
        names: dict[int, str] = {}
        found: dict[int, list[Trait]] = {}
        # (PostgreSQL types a column of NULLs as text unless told otherwise.)
        pg = self.dialect_name == "postgresql"
        no_int, no_float = ("NULL::bigint", "NULL::float8") if pg else ("NULL", "NULL")
        branches = [
            (TraitType.STRING, t.trait_string.name, f"value, {no_int}, {no_float}"),
            (TraitType.INTEGER, t.trait_integer.name, f"NULL, value, {no_float}"),
            (TraitType.FLOAT, t.trait_float.name, "NULL, NULL, value"),
            (TraitType.DATETIME, t.trait_datetime.name, "NULL, value, NULL"),
        ]
        kinds: list[TraitType | None] = [None, *(kind for kind, _, _ in branches)]
        string, integer, real = TraitType.STRING, TraitType.INTEGER, TraitType.FLOAT
        from_micros, new = _from_micros, new_trait
        for number, chunk in enumerate(_chunks(event_ids)):
            first = number == 0  # (the type names come with the first chunk)
            arguments: Sequence[Any] | dict[str, Any]
            if pg:  # one array, sent once and named in every branch
                where, of_types = "event_id = ANY(%(ids)s)", "id = ANY(%(types)s)"
                arguments = {"ids": list(chunk), "types": sorted(type_ids)}
            else:
                where, params = self._in_condition("event_id", chunk)
                of_types, type_params = self._in_condition("id", sorted(type_ids))
                arguments = [*params, *params, *params, *params, *(type_params if first else ())]
            selects = [
                f"SELECT {int(kind)}, event_id, name, {columns} FROM {table} WHERE {where}"
                for kind, table, columns in branches
            ]
            if first:
                selects.append(
                    f"SELECT 0, id, name, NULL, NULL, NULL FROM event_type WHERE {of_types}"
                )
            rows = self._fetch(conn, " UNION ALL ".join(selects), arguments)
            # A page repeats the same names and many values (states, hosts, projects): one
            # copy of each per request (``same``) instead of one per row (a 10,000-event
            # page holds ~130,000). Not numbers: -0.0 == 0.0.
            for kind, key, name, text, whole, fraction in rows:
                trait_type = kinds[kind]
                value: TraitValue
                if trait_type is string:
                    value = same.setdefault(text, text)
                elif trait_type is integer:
                    value = int(whole)
                elif trait_type is real:
                    value = float(fraction)
                elif trait_type is None:
                    names[key] = name
                    continue
                else:
                    value = from_micros(whole)
                found.setdefault(key, []).append(
                    new(Trait, (same.setdefault(name, name), trait_type, value))
                )
        return names, found

    def get_event_types(self, scope: Scope) -> list[str]:
        ev, et = t.event, t.event_type
        conds: list[ColumnElement[bool]] = [ev.c.event_type_id == et.c.id]
        scope_cond = self._scope_condition(scope)
        if scope_cond is not None:
            conds.append(scope_cond)
        stmt = sa.select(et.c.name).where(sa.exists().where(*conds)).order_by(et.c.name)
        return self._reading(lambda conn: list(conn.scalars(stmt)))

    def get_trait_types(self, event_type: str, scope: Scope) -> list[TraitDescription]:
        return self._reading(lambda conn: self._trait_types(conn, event_type, scope))

    def _trait_types(
        self, conn: Connection, event_type: str, scope: Scope
    ) -> list[TraitDescription]:
        et, tt = t.event_type, t.trait_type
        if scope.kind is ScopeKind.ALL:
            rows = conn.execute(
                sa.select(tt.c.name, tt.c.type)
                .join(et, et.c.id == tt.c.event_type_id)
                .where(et.c.name == event_type)
                .order_by(tt.c.type, tt.c.name)
            ).all()
            return [TraitDescription(name, TraitType(kind)) for name, kind in rows]
        found: set[tuple[str, int]] = set()
        scope_cond = self._scope_condition(scope)
        for trait_type, table in t.TRAIT_TABLES.items():
            stmt = (
                sa.select(table.c.name)
                .distinct()
                .join(t.event, t.event.c.id == table.c.event_id)
                .join(et, et.c.id == t.event.c.event_type_id)
                .where(et.c.name == event_type)
            )
            if scope_cond is not None:
                stmt = stmt.where(scope_cond)
            found.update((name, int(trait_type)) for name in conn.scalars(stmt))
        for name, column in OWNER_COLUMNS.items():
            stmt = (
                sa.select(t.event.c.id)
                .join(et, et.c.id == t.event.c.event_type_id)
                .where(et.c.name == event_type, column.is_not(None))
                .limit(1)
            )
            if scope_cond is not None:
                stmt = stmt.where(scope_cond)
            if conn.execute(stmt).first() is not None:
                found.add((name, int(TraitType.STRING)))
        return [
            TraitDescription(name, TraitType(kind))
            for name, kind in sorted(found, key=lambda item: (item[1], item[0]))
        ]

    def get_traits(self, event_type: str, trait_name: str, scope: Scope) -> Iterator[Trait]:
        ev, et = t.event, t.event_type
        scope_cond = self._scope_condition(scope)
        result: list[Trait] = []
        of_type = ev.c.event_type_id == (
            sa.select(et.c.id).where(et.c.name == event_type).scalar_subquery()
        )

        def read(conn: Connection) -> None:
            result.clear()
            for trait_type, table in t.TRAIT_TABLES.items():
                if trait_type is TraitType.STRING and trait_name in OWNER_COLUMNS:
                    column = OWNER_COLUMNS[trait_name]
                    stmt = sa.select(column).where(of_type, column.is_not(None))
                else:
                    stmt = (
                        sa.select(table.c.value)
                        .join(ev, ev.c.id == table.c.event_id)
                        .where(table.c.name == trait_name, of_type)
                    )
                stmt = stmt.order_by(ev.c.id)
                if scope_cond is not None:
                    stmt = stmt.where(scope_cond)
                result.extend(
                    Trait(trait_name, trait_type, LOADERS[trait_type](value))
                    for value in conn.scalars(stmt)
                )

        self._reading(read)
        return iter(result)
