"""Unit tests of annals.ingest.events: validation of Ceilometer http-publisher event documents.

No database. Every branch of parse_event/parse_batch, with the exact error texts.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annals.errors import InvalidEvent
from annals.ingest.events import parse_batch, parse_event
from annals.models import NAME_LENGTH, STRING_VALUE_LENGTH, Event, Trait, TraitType
from annals.query import INT64_MAX, INT64_MIN

FAST = settings(max_examples=200, deadline=None)

GENERATED = "2024-05-01T12:00:00.123456"
T0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123456)
BODY_ERROR = "the body must be an event object or a list of event objects"


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "message_id": "3f1e0c2a-0001-4a8e-9d1e-000000000001",
        "event_type": "compute.instance.create.end",
        "generated": GENERATED,
        "traits": [],
        "raw": {},
    }
    base.update(overrides)
    return base


def with_trait(name: Any, dtype: Any, value: Any) -> dict[str, Any]:
    return doc(traits=[[name, dtype, value]])


def rejected(document: Any, where: str | None = None) -> str:
    with pytest.raises(InvalidEvent) as exc:
        if where is None:
            parse_event(document)
        else:
            parse_event(document, where)
    assert str(exc.value) == exc.value.message
    return exc.value.message


def one_trait(name: Any, dtype: Any, value: Any) -> Trait:
    event = parse_event(with_trait(name, dtype, value))
    assert len(event.traits) == 1
    return event.traits[0]


# --- a valid document ---------------------------------------------------------------------


def test_parse_event_full_document() -> None:
    event = parse_event(
        {
            "message_id": "m-1",
            "event_type": "compute.instance.create.end",
            "generated": GENERATED,
            "traits": [
                ["state", 1, "active"],
                ["memory_mb", 2, 2048],
                ["ratio", 3, 0.5],
                ["launched_at", 4, "2024-05-01T11:59:00"],
                ["service", 0, "compute"],
            ],
            "raw": {"payload": {"nested": [1, 2, {"x": None}]}, "flag": True},
            "ignored_extra_key": "whatever",
        }
    )
    assert event == Event(
        "m-1",
        "compute.instance.create.end",
        T0,
        (
            Trait("state", TraitType.STRING, "active"),
            Trait("memory_mb", TraitType.INTEGER, 2048),
            Trait("ratio", TraitType.FLOAT, 0.5),
            Trait("launched_at", TraitType.DATETIME, dt.datetime(2024, 5, 1, 11, 59)),
            Trait("service", TraitType.STRING, "compute"),
        ),
        {"payload": {"nested": [1, 2, {"x": None}]}, "flag": True},
    )


def test_parse_event_minimal_document() -> None:
    event = parse_event({"message_id": "m", "event_type": "t", "generated": "2024-05-01"})
    assert event == Event("m", "t", dt.datetime(2024, 5, 1), (), {})


@pytest.mark.parametrize("raw", [{"a": 1}, [1, 2], "text", 5, True, {}])
def test_raw_is_kept_as_given(raw: Any) -> None:
    assert parse_event(doc(raw=raw)).raw == raw


def test_raw_defaults_to_empty_dict() -> None:
    document = doc()
    del document["raw"]
    assert parse_event(document).raw == {}
    assert parse_event(doc(raw=None)).raw == {}


@pytest.mark.parametrize("document", [[], "event", 5, None, True, [doc()]])
def test_parse_event_requires_an_object(document: Any) -> None:
    assert rejected(document) == "event: must be a JSON object"


# --- message_id and event_type ------------------------------------------------------------


@pytest.mark.parametrize("field", ["message_id", "event_type"])
@pytest.mark.parametrize("value", [None, "", 123, 1.5, True, [], {}, ["m"]])
def test_names_must_be_non_empty_strings(field: str, value: Any) -> None:
    assert rejected(doc(**{field: value})) == f"event: {field} must be a non-empty string"


@pytest.mark.parametrize("field", ["message_id", "event_type"])
def test_names_missing(field: str) -> None:
    document = doc()
    del document[field]
    assert rejected(document) == f"event: {field} must be a non-empty string"


@pytest.mark.parametrize("field", ["message_id", "event_type"])
def test_names_length_limit(field: str) -> None:
    assert getattr(parse_event(doc(**{field: "x" * NAME_LENGTH})), field) == "x" * 255
    # the limit is in characters, not bytes
    assert getattr(parse_event(doc(**{field: "é" * 255})), field) == "é" * 255
    assert rejected(doc(**{field: "x" * 256})) == (f"event: {field} is longer than 255 characters")


@pytest.mark.parametrize("field", ["message_id", "event_type"])
@pytest.mark.parametrize("value", ["\x00", "a\x00b", "ab\x00"])
def test_names_reject_nul(field: str, value: str) -> None:
    assert rejected(doc(**{field: value})) == f"event: {field} contains a NUL character"


def test_names_keep_whitespace_and_unicode() -> None:
    event = parse_event(doc(message_id=" évènement ☃ ", event_type="a b"))
    assert event.message_id == " évènement ☃ "
    assert event.event_type == "a b"


def test_message_id_is_checked_before_event_type_and_generated() -> None:
    assert rejected(doc(message_id="", event_type="", generated=None)) == (
        "event: message_id must be a non-empty string"
    )
    assert rejected(doc(event_type="", generated=None)) == (
        "event: event_type must be a non-empty string"
    )


# --- generated ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00.123456", T0),
        ("2024-05-01T12:00:00", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01 12:00:00", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01", dt.datetime(2024, 5, 1)),
        ("2024-05-01T12:00:00Z", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01T12:00:00.123456Z", T0),
        ("2024-05-01T12:00:00+00:00", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01T14:00:00.123456+02:00", T0),
        ("2024-05-01T07:00:00-05:00", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01T01:00:00+03:00", dt.datetime(2024, 4, 30, 22)),
        ("2024-12-31T23:30:00-01:00", dt.datetime(2025, 1, 1, 0, 30)),
    ],
)
def test_generated_formats_are_normalised_to_naive_utc(text: str, expected: dt.datetime) -> None:
    generated = parse_event(doc(generated=text)).generated
    assert generated == expected
    assert generated.tzinfo is None


@pytest.mark.parametrize("value", [None, 1714564800, 1.5, True, [], {}])
def test_generated_must_be_a_string(value: Any) -> None:
    assert rejected(doc(generated=value)) == "event: generated must be an ISO 8601 timestamp string"


def test_generated_missing() -> None:
    document = doc()
    del document["generated"]
    assert rejected(document) == "event: generated must be an ISO 8601 timestamp string"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "notadate",
        "2024-13-01T00:00:00",
        "2024-05-01T12:00:00\x00",
        "0001-01-01T00:00:00+01:00",
        "2024-05-01T25:00",
    ],
)
def test_generated_must_parse(value: str) -> None:
    assert rejected(doc(generated=value)) == (
        f"event: generated is not a valid ISO 8601 timestamp: {value!r}"
    )


# --- traits: container and items ---------------------------------------------------------


def test_traits_absent_or_null_or_empty() -> None:
    document = doc()
    del document["traits"]
    assert parse_event(document).traits == ()
    assert parse_event(doc(traits=None)).traits == ()
    assert parse_event(doc(traits=[])).traits == ()


@pytest.mark.parametrize("traits", [{}, {"name": "a", "dtype": 1, "value": "v"}, "a", 5, True])
def test_traits_must_be_a_list(traits: Any) -> None:
    assert rejected(doc(traits=traits)) == ("event: traits must be a list of [name, dtype, value]")


@pytest.mark.parametrize("item", ["a", 5, None, [], ["a"], ["a", 1], ["a", 1, "v", "x"], True])
def test_trait_items_must_be_triples(item: Any) -> None:
    assert rejected(doc(traits=[item])) == "event: trait 0 must be a list [name, dtype, value]"


def test_trait_item_position_is_named() -> None:
    assert rejected(doc(traits=[["a", 1, "v"], ["b", 1, "v"], ["c", 1]])) == (
        "event: trait 2 must be a list [name, dtype, value]"
    )


def test_traits_as_dicts() -> None:
    event = parse_event(
        doc(
            traits=[
                {"name": "state", "dtype": 1, "value": "active"},
                {"value": 7, "dtype": 2, "name": "count", "extra": "ignored"},
                ["ratio", 3, 1.25],
            ]
        )
    )
    assert event.traits == (
        Trait("state", TraitType.STRING, "active"),
        Trait("count", TraitType.INTEGER, 7),
        Trait("ratio", TraitType.FLOAT, 1.25),
    )


def test_traits_as_dicts_with_missing_keys() -> None:
    assert rejected(doc(traits=[{"dtype": 1, "value": "v"}])) == (
        "event: trait 0 name must be a non-empty string"
    )
    assert rejected(doc(traits=[{"name": "a", "value": "v"}])) == (
        "event: trait 0 (a) has unknown dtype None; expected 0-4"
    )
    assert rejected(doc(traits=[{"name": "a", "dtype": 1}])) == (
        "event: trait 0 (a) has no usable value"
    )
    assert rejected(doc(traits=[{}])) == "event: trait 0 name must be a non-empty string"


# --- traits: names and dtypes -------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "", 5, [], True])
def test_trait_name_must_be_a_non_empty_string(name: Any) -> None:
    assert rejected(with_trait(name, 1, "v")) == "event: trait 0 name must be a non-empty string"


def test_trait_name_limits() -> None:
    assert one_trait("n" * 255, 1, "v").name == "n" * 255
    assert rejected(with_trait("n" * 256, 1, "v")) == (
        "event: trait 0 name is longer than 255 characters"
    )
    assert rejected(with_trait("a\x00", 1, "v")) == "event: trait 0 name contains a NUL character"


@pytest.mark.parametrize(
    ("dtype", "trait_type"),
    [
        (0, TraitType.STRING),
        (1, TraitType.STRING),
        (2, TraitType.INTEGER),
        (3, TraitType.FLOAT),
        (4, TraitType.DATETIME),
    ],
)
def test_every_dtype(dtype: int, trait_type: TraitType) -> None:
    value = {0: "x", 1: "x", 2: 3, 3: 2.5, 4: "2024-05-01T00:00:00"}[dtype]
    trait = one_trait("t", dtype, value)
    assert trait.type is trait_type


@pytest.mark.parametrize("dtype", [5, -1, 99, "1", 1.0, 2.0, True, False, None, [1], {}])
def test_unknown_dtype(dtype: Any) -> None:
    assert rejected(with_trait("t", dtype, "v")) == (
        f"event: trait 0 (t) has unknown dtype {dtype!r}; expected 0-4"
    )


@pytest.mark.parametrize("dtype", [0, 1, 2, 3, 4])
def test_null_value_is_rejected_for_every_dtype(dtype: int) -> None:
    assert rejected(with_trait("t", dtype, None)) == "event: trait 0 (t) has no usable value"


# --- string traits ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [0, 1])
def test_string_values(dtype: int) -> None:
    assert one_trait("s", dtype, "").value == ""
    assert one_trait("s", dtype, "Zoë Ångström ☃").value == "Zoë Ångström ☃"
    assert one_trait("s", dtype, "v" * STRING_VALUE_LENGTH).value == "v" * 500
    assert one_trait("s", dtype, "é" * 500).value == "é" * 500
    assert rejected(with_trait("s", dtype, "v" * 501)) == (
        "event: trait 0 (s) is longer than 500 characters"
    )
    assert rejected(with_trait("s", dtype, "a\x00b")) == (
        "event: trait 0 (s) contains a NUL character"
    )


@pytest.mark.parametrize("value", [5, 1.5, True, False, [], {}, ["a"]])
def test_dtype_1_requires_a_string(value: Any) -> None:
    assert rejected(with_trait("s", 1, value)) == "event: trait 0 (s) must be a string"


@pytest.mark.parametrize(("value", "text"), [(5, "5"), (-1, "-1"), (1.5, "1.5"), ("x", "x")])
def test_dtype_0_is_stored_as_its_string(value: Any, text: str) -> None:
    assert one_trait("s", 0, value) == Trait("s", TraitType.STRING, text)


def test_dtype_0_string_limit_applies_to_the_rendered_value() -> None:
    assert rejected(with_trait("s", 0, 10**600)) == (
        "event: trait 0 (s) is longer than 500 characters"
    )


# --- owner traits (project_id, user_id) ---------------------------------------------------


@pytest.mark.parametrize("name", ["project_id", "user_id"])
@pytest.mark.parametrize("dtype", [0, 1])
def test_owner_traits_are_held_to_name_length(name: str, dtype: int) -> None:
    assert one_trait(name, dtype, "p" * 255).value == "p" * 255
    assert rejected(with_trait(name, dtype, "p" * 256)) == (
        f"event: trait 0 ({name}) is longer than 255 characters"
    )
    assert rejected(with_trait(name, dtype, "p\x00")) == (
        f"event: trait 0 ({name}) contains a NUL character"
    )


def test_other_string_traits_may_exceed_name_length() -> None:
    assert one_trait("tenant_id", 1, "p" * 300).value == "p" * 300
    assert one_trait("project_name", 1, "p" * 500).value == "p" * 500


def test_non_string_owner_traits_are_not_length_checked() -> None:
    assert one_trait("project_id", 2, 42) == Trait("project_id", TraitType.INTEGER, 42)
    assert one_trait("user_id", 3, 1.5).value == 1.5


def test_owner_trait_with_wrong_value_type() -> None:
    assert rejected(with_trait("project_id", 1, 42)) == (
        "event: trait 0 (project_id) must be a string"
    )
    assert rejected(with_trait("project_id", 1, None)) == (
        "event: trait 0 (project_id) has no usable value"
    )


# --- integer traits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (2048, 2048),
        (-42, -42),
        ("42", 42),
        ("-7", -7),
        (INT64_MAX, INT64_MAX),
        (INT64_MIN, INT64_MIN),
        (str(INT64_MAX), INT64_MAX),
        (str(INT64_MIN), INT64_MIN),
    ],
)
def test_integer_values(value: Any, expected: int) -> None:
    trait = one_trait("i", 2, value)
    assert trait == Trait("i", TraitType.INTEGER, expected)
    assert type(trait.value) is int


@pytest.mark.parametrize(
    "value",
    [
        INT64_MAX + 1,
        INT64_MIN - 1,
        2**64,
        str(INT64_MAX + 1),
        1.5,
        2.0,
        "1.5",
        "abc",
        "",
        [],
        {},
        [1],
        "9" * 5000,
        float("nan"),
        float("inf"),
    ],
)
def test_integer_rejects(value: Any) -> None:
    assert rejected(with_trait("i", 2, value)) == "event: trait 0 (i) must be a 64-bit integer"


@pytest.mark.parametrize("dtype", [2, 3, 4])
@pytest.mark.parametrize("value", [True, False])
def test_bool_is_rejected_for_non_string_dtypes(dtype: int, value: bool) -> None:
    assert rejected(with_trait("b", dtype, value)) == "event: trait 0 (b) has no usable value"


@FAST
@given(st.integers(min_value=INT64_MIN, max_value=INT64_MAX), st.booleans())
def test_every_int64_is_accepted(number: int, as_text: bool) -> None:
    value: int | str = str(number) if as_text else number
    assert one_trait("i", 2, value).value == number


@FAST
@given(
    st.one_of(st.integers(max_value=INT64_MIN - 1), st.integers(min_value=INT64_MAX + 1)),
    st.booleans(),
)
def test_integers_outside_int64_are_rejected(number: int, as_text: bool) -> None:
    value: int | str = str(number) if as_text else number
    assert rejected(with_trait("i", 2, value)) == "event: trait 0 (i) must be a 64-bit integer"


# --- float traits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, 0.5),
        (-3.5, -3.5),
        (1e-07, 1e-07),
        (1e20, 1e20),
        (2, 2.0),
        (0, 0.0),
        ("2.5", 2.5),
        ("1e3", 1000.0),
        (INT64_MAX, float(INT64_MAX)),
    ],
)
def test_float_values(value: Any, expected: float) -> None:
    trait = one_trait("f", 3, value)
    assert trait == Trait("f", TraitType.FLOAT, expected)
    assert type(trait.value) is float


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        "nan",
        "NaN",
        "inf",
        "-Infinity",
        "1e400",
        "abc",
        "",
        [],
        {},
        [1.5],
    ],
)
def test_float_rejects(value: Any) -> None:
    assert rejected(with_trait("f", 3, value)) == "event: trait 0 (f) must be a finite number"


def test_float_rejects_an_int_too_large_for_a_double() -> None:
    assert rejected(with_trait("f", 3, 10**400)) == "event: trait 0 (f) must be a finite number"


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False), st.booleans())
def test_every_finite_float_is_accepted(real: float, as_text: bool) -> None:
    value: float | str = repr(real) if as_text else real
    assert one_trait("f", 3, value).value == real


# --- datetime traits ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:00:00.123456", T0),
        ("2024-05-01T12:00:00Z", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01T14:00:00+02:00", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01", dt.datetime(2024, 5, 1)),
    ],
)
def test_datetime_values(value: str, expected: dt.datetime) -> None:
    trait = one_trait("d", 4, value)
    assert trait == Trait("d", TraitType.DATETIME, expected)
    assert isinstance(trait.value, dt.datetime)
    assert trait.value.tzinfo is None


@pytest.mark.parametrize("value", [1714564800, 1.5, [], {}])
def test_datetime_must_be_a_string(value: Any) -> None:
    assert rejected(with_trait("d", 4, value)) == (
        "event: trait 0 (d) must be an ISO 8601 timestamp string"
    )


@pytest.mark.parametrize("value", ["", "notadate", "2024-02-30", "a\x00"])
def test_datetime_must_parse(value: str) -> None:
    assert rejected(with_trait("d", 4, value)) == (
        f"event: trait 0 (d) is not a valid ISO 8601 timestamp: {value!r}"
    )


# --- duplicates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "type_name"),
    [
        (1, 1, "string"),
        (0, 1, "string"),
        (1, 0, "string"),
        (0, 0, "string"),
        (2, 2, "integer"),
        (3, 3, "float"),
        (4, 4, "datetime"),
    ],
)
def test_duplicate_name_and_type_is_rejected(first: int, second: int, type_name: str) -> None:
    value = {0: "a", 1: "b", 2: 1, 3: 1.5, 4: "2024-05-01"}
    document = doc(
        traits=[["x", first, value[first]], ["other", 1, "o"], ["x", second, value[second]]]
    )
    assert rejected(document) == f"event: trait 2 repeats trait 'x' of type {type_name}"


def test_duplicate_is_detected_even_if_values_are_equal_or_the_second_is_invalid() -> None:
    assert rejected(doc(traits=[["x", 1, "a"], ["x", 1, "a"]])) == (
        "event: trait 1 repeats trait 'x' of type string"
    )
    assert rejected(doc(traits=[["x", 2, 1], ["x", 2, "not a number"]])) == (
        "event: trait 1 repeats trait 'x' of type integer"
    )


def test_same_name_with_different_types_is_allowed() -> None:
    event = parse_event(
        doc(
            traits=[
                ["size", 2, 10],
                ["size", 3, 20.5],
                ["size", 1, "big"],
                ["size", 4, "2024-05-01"],
            ]
        )
    )
    assert [(t.name, t.type) for t in event.traits] == [
        ("size", TraitType.INTEGER),
        ("size", TraitType.FLOAT),
        ("size", TraitType.STRING),
        ("size", TraitType.DATETIME),
    ]


def test_names_differing_only_in_case_are_different_traits() -> None:
    event = parse_event(doc(traits=[["State", 1, "a"], ["state", 1, "b"]]))
    assert [t.name for t in event.traits] == ["State", "state"]


# --- where --------------------------------------------------------------------------------


def test_where_prefixes_every_message() -> None:
    assert rejected("x", "event 7") == "event 7: must be a JSON object"
    assert rejected(doc(message_id=""), "event 7") == (
        "event 7: message_id must be a non-empty string"
    )
    assert rejected(doc(traits=[["a", 9, "v"]]), "line 12") == (
        "line 12: trait 0 (a) has unknown dtype 9; expected 0-4"
    )


# --- parse_batch --------------------------------------------------------------------------


def test_parse_batch_single_object() -> None:
    events = parse_batch(doc(message_id="only"))
    assert [e.message_id for e in events] == ["only"]


def test_parse_batch_list() -> None:
    events = parse_batch([doc(message_id=f"m-{i}") for i in range(5)])
    assert [e.message_id for e in events] == [f"m-{i}" for i in range(5)]


def test_parse_batch_empty_list() -> None:
    assert parse_batch([]) == []


@pytest.mark.parametrize("body", ["events", 5, None, True, 1.5, ("a",)])
def test_parse_batch_rejects_non_lists(body: Any) -> None:
    with pytest.raises(InvalidEvent) as exc:
        parse_batch(body)
    assert exc.value.message == BODY_ERROR


def test_parse_batch_names_the_index_of_the_bad_event() -> None:
    docs = [doc(message_id=f"m-{i}") for i in range(5)]
    docs[3]["message_id"] = ""
    with pytest.raises(InvalidEvent) as exc:
        parse_batch(docs)
    assert exc.value.message == "event 3: message_id must be a non-empty string"


def test_parse_batch_names_the_index_of_a_bad_trait() -> None:
    docs = [doc(message_id=f"m-{i}") for i in range(3)]
    docs[2]["traits"] = [["ok", 1, "v"], ["size", 2, "big"]]
    with pytest.raises(InvalidEvent) as exc:
        parse_batch(docs)
    assert exc.value.message == "event 2: trait 1 (size) must be a 64-bit integer"


def test_parse_batch_reports_the_first_bad_event() -> None:
    with pytest.raises(InvalidEvent) as exc:
        parse_batch([doc(), "not an object", doc(generated="bad")])
    assert exc.value.message == "event 1: must be a JSON object"


def test_parse_batch_single_object_is_event_0() -> None:
    with pytest.raises(InvalidEvent) as exc:
        parse_batch(doc(event_type=None))
    assert exc.value.message == "event 0: event_type must be a non-empty string"


def test_parse_batch_nested_list_is_not_an_object() -> None:
    with pytest.raises(InvalidEvent) as exc:
        parse_batch([[doc()]])
    assert exc.value.message == "event 0: must be a JSON object"


# --- properties ---------------------------------------------------------------------------

fixed_offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
names = st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s)
valid_traits = st.one_of(
    st.tuples(
        names, st.sampled_from([0, 1]), st.text(max_size=40).filter(lambda s: "\x00" not in s)
    ),
    st.tuples(names, st.just(2), st.integers(min_value=INT64_MIN, max_value=INT64_MAX)),
    st.tuples(names, st.just(3), st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(names, st.just(4), st.datetimes().map(dt.datetime.isoformat)),
)
valid_docs = st.fixed_dictionaries(
    {
        "message_id": names,
        "event_type": names,
        "generated": st.datetimes(
            min_value=dt.datetime(2, 1, 1),
            max_value=dt.datetime(9998, 12, 31),
            timezones=st.one_of(st.none(), fixed_offsets),
        ),
        # at most one trait per (name, type); dtypes 0 and 1 are both the string type
        "traits": st.lists(valid_traits, max_size=6, unique_by=lambda t: (t[0], max(t[1], 1))),
        "raw": st.dictionaries(
            st.text(max_size=5), st.integers(min_value=INT64_MIN, max_value=INT64_MAX), max_size=3
        ),
    }
)


@FAST
@given(valid_docs)
def test_valid_documents_are_accepted_faithfully(spec: dict[str, Any]) -> None:
    generated: dt.datetime = spec["generated"]
    document = dict(spec, generated=generated.isoformat(), traits=[list(t) for t in spec["traits"]])
    # through JSON, as the API and the importer see it
    event = parse_event(orjson.loads(orjson.dumps(document)))
    expected_generated = (
        generated.astimezone(dt.UTC).replace(tzinfo=None)
        if generated.tzinfo is not None
        else generated
    )
    assert event.message_id == spec["message_id"]
    assert event.event_type == spec["event_type"]
    assert event.generated == expected_generated
    assert event.raw == spec["raw"]
    assert len(event.traits) == len(spec["traits"])
    for trait, (name, dtype, value) in zip(event.traits, spec["traits"], strict=True):
        assert trait.name == name
        assert trait.type is (TraitType.STRING if dtype == 0 else TraitType(dtype))
        if dtype == 4:
            assert trait.value == dt.datetime.fromisoformat(value)
        else:
            assert trait.value == value


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.text(max_size=10),
        st.integers(min_value=INT64_MIN, max_value=2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(["2024-05-01T12:00:00Z", "project_id", "user_id", "x" * 300]),
        st.integers(min_value=0, max_value=4),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
trait_like = st.one_of(
    valid_traits.map(list),
    st.tuples(
        st.one_of(st.sampled_from(["project_id", "user_id", "a", ""]), json_values),
        st.one_of(st.integers(min_value=-1, max_value=5), json_values),
        json_values,
    ).map(list),
    st.fixed_dictionaries(
        {}, optional={"name": json_values, "dtype": json_values, "value": json_values}
    ),
    json_values,
)
doc_like = st.fixed_dictionaries(
    {
        "message_id": st.one_of(names, json_values),
        "event_type": st.one_of(names, json_values),
        "generated": st.one_of(st.just(GENERATED), json_values),
    },
    optional={
        "traits": st.one_of(st.lists(trait_like, max_size=4), json_values),
        "raw": json_values,
    },
)


@FAST
@given(st.one_of(doc_like, st.lists(doc_like, max_size=3), json_values))
def test_parse_batch_accepts_or_raises_invalid_event_only(body: Any) -> None:
    # anything orjson can produce: either events satisfying the invariants, or InvalidEvent
    try:
        events = parse_batch(body)
    except InvalidEvent as exc:
        assert exc.message
        return
    for event in events:
        assert 0 < len(event.message_id) <= NAME_LENGTH
        assert 0 < len(event.event_type) <= NAME_LENGTH
        assert event.generated.tzinfo is None
        seen = set()
        for trait in event.traits:
            assert 0 < len(trait.name) <= NAME_LENGTH
            assert (trait.name, trait.type) not in seen
            seen.add((trait.name, trait.type))
            if trait.type is TraitType.STRING:
                assert isinstance(trait.value, str)
                assert "\x00" not in trait.value
                limit = NAME_LENGTH if trait.name in ("project_id", "user_id") else 500
                assert len(trait.value) <= limit
            elif trait.type is TraitType.INTEGER:
                assert type(trait.value) is int
                assert INT64_MIN <= trait.value <= INT64_MAX
            elif trait.type is TraitType.FLOAT:
                assert type(trait.value) is float
                assert math.isfinite(trait.value)
            else:
                assert isinstance(trait.value, dt.datetime)
                assert trait.value.tzinfo is None
