"""Event lists rendered piece by piece, and raw payloads passed on as stored JSON text.

A large ``GET /v2/events`` page is streamed (chunked, a few hundred events per piece); its
bytes must be exactly those of the whole-list rendering of the decoded events, in JSON and
in WSME-style XML, whatever the payloads hold.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import orjson
import pytest

from annals.api import serializers
from annals.api.serializers import Format
from annals.ingest.events import parse_event
from annals.models import Event, RawJSON, Trait, TraitType, decode_raw
from annals.storage.base import StorageDriver
from tests.conftest import ADMIN

#: Payloads whose JSON text must come out exactly as orjson writes the decoded value.
PAYLOADS: list[Any] = [
    {},
    {"payload": {"name": "vm-ü", "note": 'naïve \u2028 line\nnext "quoted" \\ tab\t'}},
    {"emoji": "\U0001f600", "cjk": "日本語", "control": "\x00\x1f", "html": "</script>&<>"},
    {"numbers": [0, -1, 2**63 - 1, 1.5, 1e-07, 123456789.125], "flags": [True, False, None]},
    [1, "two", {"three": 3}],
    "just a string",
    12345,
    None,
]

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, 1)


def event(n: int, raw: Any) -> Event:
    return Event(
        message_id=f"m-{n:05d}",
        event_type="compute.instance.create.end",
        generated=T0 + dt.timedelta(seconds=n),
        traits=(
            Trait("at", TraitType.DATETIME, T0),
            Trait("memory_mb", TraitType.INTEGER, 512 * n),
            Trait("project_id", TraitType.STRING, "project-a"),
        ),
        raw=raw,
    )


def stored_form(ev: Event) -> Event:
    """The event as storage hands it back: the payload as the JSON text it was written as."""
    raw = ev.raw
    return Event(
        ev.message_id, ev.event_type, ev.generated, ev.traits, RawJSON(orjson.dumps(raw).decode())
    )


def whole(events: list[Event], fmt: Format) -> bytes:
    """The rendering before streaming: decoded payloads, one document."""
    decoded = [
        Event(e.message_id, e.event_type, e.generated, e.traits, decode_raw(e.raw)) for e in events
    ]
    return serializers.render_events(decoded, fmt)


def streamed(events: list[Event], fmt: Format, per_chunk: int) -> bytes:
    return b"".join(serializers.stream_events(list(events), fmt, per_chunk))


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 7, 9, 10, 25])
def test_stream_is_the_whole_rendering(fmt: Format, count: int) -> None:
    events = [stored_form(event(n, PAYLOADS[n % len(PAYLOADS)])) for n in range(count)]
    assert streamed(events, fmt, per_chunk=3) == whole(events, fmt)


def test_empty_list() -> None:
    assert streamed([], Format.JSON, 250) == b"[]"
    assert streamed([], Format.XML, 250) == b"<result />"


@pytest.mark.parametrize("raw", PAYLOADS)
def test_raw_json_text_is_copied_byte_for_byte(raw: Any) -> None:
    ev = event(1, raw)
    as_stored = stored_form(ev)
    assert orjson.dumps(serializers.event_doc(as_stored)) == orjson.dumps(serializers.event_doc(ev))
    assert serializers.render_event(as_stored, Format.XML) == serializers.render_event(
        ev, Format.XML
    )
    assert json.loads(serializers.render_event(as_stored, Format.JSON))["raw"] == raw


def test_xml_renders_the_decoded_payload() -> None:
    ev = stored_form(event(1, {"payload": {"name": "vm-ü", "n": 7}}))
    body = serializers.render_events([ev], Format.XML)
    assert b"<raw>{'payload': {'name': 'vm-&#252;', 'n': 7}}</raw>" in body


def test_stream_takes_the_list_over() -> None:
    events = [stored_form(event(n, {"n": n})) for n in range(10)]
    first_four = b",".join(orjson.dumps(serializers.event_doc(e)) for e in events[:4])
    pieces = serializers.stream_events(events, Format.JSON, per_chunk=4)
    assert len(events) == 10  # nothing happens before the first next()
    assert next(pieces) == b"[" + first_four
    assert len(events) == 6  # rendered events have left the list
    assert b"".join(pieces).endswith(b"]")
    assert events == []


def test_raw_json_equality_follows_the_value() -> None:
    assert RawJSON('{"a":1,"b":[1,2]}') == {"a": 1, "b": [1, 2]}
    assert RawJSON('{"a":1}') == RawJSON('{"a": 1}')
    assert RawJSON('{"a":1}') != {"a": 2}
    assert RawJSON('{"a":1}') != RawJSON('{"a":2}')
    assert decode_raw(RawJSON('["x"]')) == ["x"]
    assert decode_raw({"x": 1}) == {"x": 1}
    with pytest.raises(TypeError):
        hash(RawJSON("{}"))


# --- over HTTP, on every backend ---------------------------------------------------------

#: More than one piece (EVENTS_PER_CHUNK), and not a multiple of it.
MANY = serializers.EVENTS_PER_CHUNK * 2 + 37


def _docs(count: int) -> list[dict[str, Any]]:
    return [
        {
            "message_id": f"m-{n:05d}",
            "event_type": "compute.instance.create.end",
            "generated": (T0 + dt.timedelta(seconds=n)).isoformat(),
            "traits": [["memory_mb", 2, n], ["project_id", 1, "project-a"]],  # as stored: by name
            "raw": PAYLOADS[n % len(PAYLOADS)],
        }
        for n in range(count)
    ]


def _list(client: httpx.Client, fmt: Format, **params: str) -> httpx.Response:
    return client.get(
        "/v2/events",
        params={"q.field": "all_tenants", "q.value": "True", **params},
        headers={**ADMIN, "Accept": fmt.value.split(";")[0]},
    )


@pytest.mark.db
@pytest.mark.parametrize("fmt", [Format.JSON, Format.XML])
def test_large_page_is_streamed_identically(
    driver: StorageDriver, client: httpx.Client, fmt: Format
) -> None:
    docs = _docs(MANY)
    expected_events = [parse_event(d) for d in docs]
    driver.record_events(expected_events)

    resp = _list(client, fmt, limit="10000")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == fmt.value
    assert "content-length" not in resp.headers  # streamed
    assert resp.content == serializers.render_events(expected_events, fmt)
    if fmt is Format.JSON:
        assert [e["raw"] for e in resp.json()] == [e.raw for e in expected_events]


@pytest.mark.db
def test_small_page_keeps_its_content_length(driver: StorageDriver, client: httpx.Client) -> None:
    events = [parse_event(d) for d in _docs(5)]
    driver.record_events(events)
    resp = _list(client, Format.JSON, limit="10000")
    assert resp.status_code == 200
    assert resp.headers["content-length"] == str(len(resp.content))
    assert resp.content == serializers.render_events(events, Format.JSON)

    nothing = client.get(
        "/v2/events",
        params={
            "q.field": ["all_tenants", "event_type"],
            "q.op": ["eq", "eq"],
            "q.type": ["string", "string"],
            "q.value": ["True", "no.such.type"],
        },
        headers=ADMIN,
    )
    assert nothing.status_code == 200
    assert nothing.content == b"[]"


# --- trait values (unpaginated): streamed past TRAITS_PER_CHUNK ----------------------------

TRAITS = [
    Trait("memory_mb", TraitType.INTEGER, 512),
    Trait("size", TraitType.FLOAT, 1.5),
    Trait("at", TraitType.DATETIME, T0),
    Trait("state", TraitType.STRING, 'naïve "quoted" </x>'),
]


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 9])
def test_trait_stream_is_the_whole_rendering(fmt: Format, count: int) -> None:
    traits = [TRAITS[n % len(TRAITS)] for n in range(count)]
    whole_body = serializers.render_traits(traits, fmt)
    assert b"".join(serializers.stream_traits(list(traits), fmt, per_chunk=2)) == whole_body


@pytest.mark.db
@pytest.mark.parametrize("fmt", [Format.JSON, Format.XML])
def test_many_trait_values_are_streamed_identically(
    driver: StorageDriver, client: httpx.Client, fmt: Format
) -> None:
    count = serializers.TRAITS_PER_CHUNK + 37
    events = [parse_event(d) for d in _docs(count)]
    driver.record_events(events)
    path = "/v2/event_types/compute.instance.create.end/traits/memory_mb"
    resp = client.get(path, headers={**ADMIN, "Accept": fmt.value.split(";")[0]})
    assert resp.status_code == 200
    assert "content-length" not in resp.headers  # streamed
    expected = [Trait("memory_mb", TraitType.INTEGER, n) for n in range(count)]
    assert resp.content == serializers.render_traits(expected, fmt)

    few = client.get("/v2/event_types/compute.instance.create.end/traits/nope", headers=ADMIN)
    assert few.status_code == 200
    assert few.headers["content-length"] == str(len(few.content))
    assert few.content == b"[]"
