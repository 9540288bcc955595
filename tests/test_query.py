"""Unit tests of the engine-neutral query model (annals.query) and of visibility (annals.policy).

No database: everything here is pure validation and rewriting. Error texts are Panko 10's,
byte for byte (tests/golden/FINDINGS.md, section 3), so they are compared exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from oslo_utils import strutils

from annals import policy
from annals import query as q
from annals.errors import Forbidden, InvalidQuery, Unauthorized
from annals.models import TraitType, TraitValue
from annals.policy import Credentials
from annals.query import (
    DEFAULT_SORT,
    INT64_MAX,
    INT64_MIN,
    EventQuery,
    Op,
    ParsedConditions,
    RawCondition,
    Scope,
    ScopeKind,
    SortKey,
    TraitFilter,
)

FAST = settings(max_examples=200, deadline=None)

OPERATORS_TEXT = "('lt', 'le', 'eq', 'ne', 'ge', 'gt')"
TYPES_TEXT = "['integer', 'float', 'string', 'datetime']"
SORT_TAIL = (
    "the sort parameter should be a pair of sort key and sort dir combined with ':', or only "
    "sort key specified and sort dir will be default 'asc', "
)

ADMIN = Credentials(user_id="admin-user", project_id="project-admin", roles=("admin",))
MEMBER = Credentials(user_id="user-a", project_id="project-a", roles=("member",))

TRUE_STRINGS = ("true", "1", "yes", "on", "y", "t")


def bad_op(op: str) -> str:
    return f"Operator {op} is not supported. The supported operators are: {OPERATORS_TEXT}"


def only_op(op: str, wanted: str, name: str) -> str:
    return f"Operator {op} is not supported. Only `{wanted}' operator is available for field {name}"


def bad_type(type_name: str) -> str:
    return (
        f"The data type {type_name} is not supported. The supported data type list is: {TYPES_TEXT}"
    )


def no_convert(value: str, type_name: str) -> str:
    return f"Unable to convert the value {value} to the expected data type {type_name}."


def bad_sort_key(item: str) -> str:
    return (
        f"Invalid input for field/attribute sort. Value: '{item}'. {SORT_TAIL}"
        "the supported sort keys are: ('message_id', 'generated')"
    )


def bad_sort_dir(item: str) -> str:
    return (
        f"Invalid input for field/attribute sort direction. Value: '{item}'. {SORT_TAIL}"
        "the supported sort directions are: ('asc', 'desc')"
    )


def cond(
    field: str | None, value: str | None = None, op: str | None = None, type: str | None = None
) -> RawCondition:
    return RawCondition(field=field, op=op, type=type, value=value)


def invalid(exc: pytest.ExceptionInfo[InvalidQuery]) -> str:
    assert str(exc.value) == exc.value.message
    return exc.value.message


def test_error_texts_of_this_module_match_the_findings_catalogue() -> None:
    # Spot-check the helpers above against literal lines of FINDINGS.md section 3.
    assert bad_op("foo") == (
        "Operator foo is not supported. The supported operators are: "
        "('lt', 'le', 'eq', 'ne', 'ge', 'gt')"
    )
    assert only_op("ne", "eq", "event_type") == (
        "Operator ne is not supported. Only `eq' operator is available for field event_type"
    )
    assert bad_type("foo") == (
        "The data type foo is not supported. The supported data type list is: "
        "['integer', 'float', 'string', 'datetime']"
    )
    assert bad_sort_key("foo:asc") == (
        "Invalid input for field/attribute sort. Value: 'foo:asc'. the sort parameter should be "
        "a pair of sort key and sort dir combined with ':', or only sort key specified and sort "
        "dir will be default 'asc', the supported sort keys are: ('message_id', 'generated')"
    )
    assert bad_sort_dir("generated:up") == (
        "Invalid input for field/attribute sort direction. Value: 'generated:up'. the sort "
        "parameter should be a pair of sort key and sort dir combined with ':', or only sort key "
        "specified and sort dir will be default 'asc', the supported sort directions are: "
        "('asc', 'desc')"
    )


# --- convert_value ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name", "expected"),
    [
        ("42", "integer", 42),
        ("-42", "integer", -42),
        ("+3", "integer", 3),
        (" 7 ", "integer", 7),
        ("0", "integer", 0),
        (str(INT64_MAX), "integer", INT64_MAX),
        (str(INT64_MIN), "integer", INT64_MIN),
        ("1.5", "float", 1.5),
        ("-3.5", "float", -3.5),
        ("1e-07", "float", 1e-07),
        ("1e+20", "float", 1e20),
        ("2048", "float", 2048.0),
        ("abc", "string", "abc"),
        ("", "string", ""),
        ("  spaced  ", "string", "  spaced  "),
        ("2024-03-05", "datetime", dt.datetime(2024, 3, 5)),
        ("2024-03-05T10:00:00.250000", "datetime", dt.datetime(2024, 3, 5, 10, 0, 0, 250000)),
        ("2024-03-05T10:00:00Z", "datetime", dt.datetime(2024, 3, 5, 10)),
        ("2024-03-05T10:00:00+01:00", "datetime", dt.datetime(2024, 3, 5, 9)),
    ],
)
def test_convert_value_accepts(value: str, type_name: str, expected: object) -> None:
    converted = q.convert_value(value, type_name)
    assert converted == expected
    assert type(converted) is type(expected)


def test_convert_value_none_is_the_empty_string() -> None:
    assert q.convert_value(None, "string") == ""


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ("abc", "integer"),
        ("2048.0", "integer"),
        ("1e3", "integer"),
        ("", "integer"),
        (str(INT64_MAX + 1), "integer"),
        (str(INT64_MIN - 1), "integer"),
        ("9" * 5000, "integer"),  # beyond Python's int-from-str digit limit
        ("x", "float"),
        ("", "float"),
        ("nan", "float"),
        ("NaN", "float"),
        ("inf", "float"),
        ("-inf", "float"),
        ("Infinity", "float"),
        ("1e400", "float"),
        ("notadate", "datetime"),
        ("", "datetime"),
        ("2024-02-30", "datetime"),
        ("0001-01-01T00:00:00+01:00", "datetime"),
    ],
)
def test_convert_value_rejects_with_panko_text(value: str, type_name: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.convert_value(value, type_name)
    assert invalid(exc) == no_convert(value, type_name)


def test_convert_value_panko_catalogue_examples() -> None:
    for value, type_name in (
        ("abc", "integer"),
        ("2048.0", "integer"),
        ("x", "float"),
        ("notadate", "datetime"),
    ):
        with pytest.raises(InvalidQuery) as exc:
            q.convert_value(value, type_name)
        assert invalid(exc) == no_convert(value, type_name)
    with pytest.raises(InvalidQuery) as exc:
        q.convert_value("abc", "integer")
    assert invalid(exc) == "Unable to convert the value abc to the expected data type integer."


@pytest.mark.parametrize("type_name", ["foo", "boolean", "none", "", "Integer", "STRING", "int"])
def test_convert_value_rejects_unsupported_types(type_name: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.convert_value("1", type_name)
    assert invalid(exc) == bad_type(type_name)


def test_unsupported_type_is_reported_before_the_value() -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.convert_value("not a number", "boolean")
    assert invalid(exc) == bad_type("boolean")


@FAST
@given(st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
def test_convert_integer_round_trips_every_int64(number: int) -> None:
    converted = q.convert_value(str(number), "integer")
    assert converted == number
    assert type(converted) is int


@FAST
@given(st.one_of(st.integers(max_value=INT64_MIN - 1), st.integers(min_value=INT64_MAX + 1)))
def test_convert_integer_rejects_outside_int64(number: int) -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.convert_value(str(number), "integer")
    assert invalid(exc) == no_convert(str(number), "integer")


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_convert_float_round_trips_every_finite_float(real: float) -> None:
    converted = q.convert_value(repr(real), "float")
    assert converted == real
    assert type(converted) is float


@FAST
@given(st.datetimes())
def test_convert_datetime_round_trips(value: dt.datetime) -> None:
    assert q.convert_value(value.isoformat(), "datetime") == value


@FAST
@given(st.text(), st.sampled_from(q.SUPPORTED_TYPES))
def test_convert_value_only_raises_invalid_query(value: str, type_name: str) -> None:
    try:
        converted = q.convert_value(value, type_name)
    except InvalidQuery as exc:
        assert exc.message == no_convert(value, type_name)
        return
    expected_type = {"integer": int, "float": float, "string": str, "datetime": dt.datetime}
    assert isinstance(converted, expected_type[type_name])
    if type_name == "string":
        assert converted == value


# --- parse_timestamp ---------------------------------------------------------------------


def test_parse_timestamp_accepts_offsets_and_dates() -> None:
    assert q.parse_timestamp("2024-03-05T10:00:00+02:00") == dt.datetime(2024, 3, 5, 8)
    assert q.parse_timestamp("2024-03-05T10:00:00Z") == dt.datetime(2024, 3, 5, 10)
    assert q.parse_timestamp("2024-03-05") == dt.datetime(2024, 3, 5)


@pytest.mark.parametrize(("value", "shown"), [("notadate", "notadate"), ("", ""), (None, "")])
def test_parse_timestamp_rejects_with_panko_text(value: str | None, shown: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.parse_timestamp(value)
    assert invalid(exc) == f"Unable to parse date string '{shown}'"


# --- parse_bool (oslo bool_from_string, non-strict) ---------------------------------------


@pytest.mark.parametrize(
    "value",
    [*TRUE_STRINGS, "True", "TRUE", "Yes", "ON", "Y", "T", " true ", "\ttrue\n", "tRuE"],
)
def test_parse_bool_true(value: str) -> None:
    assert q.parse_bool(value) is True


@pytest.mark.parametrize(
    "value",
    [
        "False",
        "false",
        "0",
        "no",
        "off",
        "n",
        "f",
        "garbage",
        "",
        "  ",
        None,
        "2",
        "truee",
        "yes!",
        "1.0",
    ],
)
def test_parse_bool_false(value: str | None) -> None:
    assert q.parse_bool(value) is False


@FAST
@given(
    st.one_of(
        st.none(),
        st.text(),
        st.sampled_from(TRUE_STRINGS).flatmap(
            lambda word: st.tuples(
                st.text(" \t\n", max_size=2),
                st.text(" \t\n", max_size=2),
                st.lists(st.booleans(), min_size=len(word), max_size=len(word)),
            ).map(
                lambda parts: (
                    parts[0]
                    + "".join(c.upper() if up else c for c, up in zip(word, parts[2], strict=True))
                    + parts[1]
                )
            ),
        ),
    )
)
def test_parse_bool_agrees_with_oslo(value: str | None) -> None:
    assert q.parse_bool(value) is bool(strutils.bool_from_string(value))


# --- trait_filter -------------------------------------------------------------------------


def test_trait_filter_defaults_to_string_eq() -> None:
    assert q.trait_filter(cond("state", "active")) == TraitFilter(
        "state", TraitType.STRING, Op.EQ, "active"
    )


@pytest.mark.parametrize(
    ("type_name", "value", "trait_type", "expected"),
    [
        ("integer", "2048", TraitType.INTEGER, 2048),
        ("float", "20.5", TraitType.FLOAT, 20.5),
        ("string", "2048", TraitType.STRING, "2048"),
        ("", "2048", TraitType.STRING, "2048"),
        ("datetime", "2024-03-05T10:00:00-01:00", TraitType.DATETIME, dt.datetime(2024, 3, 5, 11)),
    ],
)
def test_trait_filter_types(
    type_name: str, value: str, trait_type: TraitType, expected: TraitValue
) -> None:
    flt = q.trait_filter(cond("size", value, op="ge", type=type_name))
    assert flt == TraitFilter("size", trait_type, Op.GE, expected)


def test_trait_filter_without_field_or_value() -> None:
    assert q.trait_filter(cond(None)) == TraitFilter("", TraitType.STRING, Op.EQ, "")


# --- build_query --------------------------------------------------------------------------


def test_build_query_empty() -> None:
    parsed = q.build_query([])
    assert parsed.query == EventQuery()
    assert parsed.all_tenants_conditions == ()
    assert parsed.query.scope == Scope.everything()
    assert parsed.query.sort == DEFAULT_SORT
    assert parsed.query.limit is None
    assert parsed.query.marker is None


def test_build_query_event_fields() -> None:
    parsed = q.build_query(
        [
            cond("event_type", "compute.instance.create.end"),
            cond("message_id", "m-1", op="eq"),
            cond("start_timestamp", "2024-03-01T00:00:00+01:00", op="ge"),
            cond("end_timestamp", "2024-03-02", op="le"),
        ]
    )
    assert parsed.query == EventQuery(
        event_type="compute.instance.create.end",
        message_id="m-1",
        start=dt.datetime(2024, 2, 29, 23),
        end=dt.datetime(2024, 3, 2),
    )


def test_build_query_empty_op_means_eq() -> None:
    parsed = q.build_query([cond("event_type", "x", op=""), cond("state", "on", op="")])
    assert parsed.query.event_type == "x"
    assert parsed.query.traits == (TraitFilter("state", TraitType.STRING, Op.EQ, "on"),)


def test_build_query_event_field_ignores_type() -> None:
    parsed = q.build_query(
        [cond("event_type", "abc", type="integer"), cond("message_id", "m", type="foo")]
    )
    assert parsed.query.event_type == "abc"
    assert parsed.query.message_id == "m"
    assert parsed.query.traits == ()


def test_build_query_missing_event_field_value_is_empty_string() -> None:
    parsed = q.build_query([cond("event_type"), cond("message_id", "")])
    assert parsed.query.event_type == ""
    assert parsed.query.message_id == ""


def test_build_query_repeated_event_field_keeps_the_last() -> None:
    parsed = q.build_query(
        [
            cond("event_type", "a"),
            cond("event_type", "b"),
            cond("start_timestamp", "2024-01-01", op="ge"),
            cond("start_timestamp", "2024-02-01", op="ge"),
        ]
    )
    assert parsed.query.event_type == "b"
    assert parsed.query.start == dt.datetime(2024, 2, 1)


def test_build_query_trait_filters_accumulate_in_order() -> None:
    parsed = q.build_query(
        [
            cond("size", "10", op="ge", type="integer"),
            cond("size", "100", op="lt", type="integer"),
            cond("state", "active"),
            cond("ratio", "0.5", op="ne", type="float"),
            cond("when", "2024-03-05T00:00:00Z", op="gt", type="datetime"),
        ]
    )
    assert parsed.query.traits == (
        TraitFilter("size", TraitType.INTEGER, Op.GE, 10),
        TraitFilter("size", TraitType.INTEGER, Op.LT, 100),
        TraitFilter("state", TraitType.STRING, Op.EQ, "active"),
        TraitFilter("ratio", TraitType.FLOAT, Op.NE, 0.5),
        TraitFilter("when", TraitType.DATETIME, Op.GT, dt.datetime(2024, 3, 5)),
    )


def test_build_query_keeps_all_tenants_aside_unvalidated() -> None:
    conditions = [
        cond("all_tenants", "True", op="ne", type="foo"),
        cond("all_tenants", "x", type="integer"),
    ]
    parsed = q.build_query(conditions)
    assert parsed.all_tenants_conditions == tuple(conditions)
    assert parsed.query.traits == ()
    assert parsed.query.scope == Scope.everything()


def test_build_query_all_tenants_op_is_still_checked() -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.build_query([cond("all_tenants", "True", op="foo")])
    assert invalid(exc) == bad_op("foo")


@pytest.mark.parametrize(
    "field", ["event_type", "message_id", "state", "all_tenants", "start_timestamp", None]
)
@pytest.mark.parametrize("op", ["foo", "EQ", "=", "<", "eq ", "lte"])
def test_build_query_unknown_operator(field: str | None, op: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.build_query([cond(field, "1", op=op)])
    assert invalid(exc) == bad_op(op)


@pytest.mark.parametrize(
    ("field", "wanted"),
    [
        ("event_type", "eq"),
        ("message_id", "eq"),
        ("start_timestamp", "ge"),
        ("end_timestamp", "le"),
    ],
)
@pytest.mark.parametrize("op", q.OPERATORS)
def test_build_query_event_field_operators(field: str, wanted: str, op: str) -> None:
    value = "2024-03-05" if field.endswith("timestamp") else "x"
    if op == wanted:
        q.build_query([cond(field, value, op=op)])
        return
    with pytest.raises(InvalidQuery) as exc:
        q.build_query([cond(field, value, op=op)])
    assert invalid(exc) == only_op(op, wanted, field)


@pytest.mark.parametrize(("field", "wanted"), [("start_timestamp", "ge"), ("end_timestamp", "le")])
def test_build_query_timestamps_have_no_default_operator(field: str, wanted: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.build_query([cond(field, "2024-03-05")])
    assert invalid(exc) == only_op("eq", wanted, field)


@pytest.mark.parametrize(("field", "op"), [("start_timestamp", "ge"), ("end_timestamp", "le")])
def test_build_query_bad_timestamp(field: str, op: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.build_query([cond(field, "notadate", op=op)])
    assert invalid(exc) == "Unable to parse date string 'notadate'"


def test_build_query_bad_trait_type_and_value() -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.build_query([cond("state", "on", type="boolean")])
    assert invalid(exc) == bad_type("boolean")
    with pytest.raises(InvalidQuery) as exc:
        q.build_query([cond("memory_mb", "2048.0", type="integer")])
    assert invalid(exc) == no_convert("2048.0", "integer")
    with pytest.raises(InvalidQuery) as exc:
        q.build_query([cond("when", "notadate", type="datetime")])
    assert invalid(exc) == no_convert("notadate", "datetime")


def test_build_query_reports_the_first_error_in_order() -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.build_query([cond("size", "x", type="integer"), cond("event_type", "e", op="ne")])
    assert invalid(exc) == no_convert("x", "integer")
    with pytest.raises(InvalidQuery) as exc:
        q.build_query([cond("event_type", "e", op="ne"), cond("size", "x", type="integer")])
    assert invalid(exc) == only_op("ne", "eq", "event_type")


def test_build_query_missing_field_is_a_trait_with_empty_name() -> None:
    parsed = q.build_query([cond(None, "v")])
    assert parsed.query.traits == (TraitFilter("", TraitType.STRING, Op.EQ, "v"),)


maybe_text = st.one_of(st.none(), st.text(max_size=30))
raw_conditions = st.builds(
    RawCondition,
    field=st.one_of(maybe_text, st.sampled_from([*q.EVENT_FIELD_OPS, "all_tenants"])),
    op=st.one_of(maybe_text, st.sampled_from(q.OPERATORS)),
    type=st.one_of(maybe_text, st.sampled_from(q.SUPPORTED_TYPES)),
    value=st.one_of(maybe_text, st.sampled_from(["1", "-2.5", "2024-03-05T10:00:00Z", "True"])),
)


@FAST
@given(st.lists(raw_conditions, max_size=6))
def test_build_query_only_raises_invalid_query(conditions: list[RawCondition]) -> None:
    try:
        parsed = q.build_query(conditions)
    except InvalidQuery:
        return
    assert isinstance(parsed, ParsedConditions)
    if parsed.error_after_all_tenants is not None:
        # kept for the policy, behind the all_tenants entries that come before it
        assert parsed.all_tenants_conditions
        # the first error among the other entries, as they would report it on their own
        others = [c for c in conditions if c not in parsed.all_tenants_conditions]
        with pytest.raises(InvalidQuery) as alone:
            q.build_query(others)
        assert alone.value.message == parsed.error_after_all_tenants.message
        return
    non_trait = set(q.EVENT_FIELD_OPS) | {"all_tenants"}
    assert len(parsed.query.traits) == sum((c.field or "") not in non_trait for c in conditions)
    assert len(parsed.all_tenants_conditions) == sum(c.field == "all_tenants" for c in conditions)
    for flt in parsed.query.traits:
        assert isinstance(flt.op, Op)
        assert isinstance(flt.type, TraitType)
    assert parsed.query.scope == Scope.everything()


@FAST
@given(
    st.lists(
        st.builds(RawCondition, field=st.text(), op=st.text(), type=st.text(), value=st.text()),
        max_size=4,
    )
)
def test_build_query_only_raises_invalid_query_for_any_text(conditions: list[RawCondition]) -> None:
    try:
        q.build_query(conditions)
    except InvalidQuery as exc:
        assert exc.message


# --- parse_sort ---------------------------------------------------------------------------


def test_parse_sort_empty_is_the_default() -> None:
    assert q.parse_sort([]) == DEFAULT_SORT == (SortKey("generated"), SortKey("message_id"))


@pytest.mark.parametrize("key", q.SORT_KEYS)
@pytest.mark.parametrize(
    ("suffix", "descending"), [("", False), (":", False), (":asc", False), (":desc", True)]
)
def test_parse_sort_accepts_every_key_and_direction(
    key: str, suffix: str, descending: bool
) -> None:
    assert q.parse_sort([key + suffix]) == (SortKey(key, descending),)


def test_parse_sort_keeps_order_and_duplicates() -> None:
    assert q.parse_sort(["message_id:desc", "generated", "message_id:asc"]) == (
        SortKey("message_id", True),
        SortKey("generated"),
        SortKey("message_id"),
    )


@pytest.mark.parametrize(
    "item",
    [
        "foo:asc",
        "foo",
        "",
        ":",
        ":asc",
        "Generated",
        "MESSAGE_ID:asc",
        " generated",
        "generated ",
        "event_type",
        "generated,message_id",
    ],
)
def test_parse_sort_rejects_keys(item: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.parse_sort([item])
    assert invalid(exc) == bad_sort_key(item)


@pytest.mark.parametrize(
    "item",
    [
        "generated:up",
        "generated:DESC",
        "generated:Asc",
        "generated:desc:extra",
        "message_id:descending",
        "message_id: asc",
        "generated::",
    ],
)
def test_parse_sort_rejects_directions(item: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.parse_sort([item])
    assert invalid(exc) == bad_sort_dir(item)


def test_parse_sort_rejects_a_bad_item_among_good_ones() -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.parse_sort(["generated", "foo:asc", "generated:up"])
    assert invalid(exc) == bad_sort_key("foo:asc")


@FAST
@given(
    st.lists(
        st.tuples(st.sampled_from(q.SORT_KEYS), st.sampled_from([None, "", "asc", "desc"])),
        min_size=1,
        max_size=5,
    )
)
def test_parse_sort_accepts_any_valid_combination(pairs: list[tuple[str, str | None]]) -> None:
    items = [key if direction is None else f"{key}:{direction}" for key, direction in pairs]
    assert q.parse_sort(items) == tuple(
        SortKey(key, direction == "desc") for key, direction in pairs
    )


@FAST
@given(st.text())
def test_parse_sort_rejects_everything_else_with_panko_text(item: str) -> None:
    key, _, direction = item.partition(":")
    assume(not (key in q.SORT_KEYS and direction in ("", "asc", "desc")))
    with pytest.raises(InvalidQuery) as exc:
        q.parse_sort([item])
    expected = bad_sort_key(item) if key not in q.SORT_KEYS else bad_sort_dir(item)
    assert invalid(exc) == expected


# --- parse_limit --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 100),
        ("0", 100),
        ("-0", 100),
        ("1", 1),
        ("5", 5),
        ("+3", 3),
        (" 7 ", 7),
        ("100", 100),
        ("1000", 1000),
        ("1001", 1000),
        ("99999999999999999999", 1000),
    ],
)
def test_parse_limit(raw: str | None, expected: int) -> None:
    assert q.parse_limit(raw, default=100, maximum=1000) == expected


def test_parse_limit_default_is_capped_too() -> None:
    assert q.parse_limit(None, default=100, maximum=10) == 10
    assert q.parse_limit("0", default=100, maximum=10) == 10


@pytest.mark.parametrize("raw", ["-1", "-100", "-99999999999999999999"])
def test_parse_limit_negative(raw: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.parse_limit(raw, 100, 1000)
    assert invalid(exc) == (
        f"Invalid input for field/attribute limit. Value: '{raw}'. the limit should be a "
        "positive integer."
    )


@pytest.mark.parametrize("raw", ["abc", "1.5", "", "1e3", "0x10"])
def test_parse_limit_not_an_integer(raw: str) -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.parse_limit(raw, 100, 1000)
    assert invalid(exc) == (
        f"Invalid input for field/attribute limit. Value: '{raw}'. unable to convert to int. "
        f"Error: invalid literal for int() with base 10: '{raw}'"
    )


def test_parse_limit_repeated() -> None:
    with pytest.raises(InvalidQuery) as exc:
        q.parse_limit(["1", "2"], 100, 1000)
    assert invalid(exc) == (
        "Invalid input for field/attribute limit. Value: '['1', '2']'. unable to convert to "
        "int. Error: int() argument must be a string, a bytes-like object or a real number, "
        "not 'list'"
    )


@FAST
@given(
    st.integers(min_value=0, max_value=10**30),
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=1, max_value=10**6),
)
def test_parse_limit_property(n: int, default: int, maximum: int) -> None:
    assert q.parse_limit(str(n), default, maximum) == min(n or default, maximum)


# --- EventQuery ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "effective"),
    [
        (DEFAULT_SORT, DEFAULT_SORT),
        (
            (SortKey("generated", True),),
            (SortKey("generated", True), SortKey("message_id", True)),
        ),
        ((SortKey("generated"),), (SortKey("generated"), SortKey("message_id"))),
        ((SortKey("message_id", True),), (SortKey("message_id", True),)),
        (
            (SortKey("message_id", True), SortKey("generated")),
            (SortKey("message_id", True), SortKey("generated")),
        ),
        (
            (SortKey("generated"), SortKey("generated", True)),
            (SortKey("generated"), SortKey("generated", True), SortKey("message_id", True)),
        ),
    ],
)
def test_effective_sort(sort: tuple[SortKey, ...], effective: tuple[SortKey, ...]) -> None:
    query = EventQuery(sort=sort)
    assert query.effective_sort() == effective
    assert query.sort == sort  # not modified


@FAST
@given(st.lists(st.builds(SortKey, st.sampled_from(q.SORT_KEYS), st.booleans()), max_size=4))
def test_effective_sort_always_ends_with_a_message_id_tie_break(keys: list[SortKey]) -> None:
    effective = EventQuery(sort=tuple(keys)).effective_sort()
    assert effective[: len(keys)] == tuple(keys)
    assert any(s.key == "message_id" for s in effective)
    assert len(effective) - len(keys) in (0, 1)
    if len(effective) > len(keys) and keys:  # the tie-break follows the last key's direction
        assert effective[-1].descending == keys[-1].descending


def test_with_scope_returns_a_copy() -> None:
    query = EventQuery(event_type="x", limit=5)
    scoped = query.with_scope(Scope(ScopeKind.NOTHING))
    assert scoped.scope == Scope(ScopeKind.NOTHING)
    assert scoped.event_type == "x"
    assert scoped.limit == 5
    assert query.scope == Scope.everything()


# --- policy: credentials and checks -------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "admin"),
    [
        ("admin", True),
        ("Admin", True),
        ("ADMIN", True),
        ("member,admin", True),
        (" member , admin ", True),
        ("member", False),
        ("", False),
        (None, False),
        ("administrator", False),
        ("reader,_member_", False),
        ("annals:publisher", False),
    ],
)
def test_credentials_from_headers(roles: str | None, admin: bool) -> None:
    creds = Credentials.from_headers("u", "p", roles)
    assert creds.is_admin is admin
    assert all(role == role.strip() and role for role in creds.roles)


def test_credentials_from_headers_empty_identity_is_none() -> None:
    creds = Credentials.from_headers("", "", ",,")
    assert creds == Credentials(None, None, ())


@pytest.mark.parametrize(
    "creds",
    [
        Credentials(),
        Credentials(user_id="u"),
        Credentials(project_id="p"),
        Credentials(roles=("admin",)),
        Credentials(project_id="p", roles=("admin",)),
    ],
)
def test_require_context(creds: Credentials) -> None:
    with pytest.raises(Forbidden) as exc:
        policy.require_context(creds)
    assert exc.value.message == "RBAC Authorization Failed"
    with pytest.raises(Forbidden):
        policy.scope_query(q.build_query([]), creds)


def test_require_admin() -> None:
    policy.require_admin(ADMIN)
    with pytest.raises(Unauthorized) as exc:
        policy.require_admin(MEMBER)
    assert exc.value.message == "Not Authorized to access project project-a"


def test_event_scope() -> None:
    assert policy.event_scope(ADMIN) == Scope(ScopeKind.ADMIN_PROJECT, project_id="project-admin")
    assert policy.event_scope(MEMBER) == Scope(
        ScopeKind.OWNER, project_id="project-a", user_id="user-a"
    )


# --- policy.scope_query -------------------------------------------------------------------


def scoped(creds: Credentials, conditions: Sequence[RawCondition]) -> EventQuery:
    return policy.scope_query(q.build_query(conditions), creds)


def all_tenants_trait(value: str) -> TraitFilter:
    return TraitFilter("all_tenants", TraitType.STRING, Op.EQ, value)


def test_scope_query_keeps_the_rest_of_the_query() -> None:
    conditions = [
        cond("event_type", "e"),
        cond("state", "on"),
        cond("start_timestamp", "2024-01-01", op="ge"),
    ]
    for creds in (ADMIN, MEMBER):
        query = scoped(creds, conditions)
        assert query.event_type == "e"
        assert query.start == dt.datetime(2024, 1, 1)
        assert query.traits[0] == TraitFilter("state", TraitType.STRING, Op.EQ, "on")


@pytest.mark.parametrize("value", [*TRUE_STRINGS, "True", "TRUE", "Yes", "ON", " t "])
def test_admin_all_tenants_true_sees_everything(value: str) -> None:
    query = scoped(ADMIN, [cond("all_tenants", value)])
    assert query.scope == Scope.everything()
    assert query.traits == ()


@pytest.mark.parametrize("value", ["False", "0", "garbage", "", None, "no", "off"])
def test_admin_all_tenants_false_is_ignored(value: str | None) -> None:
    query = scoped(ADMIN, [cond("all_tenants", value)])
    assert query.scope == Scope(ScopeKind.ADMIN_PROJECT, project_id="project-admin")
    assert query.traits == ()


def test_admin_all_tenants_ignores_op_and_type() -> None:
    assert scoped(ADMIN, [cond("all_tenants", "True", op="ne")]).scope == Scope.everything()
    query = scoped(ADMIN, [cond("all_tenants", "True", type="integer")])
    assert query.scope == Scope.everything()
    assert query.traits == ()


def test_admin_all_tenants_first_true_counts_then_it_is_a_trait() -> None:
    # Panko: True,False gives [] (the second is a trait filter); False,True gives everything.
    query = scoped(ADMIN, [cond("all_tenants", "True"), cond("all_tenants", "False")])
    assert query.scope == Scope.everything()
    assert query.traits == (all_tenants_trait("False"),)
    query = scoped(ADMIN, [cond("all_tenants", "False"), cond("all_tenants", "True")])
    assert query.scope == Scope.everything()
    assert query.traits == ()


def test_admin_all_tenants_after_widening_is_validated_as_a_trait() -> None:
    with pytest.raises(InvalidQuery) as exc:
        scoped(ADMIN, [cond("all_tenants", "1"), cond("all_tenants", "yes", type="integer")])
    assert invalid(exc) == no_convert("yes", "integer")


def test_member_all_tenants_is_a_trait_filter() -> None:
    query = scoped(MEMBER, [cond("all_tenants", "True")])
    assert query.scope == Scope(ScopeKind.OWNER, project_id="project-a", user_id="user-a")
    assert query.traits == (all_tenants_trait("True"),)
    query = scoped(MEMBER, [cond("all_tenants", "5", op="ge", type="integer")])
    assert query.traits == (TraitFilter("all_tenants", TraitType.INTEGER, Op.GE, 5),)


def test_member_all_tenants_with_bad_type_or_value() -> None:
    with pytest.raises(InvalidQuery) as exc:
        scoped(MEMBER, [cond("all_tenants", "True", type="integer")])
    assert invalid(exc) == no_convert("True", "integer")
    with pytest.raises(InvalidQuery) as exc:
        scoped(MEMBER, [cond("all_tenants", "True", type="foo")])
    assert invalid(exc) == bad_type("foo")


def test_member_all_tenants_error_is_reported_in_request_order() -> None:
    """As Panko converts the q entries in order, the first invalid one is reported, whether
    it is an all_tenants entry that the caller's role makes a trait filter or another one."""
    with pytest.raises(InvalidQuery) as exc:
        scoped(MEMBER, [cond("all_tenants", "True", type="foo"), cond("event_type", "e", op="ne")])
    assert invalid(exc) == bad_type("foo")
    # a valid all_tenants entry first: the later error is the first one
    with pytest.raises(InvalidQuery) as exc:
        scoped(MEMBER, [cond("all_tenants", "True"), cond("memory_mb", "x", type="integer")])
    assert invalid(exc) == no_convert("x", "integer")
    # an invalid all_tenants entry after the first error is never reached
    with pytest.raises(InvalidQuery) as exc:
        scoped(
            MEMBER, [cond("memory_mb", "x", type="integer"), cond("all_tenants", "y", type="foo")]
        )
    assert invalid(exc) == no_convert("x", "integer")


def test_admin_all_tenants_errors_in_request_order() -> None:
    """An admin's first all_tenants widens the scope and cannot be invalid; a second one is a
    trait filter, checked in its place in the request."""
    widen, second = cond("all_tenants", "True"), cond("all_tenants", "z", type="integer")
    later = cond("start_timestamp", "not a time")
    with pytest.raises(InvalidQuery) as exc:
        scoped(ADMIN, [widen, second, later])
    assert invalid(exc) == no_convert("z", "integer")
    with pytest.raises(InvalidQuery) as first_error:
        scoped(ADMIN, [widen, later, second])
    with pytest.raises(InvalidQuery) as alone:
        scoped(ADMIN, [later])
    assert invalid(first_error) == invalid(alone)


at_value = st.one_of(
    st.none(),
    st.text(max_size=10),
    st.sampled_from([*TRUE_STRINGS, "TRUE", " Yes ", "False", "0", ""]),
)
any_conditions = st.lists(
    st.one_of(
        st.builds(
            RawCondition,
            field=st.just("all_tenants"),
            op=st.sampled_from([None, "", *q.OPERATORS]),
            type=st.sampled_from([None, "", *q.SUPPORTED_TYPES, "foo"]),
            value=at_value,
        ),
        raw_conditions,
    ),
    max_size=6,
)
identities = st.builds(
    Credentials,
    user_id=st.text(min_size=1, max_size=8),
    project_id=st.text(min_size=1, max_size=8),
    roles=st.lists(st.sampled_from(["member", "reader", "administrator"]), max_size=2).map(tuple),
)


@FAST
@given(identities, any_conditions)
def test_scope_query_never_widens_a_member(
    creds: Credentials, conditions: list[RawCondition]
) -> None:
    try:
        parsed = q.build_query(conditions)
        query = policy.scope_query(parsed, creds)
    except InvalidQuery:
        return
    assert query.scope == Scope(ScopeKind.OWNER, project_id=creds.project_id, user_id=creds.user_id)
    # every all_tenants condition became a filter on a trait of that name
    extra = query.traits[len(parsed.query.traits) :]
    assert query.traits[: len(parsed.query.traits)] == parsed.query.traits
    assert len(extra) == len(parsed.all_tenants_conditions)
    assert all(flt.name == "all_tenants" for flt in extra)


@FAST
@given(any_conditions, st.sampled_from(["admin", "Admin", "ADMIN"]))
def test_scope_query_for_an_admin(conditions: list[RawCondition], role: str) -> None:
    creds = Credentials(user_id="admin-user", project_id="project-admin", roles=("member", role))
    try:
        parsed = q.build_query(conditions)
    except InvalidQuery:
        return
    flags = [bool(strutils.bool_from_string(c.value)) for c in parsed.all_tenants_conditions]
    after_first_true = (
        parsed.all_tenants_conditions[flags.index(True) + 1 :] if True in flags else ()
    )
    try:
        query = policy.scope_query(parsed, creds)
    except InvalidQuery:
        # only an all_tenants entry that became a trait filter can still be invalid, or an
        # entry after an all_tenants entry (its error waits for them)
        assert after_first_true or parsed.error_after_all_tenants is not None
        return
    assert parsed.error_after_all_tenants is None
    if True in flags:
        assert query.scope == Scope.everything()
    else:
        assert query.scope == Scope(ScopeKind.ADMIN_PROJECT, project_id="project-admin")
    assert query.traits == parsed.query.traits + tuple(q.trait_filter(c) for c in after_first_true)
