"""Request parameters of ``GET /v2/events`` -> raw conditions, limit, sort and marker.

Parameters come either from the query string (``q.field``/``q.op``/``q.type``/``q.value``
repeated, ``limit``, ``sort`` repeated, ``marker``) or from a JSON body on the GET, as
Panko (WSME) accepted them. Error texts are Panko's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from annals.errors import InvalidQuery
from annals.query import RawCondition

Q_ATTRIBUTES = ("field", "op", "type", "value")
EVENT_LIST_PARAMS = ("q", "limit", "sort", "marker")


class UnsupportedMediaType(InvalidQuery):
    """A request body in a format other than JSON (415)."""


@dataclass(slots=True)
class EventListParams:
    conditions: list[RawCondition] = field(default_factory=list)
    limit: str | list[str] | None = None
    sort: list[str] = field(default_factory=list)
    marker: str | None = None


def _unknown(names: Sequence[str]) -> InvalidQuery:
    return InvalidQuery(f'Unknown argument: "{", ".join(names)}"')


def parse_query_string(query_string: str, allowed: Sequence[str]) -> dict[str, list[str]]:
    """Split a query string into lists per name; reject names not in ``allowed``.

    ``q.<attr>`` names count as ``q``.
    """
    try:
        pairs = parse_qsl(
            query_string, keep_blank_values=True, errors="strict", max_num_fields=100_000
        )
    except UnicodeDecodeError:
        raise InvalidQuery("The query string is not valid UTF-8") from None
    except ValueError as exc:
        raise InvalidQuery(f"Invalid query string: {exc}") from None
    values: dict[str, list[str]] = {}
    unknown: list[str] = []
    for name, value in pairs:
        base, dot, attr = name.partition(".")
        if name == "q" and "q" in allowed:
            raise InvalidQuery(
                f"Invalid input for field/attribute q. Value: '{value}'. Filters are given as "
                "q.field, q.op, q.type and q.value"
            )
        known = (base in allowed and base != "q" and not dot) or (
            base == "q" and "q" in allowed and attr in Q_ATTRIBUTES
        )
        if not known:
            if name not in unknown:
                unknown.append(name)
            continue
        values.setdefault(name, []).append(value)
    if unknown:
        raise _unknown(unknown)
    return values


def conditions_from_query_string(values: dict[str, list[str]]) -> list[RawCondition]:
    """Pair the n-th ``q.field`` with the n-th ``q.op``, ``q.type`` and ``q.value``."""
    columns = {attr: values.get(f"q.{attr}", []) for attr in Q_ATTRIBUTES}
    count = max(len(col) for col in columns.values())
    conditions = []
    for i in range(count):
        got = {attr: (col[i] if i < len(col) else None) for attr, col in columns.items()}
        conditions.append(RawCondition(got["field"], got["op"], got["type"], got["value"]))
    return conditions


def _condition_from_json(item: Any) -> RawCondition:
    if not isinstance(item, dict):
        raise InvalidQuery(
            f"Invalid input for field/attribute q. Value: '{item}'. Value not a valid dict"
        )
    for key in item:
        if key not in Q_ATTRIBUTES:
            raise InvalidQuery(f"Unknown attribute for argument q: {key}")
    got: dict[str, str | None] = {}
    for attr in Q_ATTRIBUTES:
        value = item.get(attr)
        if value is not None and not isinstance(value, str):
            raise InvalidQuery(
                f"Invalid input for field/attribute {attr}. Value: '{value}'. Wrong type. "
                f"Expected '{str}', got '{type(value)}'"
            )
        got[attr] = value
    return RawCondition(got["field"], got["op"], got["type"], got["value"])


def parse_json_body(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidQuery("Request is not in valid JSON format") from None
    if not isinstance(doc, dict):
        raise InvalidQuery("Request must be a JSON dict")
    return doc


def event_list_params(
    query_string: str, body: bytes | None, content_type: str | None
) -> EventListParams:
    values = parse_query_string(query_string, EVENT_LIST_PARAMS)
    params = EventListParams(
        conditions=conditions_from_query_string(values),
        sort=values.get("sort", []),
        marker=_single(values, "marker"),
    )
    if "limit" in values:
        limits = values["limit"]
        params.limit = limits[0] if len(limits) == 1 else limits
    if body:
        mime = (content_type or "").split(";")[0].strip().lower()
        if mime != "application/json":
            raise UnsupportedMediaType(f"Unknown mimetype: {mime}")
        _merge_body(params, values, parse_json_body(body))
    return params


def _single(values: dict[str, list[str]], name: str) -> str | None:
    got = values.get(name)
    return got[-1] if got else None


def _merge_body(params: EventListParams, values: dict[str, list[str]], doc: dict[str, Any]) -> None:
    unknown = [k for k in doc if k not in EVENT_LIST_PARAMS]
    if unknown:
        raise _unknown(unknown)
    if "q" not in doc:
        raise InvalidQuery('The request body must be a JSON object with a "q" list of filters')
    given = {name for name in values if name.partition(".")[0] in EVENT_LIST_PARAMS}
    for key in doc:
        if key in given or (key == "q" and any(n.startswith("q.") for n in given)):
            raise InvalidQuery(f"Parameter {key} was given several times")
    conditions = doc.get("q")
    if conditions is not None:
        if not isinstance(conditions, list):
            raise InvalidQuery(
                f"Invalid input for field/attribute q. Value: '{conditions}'. "
                f"Value not a valid list: {conditions}"
            )
        params.conditions = [_condition_from_json(item) for item in conditions]
    if doc.get("limit") is not None:
        params.limit = str(doc["limit"])
    sort = doc.get("sort")
    if sort is not None:
        if isinstance(sort, str):
            sort = [sort]
        if not isinstance(sort, list) or not all(isinstance(s, str) for s in sort):
            raise InvalidQuery(
                f"Invalid input for field/attribute sort. Value: '{sort}'. "
                "Value not a valid list of strings"
            )
        params.sort = sort
    marker = doc.get("marker")
    if marker is not None:
        if not isinstance(marker, str):
            raise InvalidQuery(
                f"Invalid input for field/attribute marker. Value: '{marker}'. Wrong type. "
                f"Expected '{str}', got '{type(marker)}'"
            )
        params.marker = marker


def check_mandatory(conditions: Sequence[RawCondition]) -> None:
    """Every condition needs a field and a value (Panko failed with a 500 or matched nothing)."""
    for cond in conditions:
        for attr in ("field", "value"):
            if getattr(cond, attr) is None:
                raise InvalidQuery(
                    f"Invalid input for field/attribute {attr}. Value: 'None'. "
                    "Mandatory field missing."
                )
