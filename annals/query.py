"""The engine-neutral query model and its validation.

The HTTP layer turns request parameters into an :class:`EventQuery`; every storage driver
renders one into its own query language. Validation that does not depend on HTTP lives here,
so that every entry point (API, CLI, tests) rejects the same input with the same words. The
error texts are Panko 10's, byte for byte, because clients and scripts match on them.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from annals import timeutil
from annals.errors import InvalidMarker, InvalidQuery
from annals.models import TraitType, TraitValue


class Op(enum.StrEnum):
    LT = "lt"
    LE = "le"
    EQ = "eq"
    NE = "ne"
    GE = "ge"
    GT = "gt"


OPERATORS: tuple[str, ...] = ("lt", "le", "eq", "ne", "ge", "gt")
SUPPORTED_TYPES: tuple[str, ...] = ("integer", "float", "string", "datetime")
SORT_KEYS: tuple[str, ...] = ("message_id", "generated")
SORT_DIRS: tuple[str, ...] = ("asc", "desc")
DEFAULT_SORT_DIR = "asc"

# Fields of the event itself, with the only operator Panko accepts on each.
EVENT_FIELD_OPS: dict[str, str] = {
    "event_type": "eq",
    "message_id": "eq",
    "start_timestamp": "ge",
    "end_timestamp": "le",
}

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class TraitFilter:
    name: str
    type: TraitType
    op: Op
    value: TraitValue


class ScopeKind(enum.Enum):
    ALL = "all"  # admin with all_tenants: no restriction
    ADMIN_PROJECT = "admin_project"  # own project, plus events without a project_id trait
    OWNER = "owner"  # project_id AND user_id must both match
    NOTHING = "nothing"  # matches no event (used when a scope cannot be satisfied)


@dataclass(frozen=True, slots=True)
class Scope:
    """Row visibility, applied by rewriting the query before it reaches storage."""

    kind: ScopeKind
    project_id: str | None = None
    user_id: str | None = None

    @classmethod
    def everything(cls) -> Scope:
        return cls(ScopeKind.ALL)


@dataclass(frozen=True, slots=True)
class SortKey:
    key: str
    descending: bool = False


DEFAULT_SORT: tuple[SortKey, ...] = (SortKey("generated"), SortKey("message_id"))


@dataclass(frozen=True, slots=True)
class EventQuery:
    event_type: str | None = None
    message_id: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    traits: tuple[TraitFilter, ...] = ()
    scope: Scope = field(default_factory=Scope.everything)
    sort: tuple[SortKey, ...] = DEFAULT_SORT
    limit: int | None = None
    marker: str | None = None

    def with_scope(self, scope: Scope) -> EventQuery:
        return replace(self, scope=scope)

    def effective_sort(self) -> tuple[SortKey, ...]:
        """The sort with message_id appended as the final tie-break, so pages are stable.

        The tie-break runs in the direction of the last key: ``generated:desc`` is then one
        backward walk of the (…, generated, message_id) indexes, where a mixed direction
        would make MySQL/MariaDB sort every matching row.
        """
        if any(s.key == "message_id" for s in self.sort):
            return self.sort
        descending = self.sort[-1].descending if self.sort else False
        return (*self.sort, SortKey("message_id", descending))


@dataclass(frozen=True, slots=True)
class RawCondition:
    """One ``q`` entry as the client sent it (strings, possibly missing)."""

    field: str | None
    op: str | None = None
    type: str | None = None
    value: str | None = None


# --- value conversion -------------------------------------------------------------------


def convert_value(value: str | None, type_name: str) -> TraitValue:
    """Convert a filter value to ``type_name`` with Panko's error texts."""
    if type_name not in SUPPORTED_TYPES:
        raise InvalidQuery(
            f"The data type {type_name} is not supported. The supported data type list is: "
            f"{list(SUPPORTED_TYPES)!r}"
        )
    text = "" if value is None else value
    try:
        if type_name == "integer":
            number = int(text)
            if not INT64_MIN <= number <= INT64_MAX:
                raise ValueError(text)
            return number
        if type_name == "float":
            real = float(text)
            if math.isnan(real) or math.isinf(real):
                raise ValueError(text)
            return real
        if type_name == "datetime":
            return timeutil.parse_isotime(text)
        return text
    except ValueError:
        raise InvalidQuery(
            f"Unable to convert the value {text} to the expected data type {type_name}."
        ) from None


def parse_timestamp(value: str | None) -> dt.datetime:
    """start_timestamp / end_timestamp (Panko's text, but a 400 where Panko answered 500)."""
    text = "" if value is None else value
    try:
        return timeutil.parse_isotime(text)
    except ValueError:
        raise InvalidQuery(f"Unable to parse date string '{text}'") from None


def parse_bool(value: str | None) -> bool:
    """oslo.utils' bool_from_string (non-strict): anything unrecognised is False."""
    return (value or "").strip().lower() in ("1", "t", "true", "on", "y", "yes")


# --- building a query from raw conditions ------------------------------------------------


@dataclass(slots=True)
class ParsedConditions:
    """Validated conditions; ``all_tenants`` is kept aside for the policy to interpret."""

    query: EventQuery
    all_tenants_conditions: tuple[RawCondition, ...] = ()
    #: The first invalid condition's error, when ``all_tenants`` conditions come before it:
    #: the policy raises it after reading those (one of them may be invalid too, and comes
    #: first in the request, as Panko reports errors in request order).
    error_after_all_tenants: InvalidQuery | None = None


def trait_filter(cond: RawCondition) -> TraitFilter:
    """A condition on a trait (any field that is not an event field)."""
    type_name = cond.type or "string"
    converted = convert_value(cond.value, type_name)
    return TraitFilter(
        cond.field or "", TraitType.from_api_name(type_name), Op(cond.op or "eq"), converted
    )


def build_query(conditions: Sequence[RawCondition]) -> ParsedConditions:
    """Validate raw ``q`` conditions into an EventQuery (scope is applied later by policy).

    As in Panko, a repeated event field keeps its last value, while trait conditions
    accumulate and are ANDed. An invalid condition raises InvalidQuery, unless ``all_tenants``
    conditions come before it: then the error is returned in ``error_after_all_tenants``
    (with an empty query) and :func:`annals.policy.scope_query` raises it, after the
    ``all_tenants`` conditions the caller's role makes trait filters.
    """
    values: dict[str, object] = {}
    traits: list[TraitFilter] = []
    all_tenants_conditions: list[RawCondition] = []
    for cond in conditions:
        try:
            _add_condition(cond, values, traits, all_tenants_conditions)
        except InvalidQuery as exc:
            if not all_tenants_conditions:
                raise
            # Whether an earlier all_tenants entry is a trait filter (and maybe an invalid
            # one) depends on the caller: the policy decides, then raises this.
            return ParsedConditions(EventQuery(), tuple(all_tenants_conditions), exc)
    query = EventQuery(
        event_type=_opt_str(values.get("event_type")),
        message_id=_opt_str(values.get("message_id")),
        start=_opt_dt(values.get("start_timestamp")),
        end=_opt_dt(values.get("end_timestamp")),
        traits=tuple(traits),
    )
    return ParsedConditions(query, tuple(all_tenants_conditions))


def _add_condition(
    cond: RawCondition,
    values: dict[str, object],
    traits: list[TraitFilter],
    all_tenants_conditions: list[RawCondition],
) -> None:
    """Validate one condition into ``values`` (event fields), ``traits`` or
    ``all_tenants_conditions``."""
    _refuse_nul(cond)
    op = cond.op or "eq"
    if op not in OPERATORS:
        raise InvalidQuery(
            f"Operator {op} is not supported. The supported operators are: {OPERATORS!r}"
        )
    name = cond.field or ""
    if name in EVENT_FIELD_OPS:
        wanted = EVENT_FIELD_OPS[name]
        if op != wanted:
            raise InvalidQuery(
                f"Operator {op} is not supported. Only `{wanted}' operator is available "
                f"for field {name}"
            )
        if name in ("start_timestamp", "end_timestamp"):
            values[name] = parse_timestamp(cond.value)
        else:
            values[name] = cond.value or ""
        return
    if name == "all_tenants":
        all_tenants_conditions.append(cond)
        return
    traits.append(trait_filter(cond))


def _refuse_nul(cond: RawCondition) -> None:
    """No stored text contains NUL (ingestion refuses it), and PostgreSQL cannot compare it."""
    for attr in ("field", "op", "type", "value"):
        text = getattr(cond, attr)
        if text is not None and "\x00" in text:
            raise InvalidQuery(
                f"Invalid input for field/attribute {attr}. Value contains a NUL character."
            )


def check_marker(marker: str | None) -> str | None:
    """An empty marker means none (as in Panko); one with NUL can name no event."""
    if not marker:
        return None
    if "\x00" in marker:
        raise InvalidMarker(f"Marker {marker!r} not found.")
    return marker


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_dt(value: object) -> dt.datetime | None:
    return value if isinstance(value, dt.datetime) else None


def parse_sort(items: Sequence[str]) -> tuple[SortKey, ...]:
    """Parse ``key[:dir]`` sort items; empty means the default sort."""
    sorts: list[SortKey] = []
    for item in items:
        key, _, direction = item.partition(":")
        if key not in SORT_KEYS:
            raise InvalidQuery(
                f"Invalid input for field/attribute sort. Value: '{item}'. the sort parameter "
                "should be a pair of sort key and sort dir combined with ':', or only sort key "
                f"specified and sort dir will be default '{DEFAULT_SORT_DIR}', the supported "
                f"sort keys are: {SORT_KEYS!r}"
            )
        if direction and direction not in SORT_DIRS:
            raise InvalidQuery(
                f"Invalid input for field/attribute sort direction. Value: '{item}'. the sort "
                "parameter should be a pair of sort key and sort dir combined with ':', or only "
                f"sort key specified and sort dir will be default '{DEFAULT_SORT_DIR}', the "
                f"supported sort directions are: {SORT_DIRS!r}"
            )
        sorts.append(SortKey(key, direction == "desc"))
    return tuple(sorts) if sorts else DEFAULT_SORT


def parse_limit(raw: str | list[str] | None, default: int, maximum: int) -> int:
    """Panko's limit rules (absent or 0: the default; negative: error), capped at maximum.

    A list means the parameter was repeated, which is an error (Panko's words).
    """
    if raw is None:
        return min(default, maximum)
    try:
        limit = int(raw)  # type: ignore[arg-type]  # a list fails here, with Panko's message
    except (TypeError, ValueError) as exc:
        raise InvalidQuery(
            f"Invalid input for field/attribute limit. Value: '{raw}'. unable to convert to int. "
            f"Error: {exc}"
        ) from None
    if limit < 0:
        raise InvalidQuery(
            f"Invalid input for field/attribute limit. Value: '{raw}'. the limit should be a "
            "positive integer."
        )
    if limit == 0:
        limit = default
    return min(limit, maximum)
