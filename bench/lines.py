"""The query lines: the same HTTP requests for Annals and Panko, built from the data plan.

Each filter carries its field, op, type and value: Panko pairs the n-th ``q.field`` with the
n-th ``q.op``/``q.type``/``q.value`` by position, so a filter missing one would shift the
others. Each line rotates through several parameter values (instance ids, members, days...)
picked from the data so that every request finds events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from bench.data import EPOCH, MEMORY_THRESHOLD, DataPlan
from bench.httpdriver import Request

EVENTS = "/v2/events"
ADMIN_USER = "bench-admin"
CREATE_END = "compute.instance.create.end"
TYPES = (
    "compute.instance.create.start",
    CREATE_END,
    "compute.instance.delete.end",
    "volume.create.end",
    "network.create.end",
    "identity.authenticate",
)


def fq(field: str, value: str, op: str = "eq", typ: str = "string") -> tuple[tuple[str, str], ...]:
    """One fully specified filter (all four ``q.*`` parameters)."""
    return (("q.field", field), ("q.op", op), ("q.type", typ), ("q.value", value))


ALL_TENANTS = fq("all_tenants", "True")


def admin(project: str) -> tuple[tuple[str, str], ...]:
    return (("X-User-Id", ADMIN_USER), ("X-Project-Id", project), ("X-Roles", "admin"))


def member(project: str, user: str) -> tuple[tuple[str, str], ...]:
    return (("X-User-Id", user), ("X-Project-Id", project), ("X-Roles", "member"))


@dataclass(frozen=True)
class Line:
    name: str
    title: str
    build: Callable[[DataPlan], list[Request]]
    #: counted against the targets (trait values are unbounded by design: reported only)
    target: bool = True


def _day(offset: int) -> tuple[str, str]:
    start = EPOCH + dt.timedelta(days=offset)
    end = start + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    fmt = "%Y-%m-%dT%H:%M:%S.%f"
    return start.strftime(fmt), end.strftime(fmt)


def _lines() -> list[Line]:
    def list_all(plan: DataPlan) -> list[Request]:
        return [Request(EVENTS, ALL_TENANTS, admin(plan.admin_project))]

    def list_admin_project(plan: DataPlan) -> list[Request]:
        return [Request(EVENTS, (), admin(p)) for p in plan.projects[:10]]

    def event_type(plan: DataPlan) -> list[Request]:
        return [
            Request(EVENTS, ALL_TENANTS + fq("event_type", t), admin(plan.admin_project))
            for t in TYPES
        ]

    def trait_string(plan: DataPlan) -> list[Request]:
        return [
            Request(EVENTS, ALL_TENANTS + fq("instance_id", i), admin(plan.admin_project))
            for i in plan.instance_ids
        ]

    def member_list(plan: DataPlan) -> list[Request]:
        return [Request(EVENTS, (), member(p, u)) for p, u in plan.members]

    def trait_int_range(plan: DataPlan) -> list[Request]:
        return [
            Request(
                EVENTS,
                ALL_TENANTS + fq("memory_mb", str(v), "ge", "integer"),
                admin(plan.admin_project),
            )
            for v in (MEMORY_THRESHOLD, MEMORY_THRESHOLD // 2, MEMORY_THRESHOLD * 2)
        ]

    def day_window(plan: DataPlan) -> list[Request]:
        out = []
        for d in range(28):
            start, end = _day(d)
            q = (
                ALL_TENANTS
                + fq("start_timestamp", start, "ge", "datetime")
                + fq("end_timestamp", end, "le", "datetime")
            )
            out.append(Request(EVENTS, q, admin(plan.admin_project)))
        return out

    def sort_desc(plan: DataPlan) -> list[Request]:
        return [
            Request(EVENTS, (*ALL_TENANTS, ("sort", "generated:desc")), admin(plan.admin_project))
        ]

    def after(marker: str, plan: DataPlan) -> list[Request]:
        """The page after ``marker``, default sort and page size."""
        return [Request(EVENTS, (*ALL_TENANTS, ("marker", marker)), admin(plan.admin_project))]

    def page10(plan: DataPlan) -> list[Request]:
        return after(plan.page10_marker, plan)

    def page_deep(plan: DataPlan) -> list[Request]:
        return after(plan.deep_marker, plan)

    def get_by_id(plan: DataPlan) -> list[Request]:
        return [Request(f"{EVENTS}/{m}", (), admin(p)) for m, p in plan.events_by_id]

    def event_types(plan: DataPlan) -> list[Request]:
        return [Request("/v2/event_types", (), admin(plan.admin_project))]

    def traits_of_type(plan: DataPlan) -> list[Request]:
        return [
            Request(f"/v2/event_types/{t}/traits", (), admin(plan.admin_project)) for t in TYPES
        ]

    def trait_values(plan: DataPlan) -> list[Request]:
        return [
            Request(f"/v2/event_types/{CREATE_END}/traits/{n}", (), admin(plan.admin_project))
            for n in ("state", "memory_mb", "launched_at")
        ]

    return [
        Line("list", "default list (all_tenants)", list_all),
        Line("list_admin_project", "admin list, own project", list_admin_project),
        Line("event_type", "event_type eq", event_type),
        Line("trait_string", "string trait eq (instance_id)", trait_string),
        Line("member_list", "member-scoped list", member_list),
        Line("trait_int_range", "integer trait range (memory_mb ge)", trait_int_range),
        Line("day_window", "one-day time window", day_window),
        Line("sort_desc", "sort generated:desc", sort_desc),
        Line("page10", "10th page by marker", page10),
        Line("page_deep", "page by marker, 90% deep", page_deep),
        Line("get_by_id", "get by id (admin)", get_by_id),
        Line("event_types", "event_types", event_types),
        Line("traits_of_type", "traits of a type", traits_of_type),
        Line("trait_values", "trait values (not a target)", trait_values, target=False),
    ]


LINES = _lines()
LINE_TITLES = {line.name: line.title for line in LINES}


def throughput_requests(plan: DataPlan) -> list[Request]:
    """The trait filter, for the requests/s at concurrency 8."""
    return next(line for line in LINES if line.name == "trait_string").build(plan)


def page_request(plan: DataPlan, limit: int) -> Request:
    return Request(EVENTS, (*ALL_TENANTS, ("limit", str(limit))), admin(plan.admin_project))
