"""Reading a Panko 10 SQL database, to move its events into Annals.

Panko's schema (the tables its ``panko-dbsync`` creates): ``event_type(id, desc)``,
``event(id, message_id, generated, raw, event_type_id)`` and one trait table per type
(``trait_text``, ``trait_int``, ``trait_float``, ``trait_datetime``: ``event_id, key, value``).
On MySQL Panko stores ``generated`` and datetime traits as DECIMAL(20,6) seconds since the
epoch; elsewhere as a DATETIME. Events are read in ``event.id`` order, one page at a time, so
memory stays constant and a run can resume after the last page it committed.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from annals import timeutil
from annals.errors import AnnalsError
from annals.ingest.events import parse_event
from annals.models import Event
from annals.storage.sql.driver import normalise_url

LOG = logging.getLogger(__name__)

#: Panko trait tables and the publisher dtype of their values.
TRAIT_TABLES: dict[str, int] = {
    "trait_text": 1,
    "trait_int": 2,
    "trait_float": 3,
    "trait_datetime": 4,
}


class PankoSourceError(AnnalsError):
    """The Panko database cannot be read (unreachable, or not a Panko schema)."""


def panko_metadata(mysql: bool) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    """Table definitions of the Panko schema, as far as the import reads it."""
    stamp: sa.types.TypeEngine[Any] = sa.Numeric(20, 6) if mysql else sa.DateTime()
    md = sa.MetaData()
    tables = {
        "event_type": sa.Table(
            "event_type",
            md,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("desc", sa.String(255)),
        ),
        "event": sa.Table(
            "event",
            md,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("message_id", sa.String(50)),
            sa.Column("generated", stamp),
            sa.Column("raw", sa.Text),
            sa.Column("event_type_id", sa.Integer),
        ),
    }
    values: dict[str, sa.types.TypeEngine[Any]] = {
        "trait_text": sa.String(255),
        "trait_int": sa.BigInteger(),
        "trait_float": sa.Float(53),
        "trait_datetime": stamp,
    }
    for name, value_type in values.items():
        tables[name] = sa.Table(
            name,
            md,
            sa.Column("event_id", sa.Integer, primary_key=True),
            sa.Column("key", sa.String(255), primary_key=True),
            sa.Column("value", value_type),
        )
    return md, tables


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return (
            value.replace(tzinfo=None)
            if value.tzinfo is None
            else (value.astimezone(dt.UTC).replace(tzinfo=None))
        )
    if isinstance(value, (decimal.Decimal, int, float)):
        micros = int(decimal.Decimal(value).scaleb(6).to_integral_value())
        return timeutil.from_micros(micros)
    if isinstance(value, str):  # SQLite without type information
        return timeutil.parse_isotime(value.replace(" ", "T"))
    raise ValueError(f"unexpected timestamp {value!r}")


@dataclass(frozen=True, slots=True)
class Page:
    events: list[Event]
    last_id: int
    rejected: list[tuple[int, str]]


class PankoSource:
    """A read-only view of a Panko database."""

    def __init__(self, url: str) -> None:
        try:
            self.url = normalise_url(url)
            self.engine = sa.create_engine(self.url, poolclass=sa.NullPool)
        except (sa_exc.ArgumentError, ImportError) as exc:
            raise PankoSourceError(f"invalid Panko database URL: {exc}") from None
        mysql = self.url.get_backend_name() in ("mysql", "mariadb")
        self.metadata, self.tables = panko_metadata(mysql)
        self._check()

    def _check(self) -> None:
        try:
            with self.engine.connect() as conn:
                present = set(sa.inspect(conn).get_table_names())
        except sa_exc.DBAPIError as exc:
            raise PankoSourceError(f"cannot connect to the Panko database: {exc.orig}") from None
        except sa_exc.SQLAlchemyError as exc:
            raise PankoSourceError(f"cannot connect to the Panko database: {exc}") from None
        missing = sorted(set(self.tables) - present)
        if missing:
            raise PankoSourceError(f"not a Panko database: table(s) {', '.join(missing)} not found")

    def close(self) -> None:
        self.engine.dispose()

    def count(self, after_id: int = 0) -> int:
        ev = self.tables["event"]
        with self.engine.connect() as conn:
            return int(
                conn.scalar(sa.select(sa.func.count()).select_from(ev).where(ev.c.id > after_id))
                or 0
            )

    def counts_by_type(self) -> dict[str, int]:
        ev, et = self.tables["event"], self.tables["event_type"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(et.c.desc, sa.func.count(ev.c.id))
                .join(ev, ev.c.event_type_id == et.c.id)
                .group_by(et.c.desc)
            ).all()
        return {str(name): int(count) for name, count in rows}

    def pages(self, after_id: int, size: int) -> Iterator[Page]:
        """Events with ``id > after_id`` in id order, ``size`` per page."""
        last = after_id
        while True:
            page = self._page(last, size)
            if page is None:
                return
            yield page
            last = page.last_id

    def _page(self, after_id: int, size: int) -> Page | None:
        ev, et = self.tables["event"], self.tables["event_type"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(ev.c.id, ev.c.message_id, ev.c.generated, ev.c.raw, et.c.desc)
                .join(et, et.c.id == ev.c.event_type_id, isouter=True)
                .where(ev.c.id > after_id)
                .order_by(ev.c.id)
                .limit(size)
            ).all()
            if not rows:
                return None
            traits = self._traits(conn, [row.id for row in rows])
        events: list[Event] = []
        rejected: list[tuple[int, str]] = []
        for row in rows:
            try:
                events.append(self._event(row, traits.get(row.id, [])))
            except AnnalsError as exc:
                rejected.append((row.id, exc.message))
            except ValueError as exc:
                rejected.append((row.id, f"Panko event id {row.id}: {exc}"))
        return Page(events, rows[-1].id, rejected)

    def _traits(self, conn: sa.Connection, ids: Sequence[int]) -> dict[int, list[list[Any]]]:
        found: dict[int, list[list[Any]]] = {}
        for name, dtype in TRAIT_TABLES.items():
            table = self.tables[name]
            rows = conn.execute(
                sa.select(table.c.event_id, table.c.key, table.c.value).where(
                    table.c.event_id.in_(ids)
                )
            )
            for event_id, key, value in rows:
                if value is None:
                    continue
                stored = _to_datetime(value).isoformat() if dtype == 4 else value
                found.setdefault(event_id, []).append([key, dtype, stored])
        return found

    @staticmethod
    def _event(row: Any, traits: list[list[Any]]) -> Event:
        raw: Any = {}
        if row.raw:
            try:
                raw = orjson.loads(row.raw)
            except orjson.JSONDecodeError:
                raw = {"unparsed_raw": row.raw}
        return parse_event(
            {
                "message_id": row.message_id,
                "event_type": row.desc,
                "generated": _to_datetime(row.generated).isoformat(),
                "traits": traits,
                "raw": raw,
            },
            f"Panko event id {row.id}",
        )
