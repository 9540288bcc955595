"""The publisher-document parser's fast path changes nothing but speed.

``reference_parse_event`` below is the parser without its fast paths: every field and every
trait through the full checks (``_name``, ``_datetime``, ``_trait``), which build their error
texts up front. For any document, the parser must return the same event or raise
InvalidEvent with the very same text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from annals.errors import InvalidEvent
from annals.ingest import events as parser
from annals.models import Event, TraitType
from annals.query import INT64_MAX, INT64_MIN

# --- the reference: every check in order, no fast path ------------------------------------


def _traits(raw_traits: Any, where: str) -> tuple[Any, ...]:
    if raw_traits is None:
        return ()
    if not isinstance(raw_traits, list):
        raise InvalidEvent(f"{where}: traits must be a list of [name, dtype, value]")
    seen: set[tuple[str, TraitType]] = set()
    return tuple(
        parser._trait(item, position, where, seen) for position, item in enumerate(raw_traits)
    )


def reference_parse_event(doc: Any, where: str = "event") -> Event:
    if not isinstance(doc, dict):
        raise InvalidEvent(f"{where}: must be a JSON object")
    message_id = parser._name(doc.get("message_id"), f"{where}: message_id")
    event_type = parser._name(doc.get("event_type"), f"{where}: event_type")
    generated = parser._datetime(doc.get("generated"), f"{where}: generated")
    traits = _traits(doc.get("traits"), where)
    raw = doc.get("raw", {})
    if raw is None:
        raw = {}
    return Event(message_id, event_type, generated, traits, raw)


# --- documents, mostly plausible, often slightly wrong -------------------------------------

names = st.sampled_from(["project_id", "user_id", "host", "memory_mb", "launched_at", "x"]) | (
    st.sampled_from(["", "a\x00b", "n" * 255, "n" * 256, None, 5, 1.5, True])
)
dtypes = st.sampled_from([0, 1, 2, 3, 4]) | st.sampled_from([5, -1, True, False, "1", 1.0, None])
stamps = st.sampled_from(
    [
        "2024-05-01T12:00:00.123456",
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00+02:00",
        "2024-05-01",
        " 2024-05-01T12:00:00 ",
        "2024-13-01T00:00:00",
        "yesterday",
        "",
        "2024-05-01\x00",
        "0001-01-01T00:00:00+01:00",
    ]
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([INT64_MAX, INT64_MIN, INT64_MAX + 1, INT64_MIN - 1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["s" * 255, "s" * 256, "s" * 500, "s" * 501, "a\x00b", "12", "1.5", "x"]),
    stamps,
    st.just({"nested": 1}),
    st.just([1, 2]),
)
list_items = st.tuples(names, dtypes, values).map(list)
dict_items = st.fixed_dictionaries({"name": names, "dtype": dtypes, "value": values})
odd_items = st.sampled_from([[], ["a", 1], ["a", 1, "v", 2], "a", 7, None])
good_names = st.sampled_from(["project_id", "user_id", "host", "memory_mb", "launched_at", "x"])
good_items = st.one_of(
    st.tuples(good_names, st.sampled_from([0, 1]), st.text(max_size=30)),
    st.tuples(good_names, st.just(2), st.integers(min_value=INT64_MIN, max_value=INT64_MAX)),
    st.tuples(good_names, st.just(3), st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(good_names, st.just(4), stamps),
).map(list)
trait_lists = st.lists(
    st.one_of(good_items, good_items, list_items, dict_items, odd_items), max_size=8
)
message_ids = st.sampled_from(["m-1", "", None, 7, "m" * 256, "m\x00"]) | st.text(max_size=8)
documents = st.one_of(
    st.fixed_dictionaries(
        {
            "message_id": message_ids,
            "event_type": st.sampled_from(["compute.instance.create.end", "", None, 3]),
            "generated": stamps | st.sampled_from([None, 17]),
            "traits": trait_lists | st.sampled_from([None, {}, "x"]),
            "raw": st.sampled_from([{"a": 1}, None, [], "text"]),
        }
    ),
    st.sampled_from([None, [], "x", 1]),
)


def outcome(parse: Any, doc: Any) -> tuple[str, Any]:
    try:
        return "event", parse(doc, "event 3")
    except InvalidEvent as exc:
        return "error", str(exc)


@settings(max_examples=2000, deadline=None)
@given(documents)
def test_same_event_or_same_error_as_the_reference(doc: Any) -> None:
    assert outcome(parser.parse_event, doc) == outcome(reference_parse_event, doc)


@settings(max_examples=4000, deadline=None)
@given(trait_lists)
# The limits the fast path checks itself, always tried (random lists reach them rarely):
@example([["x", 1, "s" * 500], ["y", 1, "s" * 501]])
@example([["project_id", 1, "p" * 255], ["user_id", 1, "u" * 256]])
@example([["n", 0, "a\x00b"]])
@example([["i", 2, INT64_MAX], ["j", 2, INT64_MAX + 1]])
@example([["i", 2, INT64_MIN - 1]])
@example([["f", 3, 1.7976931348623157e308], ["g", 3, float("inf")]])
@example([["f", 3, float("nan")]])
@example([["d", 4, "2024-13-01T00:00:00"]])
def test_same_traits_or_same_error_as_the_reference(traits: Any) -> None:
    doc = {
        "message_id": "m-1",
        "event_type": "compute.instance.create.end",
        "generated": "2024-05-01T12:00:00.123456",
        "traits": traits,
        "raw": {"a": 1},
    }
    assert outcome(parser.parse_event, doc) == outcome(reference_parse_event, doc)


def test_types_of_accepted_values_are_kept() -> None:
    """The fast path hands on exactly what the full checks would: str, int, float and naive
    UTC datetime values, with int vs float as the dtype says."""
    doc = {
        "message_id": "m",
        "event_type": "t",
        "generated": "2024-05-01T12:00:00Z",
        "traits": [
            ["s", 1, "v"],
            ["none", 0, 12],
            ["i", 2, 7],
            ["i2", 2, "8"],
            ["f", 3, 1.5],
            ["f2", 3, 2],
            ["d", 4, "2024-05-01T14:00:00+02:00"],
        ],
    }
    got = parser.parse_event(doc)
    assert got == reference_parse_event(doc)
    assert [(t.name, type(t.value)) for t in got.traits] == [
        ("s", str),
        ("none", str),
        ("i", int),
        ("i2", int),
        ("f", float),
        ("f2", float),
        ("d", dt.datetime),
    ]
    assert got.traits[-1].value == dt.datetime(2024, 5, 1, 12, 0, 0)
