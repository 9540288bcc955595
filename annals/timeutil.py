"""Datetime parsing and formatting shared by the API, ingestion and storage."""

from __future__ import annotations

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1)


def parse_isotime(text: str) -> dt.datetime:
    """Parse an ISO 8601 timestamp into a naive UTC datetime.

    Accepts what Ceilometer and Panko clients send: a date, a date and time with or without
    fractional seconds, with ``Z`` or a numeric offset (converted to UTC). Raises ValueError.
    """
    value = text.strip()
    if not value or "\x00" in value:
        raise ValueError(text)
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError as exc:  # an offset that moves the time past year 1 or 9999
        raise ValueError(text) from exc
    return parsed


def utcnow() -> dt.datetime:
    """Now, as the naive UTC datetime every layer uses."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


_MICROSECOND = dt.timedelta(microseconds=1)


def to_micros(value: dt.datetime) -> int:
    """Microseconds since the epoch of a naive UTC datetime (exact: timedelta // timedelta
    is integer arithmetic, done in C)."""
    return (value - EPOCH) // _MICROSECOND


def from_micros(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=value)


def isoformat(value: dt.datetime) -> str:
    """Panko's rendering: ISO 8601, no timezone, microseconds only when non-zero."""
    return value.isoformat()
