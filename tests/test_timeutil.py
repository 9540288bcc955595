"""Unit tests of annals.timeutil: ISO 8601 parsing, rendering and the microsecond codec."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annals import timeutil

FAST = settings(max_examples=200, deadline=None)

naive_datetimes = st.datetimes(min_value=dt.datetime.min, max_value=dt.datetime.max)
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)


# --- parse_isotime: accepted forms ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00.123456", dt.datetime(2024, 5, 1, 12, 0, 0, 123456)),
        ("2024-05-01T12:00:00", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01T12:00", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01 12:00:00", dt.datetime(2024, 5, 1, 12)),
        ("2024-03-05", dt.datetime(2024, 3, 5)),
        ("2024-05-01T12:00:00Z", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01T12:00:00z", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01T12:00:00.5Z", dt.datetime(2024, 5, 1, 12, 0, 0, 500000)),
        ("2024-05-01T12:00:00+00:00", dt.datetime(2024, 5, 1, 12)),
        ("2024-05-01T12:00:00+02:00", dt.datetime(2024, 5, 1, 10)),
        ("2024-05-01T12:00:00-05:30", dt.datetime(2024, 5, 1, 17, 30)),
        ("2024-05-01T01:00:00+02:00", dt.datetime(2024, 4, 30, 23)),
        ("2024-12-31T23:30:00-01:00", dt.datetime(2025, 1, 1, 0, 30)),
        ("  2024-05-01T12:00:00  ", dt.datetime(2024, 5, 1, 12)),
        ("0001-01-01T00:00:00", dt.datetime.min.replace(microsecond=0)),
        ("9999-12-31T23:59:59.999999", dt.datetime.max),
    ],
)
def test_parse_isotime_accepts(text: str, expected: dt.datetime) -> None:
    parsed = timeutil.parse_isotime(text)
    assert parsed == expected
    assert parsed.tzinfo is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "notadate",
        "Z",
        "2024-13-01T00:00:00",
        "2024-02-30",
        "2024-05-01T25:00:00",
        "2024-05-01T12:00:00\x00",
        "2024-05-01\x00T12:00:00",
        "2024-05-01T12:00:00+25:00",
        # an offset that moves the instant outside datetime's range
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_parse_isotime_rejects_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        timeutil.parse_isotime(text)


def test_parse_isotime_error_carries_the_original_text() -> None:
    with pytest.raises(ValueError) as info:
        timeutil.parse_isotime("  ")
    assert info.value.args == ("  ",)


# --- parse_isotime: properties --------------------------------------------------------------


@FAST
@given(naive_datetimes)
def test_isoformat_parse_round_trip(value: dt.datetime) -> None:
    assert timeutil.parse_isotime(timeutil.isoformat(value)) == value


@FAST
@given(naive_datetimes, offsets)
def test_offsets_are_converted_to_naive_utc(value: dt.datetime, tz: dt.timezone) -> None:
    aware = value.replace(tzinfo=tz)
    offset = tz.utcoffset(None)
    try:
        expected: dt.datetime | None = value - offset
    except OverflowError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError):
            timeutil.parse_isotime(aware.isoformat())
    else:
        parsed = timeutil.parse_isotime(aware.isoformat())
        assert parsed == expected
        assert parsed.tzinfo is None


@FAST
@given(naive_datetimes)
def test_z_suffix_means_utc(value: dt.datetime) -> None:
    assert timeutil.parse_isotime(timeutil.isoformat(value) + "Z") == value


@FAST
@given(st.text())
def test_parse_isotime_only_ever_raises_value_error(text: str) -> None:
    try:
        parsed = timeutil.parse_isotime(text)
    except ValueError:
        return
    assert isinstance(parsed, dt.datetime)
    assert parsed.tzinfo is None


# --- isoformat (Panko's rendering) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.datetime(2024, 3, 1, 10, 0, 5, 123456), "2024-03-01T10:00:05.123456"),
        (dt.datetime(2024, 3, 2, 9, 0, 0, 250000), "2024-03-02T09:00:00.250000"),
        (dt.datetime(2024, 3, 2, 12, 0, 0), "2024-03-02T12:00:00"),
        (dt.datetime(2024, 3, 1, 11, 30, 7), "2024-03-01T11:30:07"),
        (dt.datetime(2024, 3, 1, 11, 30, 7, 1), "2024-03-01T11:30:07.000001"),
    ],
)
def test_isoformat_matches_panko(value: dt.datetime, text: str) -> None:
    assert timeutil.isoformat(value) == text


def test_isoformat_of_a_parsed_zero_fraction_drops_it() -> None:
    assert timeutil.isoformat(timeutil.parse_isotime("2024-03-02T12:00:00.000000")) == (
        "2024-03-02T12:00:00"
    )


# --- microsecond codec ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        (dt.datetime(1970, 1, 1), 0),
        (dt.datetime(1970, 1, 1, 0, 0, 0, 1), 1),
        (dt.datetime(1969, 12, 31, 23, 59, 59, 999999), -1),
        (dt.datetime(1970, 1, 2), 86_400_000_000),
        (dt.datetime(2024, 5, 1, 12, 0, 0, 123456), 1_714_564_800_123_456),
        (dt.datetime.min, -62_135_596_800_000_000),
        (dt.datetime.max, 253_402_300_799_999_999),
    ],
)
def test_to_micros_known_values(value: dt.datetime, micros: int) -> None:
    assert timeutil.to_micros(value) == micros
    assert timeutil.from_micros(micros) == value


@FAST
@given(naive_datetimes)
def test_micros_round_trip(value: dt.datetime) -> None:
    micros = timeutil.to_micros(value)
    assert isinstance(micros, int)
    assert timeutil.from_micros(micros) == value


@FAST
@given(naive_datetimes, naive_datetimes)
def test_to_micros_preserves_order(a: dt.datetime, b: dt.datetime) -> None:
    assert (a < b) == (timeutil.to_micros(a) < timeutil.to_micros(b))
    assert (a == b) == (timeutil.to_micros(a) == timeutil.to_micros(b))


@FAST
@given(naive_datetimes)
def test_to_micros_is_exact(value: dt.datetime) -> None:
    # exact integer arithmetic: no float rounding even far from the epoch
    delta = value - timeutil.EPOCH
    assert timeutil.to_micros(value) == delta // dt.timedelta(microseconds=1)
