"""Validation of events in the format of Ceilometer's ``http://`` event publisher.

One document per event::

    {"message_id": "...", "event_type": "...", "generated": "2024-05-01T12:00:00.123456",
     "traits": [["name", dtype, value], ...], "raw": {...}}

``dtype`` is 1 string, 2 integer, 3 float, 4 datetime; 0 (none) is stored as a string.
Everything is checked before anything is stored, so a batch is accepted or refused whole.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from annals import timeutil
from annals.errors import InvalidEvent
from annals.models import (
    NAME_LENGTH,
    STRING_VALUE_LENGTH,
    Event,
    Trait,
    TraitType,
    TraitValue,
)
from annals.query import INT64_MAX, INT64_MIN

#: String traits that decide who may see an event; indexed, so held to NAME_LENGTH.
OWNER_TRAITS = ("project_id", "user_id")

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


def _traits(raw_traits: Any, where: str) -> tuple[Trait, ...]:
    if raw_traits is None:
        return ()
    if not isinstance(raw_traits, list):
        raise InvalidEvent(f"{where}: traits must be a list of [name, dtype, value]")
    traits: list[Trait] = []
    seen: set[tuple[str, TraitType]] = set()
    for position, item in enumerate(raw_traits):
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
        traits.append(
            Trait(name, trait_type, _trait_value(trait_type, dtype, parts[2], f"{what} ({name})"))
        )
    return tuple(traits)


def parse_event(doc: Any, where: str = "event") -> Event:
    """One publisher document -> Event, or InvalidEvent naming ``where`` and the problem."""
    if not isinstance(doc, dict):
        raise InvalidEvent(f"{where}: must be a JSON object")
    message_id = _name(doc.get("message_id"), f"{where}: message_id")
    event_type = _name(doc.get("event_type"), f"{where}: event_type")
    generated = _datetime(doc.get("generated"), f"{where}: generated")
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
