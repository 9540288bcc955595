"""The domain objects every layer shares. No engine or HTTP types in here."""

from __future__ import annotations

import datetime as dt
import enum
import json
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload

import orjson


class TraitType(enum.IntEnum):
    """Trait data types, numbered as Ceilometer's event publisher numbers them."""

    STRING = 1
    INTEGER = 2
    FLOAT = 3
    DATETIME = 4

    @property
    def api_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_api_name(cls, name: str) -> TraitType:
        return cls[name.upper()]


TraitValue = str | int | float | dt.datetime

#: Longest message_id, event type and trait name.
NAME_LENGTH = 255
#: Longest string trait value: (name, value, event_id) must fit one InnoDB index entry
#: (3072 bytes in utf8mb4) and one PostgreSQL btree entry.
STRING_VALUE_LENGTH = 500
#: The string traits that decide who may see an event (Panko's visibility rules): held to
#: NAME_LENGTH, and kept by the SQL driver in event columns of the same names.
OWNER_TRAITS: tuple[str, ...] = ("project_id", "user_id")


class Trait(NamedTuple):
    """One trait of an event. A named tuple rather than a frozen dataclass: ingestion and
    large pages make thousands per request, and a tuple is built three times faster."""

    name: str
    type: TraitType
    value: TraitValue


#: Builds a Trait from a (name, type, value) tuple in C: ``new_trait(Trait, (n, t, v))``.
#: ``Trait(n, t, v)`` runs the named tuple's Python-level ``__new__``, a measurable share of
#: parsing a batch (~12,000 traits) or reading a page (~900 per 100 events).
new_trait = tuple.__new__


#: An event's traits are kept and shown in this order: by name, then type.
BY_NAME_AND_TYPE = operator.itemgetter(0, 1)


def trait_value_text(trait_type: TraitType, value: TraitValue) -> str:
    """Trait values travel as strings: str() of numbers, ISO 8601 of datetimes."""
    if trait_type is TraitType.DATETIME and not isinstance(value, (str, int, float)):
        return value.isoformat()  # Panko's: no timezone, microseconds only when non-zero
    return str(value)


#: ``TraitType.api_name`` looked up once (Enum.name is a descriptor; pages hold many traits).
TYPE_NAMES: dict[TraitType, str] = {kind: kind.api_name for kind in TraitType}


def trait_doc(trait: Trait) -> dict[str, str]:
    """A trait's document in the API (Panko's field order)."""
    value = trait.value
    return {
        "name": trait.name,
        "value": value if type(value) is str else trait_value_text(trait.type, value),
        "type": TYPE_NAMES[trait.type],
    }


def encode_traits(traits: Iterable[tuple[str, TraitType, TraitValue]]) -> str:
    """The JSON text of an event's trait documents, in :data:`BY_NAME_AND_TYPE` order: what
    the SQL driver stores beside each event and :class:`StoredTraits` decodes.

    Runs once per event written. The (name, type, value) tuples are sorted as they are, not
    by a key: an event holds one trait per name and type, so the value never decides, and a
    key tuple per trait was a tenth of the call.
    """
    names = TYPE_NAMES
    return orjson.dumps(
        [
            {
                "name": name,
                "value": value if type(value) is str else trait_value_text(kind, value),
                "type": names[kind],
            }
            for name, kind, value in sorted(traits)
        ]
    ).decode()


_TYPES_BY_NAME: dict[str, TraitType] = {kind.api_name: kind for kind in TraitType}
_FROM_TEXT: dict[TraitType, Any] = {
    TraitType.STRING: str,
    TraitType.INTEGER: int,
    TraitType.FLOAT: float,  # str() of a float reads back as the same float
    TraitType.DATETIME: dt.datetime.fromisoformat,
}


class StoredTraits(Sequence["Trait"]):
    """An event's traits as storage hands them over: the JSON text :func:`encode_traits`
    wrote, decoded into :class:`Trait` values only when something iterates them.

    A JSON response copies ``text`` as it is; a page of 100 events then makes none of its
    ~900 traits. Compares equal to any sequence of the same traits, tuples included.
    """

    __slots__ = ("_items", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._items: tuple[Trait, ...] | None = None

    def _decoded(self) -> tuple[Trait, ...]:
        items = self._items
        if items is None:
            decoded = []
            for doc in orjson.loads(self.text):
                kind = _TYPES_BY_NAME[doc["type"]]
                decoded.append(
                    new_trait(Trait, (doc["name"], kind, _FROM_TEXT[kind](doc["value"])))
                )
            items = self._items = tuple(decoded)
        return items

    def __len__(self) -> int:
        return len(self._decoded())

    def __iter__(self) -> Iterator[Trait]:
        return iter(self._decoded())

    @overload
    def __getitem__(self, index: int) -> Trait: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Trait, ...]: ...

    def __getitem__(self, index: int | slice) -> Trait | tuple[Trait, ...]:
        return self._decoded()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StoredTraits):
            return self.text == other.text or self._decoded() == other._decoded()
        if isinstance(other, Sequence) and not isinstance(other, str):
            return self._decoded() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._decoded())

    def __repr__(self) -> str:
        return f"StoredTraits({self._decoded()!r})"


@dataclass(frozen=True, slots=True, eq=False)
class RawJSON:
    """A raw payload still in JSON text: as it was stored, or as a publisher sent it.

    Storage hands payloads over in this form so that a JSON response can copy the text
    as it is instead of decoding and encoding it again; :func:`decode_raw` gives the value.
    It equals any value, encoded or not, that decodes to the same JSON value.
    """

    text: str

    def decode(self) -> Any:
        try:
            return orjson.loads(self.text)
        except orjson.JSONDecodeError:
            # A payload kept as it was sent (ingest.events.parse_body) is valid JSON, and may
            # still hold a number beyond a double's range (1e400), which orjson refuses: the
            # standard library reads it, as Python's json module read it for Panko (inf).
            return json.loads(self.text)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RawJSON):
            return self.text == other.text or self.decode() == other.decode()
        return bool(self.decode() == other)

    __hash__ = None  # type: ignore[assignment]  # compares like the (unhashable) value


def decode_raw(raw: Any) -> Any:
    """The JSON value of an event's raw payload, decoded or :class:`RawJSON`."""
    return raw.decode() if isinstance(raw, RawJSON) else raw


@dataclass(frozen=True, slots=True)
class Event:
    message_id: str
    event_type: str
    generated: dt.datetime  # naive, UTC
    #: A tuple, or (events read from storage) :class:`StoredTraits`.
    traits: Sequence[Trait] = ()
    #: The notification as received: its decoded JSON value, or JSON text as :class:`RawJSON`
    #: (events read from storage, and those ingest.events.parse_body took from a request
    #: body, as sent); :func:`decode_raw` gives the value.
    raw: Any = field(default_factory=dict)

    def string_trait(self, name: str) -> str | None:
        """Value of the string trait ``name``, as Panko's visibility rules look it up."""
        for trait in self.traits:
            if trait.name == name and trait.type is TraitType.STRING:
                return str(trait.value)
        return None


@dataclass(frozen=True, slots=True)
class TraitDescription:
    name: str
    type: TraitType


@dataclass(frozen=True, slots=True)
class ExpiryResult:
    """Outcome of one expiry run."""

    cutoff: dt.datetime | None  # None: expiry is disabled (ttl <= 0)
    deleted: int = 0
    batches: int = 0
    removed_event_types: tuple[str, ...] = ()
    removed_trait_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordResult:
    """Outcome of one batch write."""

    stored: int
    duplicates: tuple[str, ...] = ()
