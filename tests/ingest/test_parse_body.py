"""``parse_body``: msgspec's typed fast path changes nothing but speed and the raw text.

For any request body, ``parse_body`` must return the events ``parse_batch(orjson.loads(body))``
returns (raw payloads compared by value) or raise InvalidEvent with the very same text, the
invalid JSON text included. Plain publisher documents keep their raw payload as sent.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from annals.errors import InvalidEvent
from annals.ingest.events import parse_batch, parse_body
from annals.models import Event, RawJSON, Trait, TraitType
from tests.ingest.test_parse_fast_path import documents, trait_lists


def reference(body: bytes) -> tuple[str, Any]:
    try:
        docs = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "error", "Request is not in valid JSON format"
    try:
        return "events", parse_batch(docs)
    except InvalidEvent as exc:
        return "error", str(exc)


def outcome(body: bytes) -> tuple[str, Any]:
    try:
        return "events", parse_body(body)
    except InvalidEvent as exc:
        return "error", str(exc)


def encodings(value: Any) -> list[bytes]:
    """The body as Ceilometer's publisher writes it (json.dumps: spaces, NaN, big integers)
    and compact (orjson, when it can encode it)."""
    bodies = [json.dumps(value).encode()]
    with contextlib.suppress(TypeError):  # an integer beyond 64 bits
        bodies.append(orjson.dumps(value))
    return bodies


PLAIN = {
    "message_id": "m-1",
    "event_type": "compute.instance.create.end",
    "generated": "2024-05-01T12:00:00.123456",
    "traits": [["project_id", 1, "p"], ["memory_mb", 2, 512], ["at", 4, "2024-05-01T00:00:00"]],
    "raw": {"payload": {"n": 1}},
}


@settings(max_examples=1500, deadline=None)
@given(st.lists(documents, max_size=4) | documents)
def test_same_events_or_same_error_as_orjson_and_parse_batch(docs: Any) -> None:
    for body in encodings(docs):
        assert outcome(body) == reference(body)


@settings(max_examples=1500, deadline=None)
@given(trait_lists)
@example([["n", 0, 2**70]])  # msgspec reads the integer, orjson a float: both must agree
@example([["f", 3, 2**70], ["g", 3, 10**400]])
@example([["s", 0, 1.5], ["s", 1, "x"]])  # same name, two types
def test_same_traits_or_same_error(traits: Any) -> None:
    for body in encodings([{**PLAIN, "traits": traits}]):
        assert outcome(body) == reference(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[",
        b"[{}] x",
        b'[{"message_id": "m", "raw": {"a": "\\ud800"}}]',
        b'[{"message_id": "m", "raw": {"a": NaN}}]',
        b'[{"message_id": "m", "raw": {"a": 1,}}]',
        b'[{"message_id": "m", "raw": "\xff\xfe"}]',
        b'[{"message_id": "m", "event_type": "t", "generated": "2024-05-01", "raw": "\xff"}]',
        b'[{"message_id": "m", "raw": ' + b"[" * 5000 + b"]" * 5000 + b"}]",
    ],
)
def test_invalid_json_is_the_same_client_error(body: bytes) -> None:
    with pytest.raises(InvalidEvent, match=r"^Request is not in valid JSON format$"):
        parse_body(body)


def test_plain_documents_keep_their_raw_payload_as_sent() -> None:
    body = (
        b'[{"message_id": "m", "event_type": "t", "generated": "2024-05-01T12:00:00", '
        b'"traits": [["host", 1, "h"]], "raw": {"b": 1,  "a": [1, 2.50], "c": "\\u00e9"}}]'
    )
    (event,) = parse_body(body)
    assert isinstance(event.raw, RawJSON)
    assert event.raw.text == '{"b": 1,  "a": [1, 2.50], "c": "\\u00e9"}'
    assert event.raw == {"b": 1, "a": [1, 2.5], "c": "é"}
    expected = (Trait("host", TraitType.STRING, "h"),)
    assert event == Event("m", "t", dt.datetime(2024, 5, 1, 12), expected, event.raw)


@pytest.mark.parametrize("raw", ["", ', "raw": null', ', "raw":  null '])
def test_no_raw_payload_is_an_empty_object(raw: str) -> None:
    body = f'[{{"message_id": "m", "event_type": "t", "generated": "2024-05-01"{raw}}}]'
    (event,) = parse_body(body.encode())
    assert isinstance(event.raw, RawJSON)
    assert event.raw.text == "{}"


def test_other_shapes_take_the_full_parser() -> None:
    """A single object, dict-shaped traits, extra fields: same events, raw decoded."""
    single = {**PLAIN, "extra": [1]}
    dict_traits = {**PLAIN, "traits": [{"name": "host", "dtype": 1, "value": "h"}]}
    for value in (single, [dict_traits]):
        events = parse_body(orjson.dumps(value))
        assert events == parse_batch(value)
        assert events[0].raw == {"payload": {"n": 1}}
        assert not isinstance(events[0].raw, RawJSON)


def test_numbers_beyond_a_double_in_a_raw_payload_are_kept() -> None:
    """Valid JSON that orjson cannot read (Panko's json module read it, as inf): stored as
    sent, and decoded by the standard library when a response needs the value."""
    body = (
        b'[{"message_id": "m", "event_type": "t", "generated": "2024-05-01", '
        b'"raw": {"x": 1e400, "n": 123456789012345678901234567890}}]'
    )
    (event,) = parse_body(body)
    assert isinstance(event.raw, RawJSON)
    decoded = event.raw.decode()
    assert math.isinf(decoded["x"])
    assert decoded["n"] == 123456789012345678901234567890
