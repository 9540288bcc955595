"""Validation of events in the format of Ceilometer's ``http://`` event publisher.

One document per event::

    {"message_id": "...", "event_type": "...", "generated": "2024-05-01T12:00:00.123456",
     "traits": [["name", dtype, value], ...], "raw": {...}}

``dtype`` is 1 string, 2 integer, 3 float, 4 datetime; 0 (none) is stored as a string.
Everything is checked before anything is stored, so a batch is accepted or refused whole.

A request body goes through :func:`parse_body`: documents of exactly that plain shape are
decoded by msgspec straight into typed fields, with the raw payload left as the JSON text it
arrived in (never built into Python objects, never encoded again). Anything else, errors
included, goes through orjson and :func:`parse_batch`, whose checks and error texts decide.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import msgspec
import orjson

from annals import timeutil
from annals.errors import InvalidEvent
from annals.models import (
    NAME_LENGTH,
    OWNER_TRAITS,
    STRING_VALUE_LENGTH,
    Event,
    RawJSON,
    Trait,
    TraitType,
    TraitValue,
    new_trait,
)
from annals.query import INT64_MAX, INT64_MIN

DTYPES: dict[int, TraitType] = {
    0: TraitType.STRING,
    1: TraitType.STRING,
    2: TraitType.INTEGER,
    3: TraitType.FLOAT,
    4: TraitType.DATETIME,
}


def _name(value: Any, what: str, limit: int = NAME_LENGTH) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{what} must be a non-empty string")
    _check_text(value, what, limit)
    return value


def _event_name(value: Any, where: str, field: str) -> str:
    """:func:`_name` of ``{where}: {field}``, with the text of the error only built (by
    calling it) when ``value`` is not a plain valid name."""
    if type(value) is str and 0 < len(value) <= NAME_LENGTH and "\x00" not in value:
        return value
    return _name(value, f"{where}: {field}")


def _check_text(value: str, what: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidEvent(f"{what} is longer than {limit} characters")
    if "\x00" in value:
        raise InvalidEvent(f"{what} contains a NUL character")


def _datetime(value: Any, what: str) -> dt.datetime:
    if not isinstance(value, str):
        raise InvalidEvent(f"{what} must be an ISO 8601 timestamp string")
    try:
        return timeutil.parse_isotime(value)
    except ValueError:
        raise InvalidEvent(f"{what} is not a valid ISO 8601 timestamp: {value!r}") from None


def _plain_datetime(value: Any) -> dt.datetime | None:
    """What :func:`_datetime` returns for ``value``, or None where it would raise."""
    if type(value) is not str:
        return None
    try:
        return timeutil.parse_isotime(value)
    except ValueError:
        return None


def _trait_value(trait_type: TraitType, dtype: int, value: Any, what: str) -> TraitValue:
    if value is None or (isinstance(value, bool) and trait_type is not TraitType.STRING):
        raise InvalidEvent(f"{what} has no usable value")
    if trait_type is TraitType.STRING:
        text = value if isinstance(value, str) else str(value) if dtype == 0 else None
        if text is None:
            raise InvalidEvent(f"{what} must be a string")
        _check_text(text, what, STRING_VALUE_LENGTH)
        return text
    if trait_type is TraitType.INTEGER:
        try:
            number = int(value) if isinstance(value, (int, str)) else None
        except ValueError:
            number = None
        if number is None or not INT64_MIN <= number <= INT64_MAX:
            raise InvalidEvent(f"{what} must be a 64-bit integer")
        return number
    if trait_type is TraitType.FLOAT:
        try:
            real = float(value) if isinstance(value, (int, float, str)) else None
        except (ValueError, OverflowError):
            real = None
        if real is None or math.isnan(real) or math.isinf(real):
            raise InvalidEvent(f"{what} must be a finite number")
        return real
    return _datetime(value, what)


def _trait(item: Any, position: int, where: str, seen: set[tuple[str, TraitType]]) -> Trait:
    """One trait, every check in order, with the error texts built as they are needed."""
    what = f"{where}: trait {position}"
    if isinstance(item, dict):
        parts = [item.get("name"), item.get("dtype"), item.get("value")]
    elif isinstance(item, list) and len(item) == 3:
        parts = item
    else:
        raise InvalidEvent(f"{what} must be a list [name, dtype, value]")
    name = _name(parts[0], f"{what} name")
    dtype = parts[1]
    if isinstance(dtype, bool) or not isinstance(dtype, int) or dtype not in DTYPES:
        raise InvalidEvent(f"{what} ({name}) has unknown dtype {dtype!r}; expected 0-4")
    trait_type = DTYPES[dtype]
    if (name, trait_type) in seen:
        raise InvalidEvent(f"{what} repeats trait {name!r} of type {trait_type.api_name}")
    seen.add((name, trait_type))
    if name in OWNER_TRAITS and trait_type is TraitType.STRING:
        _check_text(str(parts[2]), f"{what} ({name})", NAME_LENGTH)
    return Trait(name, trait_type, _trait_value(trait_type, dtype, parts[2], f"{what} ({name})"))


_FINITE_MAX = 1.7976931348623157e308


def _fast_value(dtype: int, name: str, value: Any) -> TraitValue | None:
    """The stored value of a plainly valid ``[name, dtype, value]`` (the shape publishers
    send); None for anything else, which the full checks of :func:`_trait` then judge."""
    kind = type(value)
    if dtype <= 1:  # 1 string, 0 none (stored as a string)
        if kind is str and len(value) <= STRING_VALUE_LENGTH and "\x00" not in value:
            if name in OWNER_TRAITS and len(value) > NAME_LENGTH:
                return None
            return value  # type: ignore[no-any-return]
        return None
    if dtype == 2:
        if kind is int and INT64_MIN <= value <= INT64_MAX:
            return value  # type: ignore[no-any-return]
        return None
    if dtype == 3:
        if kind is float and -_FINITE_MAX <= value <= _FINITE_MAX:
            return value  # type: ignore[no-any-return]
        return None
    if dtype == 4:
        return _plain_datetime(value)
    return None


class _NotPlain(Exception):
    """A document :func:`parse_body`'s fast path leaves to the full parser."""


def _traits(raw_traits: Any, where: str) -> tuple[Trait, ...]:
    """The traits of one document (:func:`_plain_traits` is parse_body's fast path's own)."""
    if raw_traits is None:
        return ()
    if not isinstance(raw_traits, list):
        raise InvalidEvent(f"{where}: traits must be a list of [name, dtype, value]")
    traits: list[Trait] = []
    # The fast path tracks names alone: a name seen before (of any type) goes to _trait,
    # which tracks (name, type) pairs in ``seen``, made the first time it is needed.
    names: set[str] = set()
    seen: set[tuple[str, TraitType]] | None = None
    make, keep, string = new_trait, traits.append, TraitType.STRING
    for position, item in enumerate(raw_traits):
        # Fast path: a well-formed [name, dtype, value] is accepted after cheap checks alone;
        # anything else goes through _trait, which applies every check and words the error.
        if type(item) is list and len(item) == 3:
            name, dtype, value = item
            if (
                type(name) is str
                and type(dtype) is int
                and name not in names
                and 0 < len(name) <= NAME_LENGTH
                and "\x00" not in name
            ):
                # Most traits are strings (dtype 1) no longer than a name, which suits any
                # trait, owners included: accepted here without a call.
                stored: TraitValue | None
                if (
                    dtype == 1
                    and type(value) is str
                    and len(value) <= NAME_LENGTH
                    and "\x00" not in value
                ):
                    trait_type, stored = string, value
                else:
                    stored = _fast_value(dtype, name, value) if 0 <= dtype <= 4 else None
                    trait_type = DTYPES[dtype] if stored is not None else string
                if stored is not None:
                    names.add(name)
                    keep(make(Trait, (name, trait_type, stored)))
                    if seen is not None:
                        seen.add((name, trait_type))
                    continue
        if seen is None:
            seen = {(trait.name, trait.type) for trait in traits}
        trait = _trait(item, position, where, seen)
        names.add(trait.name)
        traits.append(trait)
    return tuple(traits)


def parse_event(doc: Any, where: str = "event") -> Event:
    """One publisher document -> Event, or InvalidEvent naming ``where`` and the problem."""
    if not isinstance(doc, dict):
        raise InvalidEvent(f"{where}: must be a JSON object")
    # Error texts are only built when something is wrong: this runs for every event.
    message_id = _event_name(doc.get("message_id"), where, "message_id")
    event_type = _event_name(doc.get("event_type"), where, "event_type")
    stamp = doc.get("generated")
    generated = _plain_datetime(stamp)
    if generated is None:
        generated = _datetime(stamp, f"{where}: generated")
    traits = _traits(doc.get("traits"), where)
    raw = doc.get("raw", {})
    if raw is None:
        raw = {}
    return Event(message_id, event_type, generated, traits, raw)


def parse_batch(docs: Any) -> list[Event]:
    """A request body (one document or a list of them) -> events; all or nothing."""
    if isinstance(docs, dict):
        docs = [docs]
    if not isinstance(docs, list):
        raise InvalidEvent("the body must be an event object or a list of event objects")
    return [parse_event(doc, f"event {index}") for index, doc in enumerate(docs)]


def _plain_traits(items: list[tuple[str, int, Any]]) -> tuple[Trait, ...]:
    """The traits of a plain document, whose ``[name, dtype, value]`` shape msgspec has
    checked (a string, an integer, a scalar): the checks of :func:`_traits`' fast path on
    the rest. Raises _NotPlain where that fast path would hand the item to :func:`_trait`."""
    traits: list[Trait] = []
    names: set[str] = set()
    make, keep, add, string = new_trait, traits.append, names.add, TraitType.STRING
    for name, dtype, value in items:
        if name in names or not 0 < len(name) <= NAME_LENGTH or "\x00" in name:
            raise _NotPlain
        stored: TraitValue | None
        if dtype == 1 and type(value) is str and len(value) <= NAME_LENGTH and "\x00" not in value:
            keep(make(Trait, (name, string, value)))
        elif 0 <= dtype <= 4 and (stored := _fast_value(dtype, name, value)) is not None:
            keep(make(Trait, (name, DTYPES[dtype], stored)))
        else:
            raise _NotPlain
        add(name)
    return tuple(traits)


class _PlainDocument(msgspec.Struct):
    """One event document of the plain shape publishers send, as :func:`parse_body`'s fast
    path decodes it: names and timestamp as strings, traits as ``[name, dtype, value]``
    lists, and the raw payload as the JSON text received. Other fields are ignored, as
    :func:`parse_event` ignores them; a field of another type fails the decoding."""

    message_id: str
    event_type: str
    generated: str
    traits: list[tuple[str, int, str | int | float | None]] | None = None
    raw: msgspec.Raw = msgspec.Raw(b"{}")


_decode_plain = msgspec.json.Decoder(list[_PlainDocument]).decode

#: What sends a body from parse_body's fast path to the full parser: a document or trait not
#: of the plain shape, a value the full checks refuse, invalid JSON or UTF-8, a depth limit.
_NOT_PLAIN = (_NotPlain, InvalidEvent, msgspec.MsgspecError, UnicodeDecodeError, RecursionError)


def _parse_plain(body: bytes) -> list[Event]:
    """The events of a body of plain documents; raises one of _NOT_PLAIN otherwise."""
    events: list[Event] = []
    keep = events.append
    for doc in _decode_plain(body):
        message_id = _event_name(doc.message_id, "event", "message_id")
        event_type = _event_name(doc.event_type, "event", "event_type")
        generated = _plain_datetime(doc.generated)
        if generated is None:
            raise _NotPlain
        traits = _plain_traits(doc.traits) if doc.traits else ()
        # msgspec checked the payload's JSON syntax; its text is kept as it was sent
        # (strict UTF-8, as orjson would require). ``null`` is no payload, as in parse_event.
        raw = bytes(doc.raw).decode()
        keep(
            Event(
                message_id, event_type, generated, traits, RawJSON("{}" if raw == "null" else raw)
            )
        )
    return events


def parse_body(body: bytes) -> list[Event]:
    """A request body (JSON text: one event document or a list of them) -> events; all or
    nothing.

    The same events as ``parse_batch(orjson.loads(body))``, or the same InvalidEvent; the
    raw payloads of plain documents are kept as the JSON text received (:class:`RawJSON`)
    rather than decoded. Invalid JSON is InvalidEvent("Request is not in valid JSON format").
    """
    try:
        return _parse_plain(body)
    except _NOT_PLAIN:
        pass
    try:
        docs = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidEvent("Request is not in valid JSON format") from None
    return parse_batch(docs)
