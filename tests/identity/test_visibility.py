"""Property: every caller sees exactly the events Panko's rules allow, on every path.

Hypothesis generates events spread over several projects and users (some without a
``project_id``, some with an integer one, some carrying an ``all_tenants`` trait), then random
callers (members, admins in any case, system-scoped readers and admins, callers missing a
user or project) and random queries (trait and event filters, sorts, limits, markers,
``all_tenants`` entries). The expected answer is computed here in Python from the events,
independently of :mod:`annals.policy`, and compared with what the full WSGI stack answers:
the list, each event by id, and (under a policy that lets everyone in) event types, trait
descriptions and trait values.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annals.ingest.events import parse_event
from annals.storage.base import StorageDriver

pytestmark = [pytest.mark.db]

PROJECTS = ("p1", "p2", "p3")
USERS = ("u1", "u2", "u3")
EVENT_TYPES = ("compute.create", "compute.delete", "volume.attach")
TIMES = tuple(dt.datetime(2024, 5, 1, 12, 0, s) for s in range(0, 50, 7))
TRUE_WORDS = ("True", "true", "1", "yes", "on", "t", "Y")
FALSE_WORDS = ("False", "0", "no", "garbage", "")
TYPE_ORDER = {"string": 0, "integer": 1, "float": 2, "datetime": 3}
TYPE_NAMES = {1: "string", 2: "integer"}


@dataclass(frozen=True)
class Ev:
    message_id: str
    event_type: str
    generated: dt.datetime
    traits: tuple[tuple[str, int, Any], ...]  # (name, dtype 1 string | 2 integer, value)

    def string_trait(self, name: str) -> str | None:
        return next((v for n, d, v in self.traits if n == name and d == 1), None)

    def doc(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "event_type": self.event_type,
            "generated": self.generated.isoformat(),
            "traits": [list(t) for t in self.traits],
            "raw": {},
        }


@dataclass(frozen=True)
class Caller:
    user: str | None
    project: str | None
    roles: tuple[str, ...]
    system: bool = False

    def headers(self) -> dict[str, str]:
        h = {"X-Roles": ",".join(self.roles)}
        if self.user:
            h["X-User-Id"] = self.user
        if self.project:
            h["X-Project-Id"] = self.project
        if self.system:
            h["OpenStack-System-Scope"] = "all"
        return h

    @property
    def unrestricted(self) -> bool:
        """The default 'segregation' rule: role admin, or a system-scoped reader."""
        roles = {r.lower() for r in self.roles}
        return "admin" in roles or ("reader" in roles and self.system)


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    type: str
    value: str


@dataclass(frozen=True)
class Query:
    filters: tuple[Filter, ...] = ()
    sort: tuple[str, ...] = ()
    limit: int | None = None
    marker: str | None = None

    def params(self) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = []
        for f in self.filters:
            params += [
                ("q.field", f.field),
                ("q.op", f.op),
                ("q.type", f.type),
                ("q.value", f.value),
            ]
        params += [("sort", s) for s in self.sort]
        if self.limit is not None:
            params.append(("limit", str(self.limit)))
        if self.marker is not None:
            params.append(("marker", self.marker))
        return params


# --- strategies -------------------------------------------------------------------------

owner_value = st.one_of(st.none(), st.sampled_from(PROJECTS))


@st.composite
def events(draw: st.DrawFn) -> list[Ev]:
    count = draw(st.integers(0, 16))
    ids = draw(
        st.lists(
            st.text("0123456789abcdef", min_size=4, max_size=4),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    out = []
    for message_id in ids:
        traits: list[tuple[str, int, Any]] = []
        project_kind = draw(st.sampled_from(["string", "string", "string", "none", "integer"]))
        if project_kind == "string":
            traits.append(("project_id", 1, draw(st.sampled_from(PROJECTS))))
        elif project_kind == "integer":
            traits.append(("project_id", 2, draw(st.integers(1, 3))))
        if draw(st.integers(0, 4)):
            traits.append(("user_id", 1, draw(st.sampled_from(USERS))))
        if draw(st.booleans()):
            traits.append(("state", 1, draw(st.sampled_from(["on", "off"]))))
        if draw(st.booleans()):
            traits.append(("size", 2, draw(st.integers(-2, 2))))
        if not draw(st.integers(0, 9)):
            traits.append(("all_tenants", 1, draw(st.sampled_from(["True", "False"]))))
        out.append(
            Ev(
                message_id,
                draw(st.sampled_from(EVENT_TYPES)),
                draw(st.sampled_from(TIMES)),
                tuple(traits),
            )
        )
    return out


callers = st.one_of(
    st.builds(
        Caller,
        st.sampled_from(USERS),
        st.sampled_from(PROJECTS),
        st.sampled_from([("member",), ("reader",), ("member", "reader"), ()]),
    ),
    st.builds(
        Caller,
        st.sampled_from(USERS),
        st.sampled_from(PROJECTS),
        st.sampled_from([("admin",), ("Admin",), ("member", "ADMIN")]),
    ),
    st.builds(
        Caller,
        st.sampled_from(USERS),
        st.none(),
        st.sampled_from([("reader",), ("admin", "reader"), ("member",)]),
        st.just(True),
    ),
    st.builds(
        Caller,
        st.one_of(st.none(), st.sampled_from(USERS)),
        st.one_of(st.none(), st.sampled_from(PROJECTS)),
        st.sampled_from([("admin",), ("member",)]),
    ),
)

trait_filters = st.one_of(
    st.builds(
        Filter,
        st.just("state"),
        st.sampled_from(["eq", "ne"]),
        st.just("string"),
        st.sampled_from(["on", "off"]),
    ),
    st.builds(
        Filter,
        st.just("size"),
        st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]),
        st.just("integer"),
        st.integers(-2, 2).map(str),
    ),
    st.builds(
        Filter,
        st.sampled_from(["project_id", "user_id"]),
        st.just("eq"),
        st.just("string"),
        st.sampled_from(PROJECTS + USERS),
    ),
    st.builds(
        Filter,
        st.just("event_type"),
        st.just("eq"),
        st.just("string"),
        st.sampled_from(EVENT_TYPES),
    ),
    st.builds(
        Filter,
        st.just("start_timestamp"),
        st.just("ge"),
        st.just("datetime"),
        st.sampled_from(TIMES).map(dt.datetime.isoformat),
    ),
    st.builds(
        Filter,
        st.just("end_timestamp"),
        st.just("le"),
        st.just("datetime"),
        st.sampled_from(TIMES).map(dt.datetime.isoformat),
    ),
    st.builds(
        Filter,
        st.just("all_tenants"),
        st.just("eq"),
        st.just("string"),
        st.sampled_from(TRUE_WORDS + FALSE_WORDS),
    ),
)


@st.composite
def queries(draw: st.DrawFn, ids: Sequence[str]) -> Query:
    markers = (
        st.one_of(st.none(), st.just("no-such-event"), st.sampled_from(ids))
        if ids
        else st.one_of(st.none(), st.just("no-such-event"))
    )
    return Query(
        filters=tuple(draw(st.lists(trait_filters, max_size=4))),
        sort=tuple(
            draw(
                st.lists(
                    st.sampled_from(
                        ["generated", "generated:desc", "message_id", "message_id:desc"]
                    ),
                    max_size=2,
                )
            )
        ),
        limit=draw(st.one_of(st.none(), st.integers(0, 5))),
        marker=draw(markers),
    )


# --- the rules, in Python ------------------------------------------------------------------


def parse_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "t", "true", "on", "y", "yes")


@dataclass
class Expected:
    status: int
    ids: list[str] = field(default_factory=list)


def scope_allows(kind: str, caller: Caller, ev: Ev) -> bool:
    if kind == "all":
        return True
    project = ev.string_trait("project_id")
    if kind == "admin":
        return project is None or project == caller.project
    return project == caller.project and ev.string_trait("user_id") == caller.user


def base_scope(caller: Caller) -> str | None:
    """'all', 'admin' (own project + no project_id), 'owner', or None (403)."""
    if caller.unrestricted and caller.system:
        return "all" if caller.user else None
    if not caller.user or not caller.project:
        return None
    return "admin" if caller.unrestricted else "owner"


def matches(f: Filter, ev: Ev) -> bool:
    if f.field == "event_type":
        return ev.event_type == f.value
    if f.field == "start_timestamp":
        return ev.generated >= dt.datetime.fromisoformat(f.value)
    if f.field == "end_timestamp":
        return ev.generated <= dt.datetime.fromisoformat(f.value)
    dtype = 1 if f.type == "string" else 2
    want: Any = f.value if dtype == 1 else int(f.value)
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
    }
    return any(n == f.field and d == dtype and compare[f.op](v, want) for n, d, v in ev.traits)


def sort_keys(sort: Sequence[str]) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for item in sort:
        key, _, direction = item.partition(":")
        keys.append((key, direction == "desc"))
    if not keys:
        keys = [("generated", False)]
    if all(k != "message_id" for k, _ in keys):
        keys.append(("message_id", keys[-1][1]))  # the tie-break follows the last key
    return keys


def compare_events(keys: list[tuple[str, bool]], a: Ev, b: Ev) -> int:
    for key, desc in keys:
        va, vb = getattr(a, key), getattr(b, key)
        if va != vb:
            return (-1 if va < vb else 1) * (-1 if desc else 1)
    return 0


def expected_list(evs: Sequence[Ev], caller: Caller, query: Query) -> Expected:
    kind = base_scope(caller)
    if kind is None:
        return Expected(403)
    filters: list[Filter] = []
    event_fields: dict[str, Filter] = {}  # as in Panko, a repeated event field: the last wins
    for f in query.filters:
        if f.field in ("event_type", "start_timestamp", "end_timestamp"):
            event_fields[f.field] = f
        elif f.field != "all_tenants":
            filters.append(f)
        elif kind == "all" and caller.system:
            continue  # system-wide already; all_tenants changes nothing
        elif kind == "admin":
            if parse_bool(f.value):
                kind = "all"
        else:  # a member's, or an admin's once widened: an ordinary trait filter
            filters.append(f)
    filters += event_fields.values()
    in_scope = [e for e in evs if scope_allows(kind, caller, e)]
    found = [e for e in in_scope if all(matches(f, e) for f in filters)]
    keys = sort_keys(query.sort)
    found.sort(key=functools.cmp_to_key(functools.partial(compare_events, keys)))
    if query.marker is not None:
        marker = next((e for e in in_scope if e.message_id == query.marker), None)
        if marker is None:
            return Expected(400)
        found = [e for e in found if compare_events(keys, e, marker) > 0]
    limit = query.limit or 100
    return Expected(200, [e.message_id for e in found[:limit]])


# --- the test ---------------------------------------------------------------------------


def listed_ids(resp: httpx.Response, xml: bool) -> list[str]:
    if xml:
        return [el.text or "" for el in ET.fromstring(resp.content).iter("message_id")]
    return [e["message_id"] for e in resp.json()]


@pytest.fixture
def open_policy(tmp_path: Path) -> Path:
    """A policy that lets everyone list event types and traits (scoped by 'segregation')."""
    path = tmp_path / "policy.yaml"
    path.write_text('"telemetry:event_types:index": ""\n"telemetry:traits:index": ""\n')
    return path


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), evs=events())
def test_every_caller_sees_exactly_what_the_rules_allow(
    driver: StorageDriver,
    make_client: Callable[..., httpx.Client],
    open_policy: Path,
    data: st.DataObject,
    evs: list[Ev],
) -> None:
    driver.clear()
    if evs:
        driver.record_events([parse_event(e.doc()) for e in evs])
    client = make_client()
    ids = [e.message_id for e in evs]
    for _ in range(8):
        caller = data.draw(callers, label="caller")
        query = data.draw(queries(ids), label="query")
        want = expected_list(evs, caller, query)
        xml = data.draw(st.booleans(), label="as XML")
        headers = {**caller.headers(), "Accept": "application/xml" if xml else "application/json"}
        resp = client.get("/v2/events", params=tuple(query.params()), headers=headers)
        assert resp.status_code == want.status, resp.text
        if want.status == 200:
            assert listed_ids(resp, xml) == want.ids

    caller = data.draw(callers, label="caller by id")
    kind = base_scope(caller)
    for ev in evs:
        resp = client.get(f"/v2/events/{ev.message_id}", headers=caller.headers())
        if kind is None:
            assert resp.status_code == 403
        else:
            shown = scope_allows(kind, caller, ev)
            assert resp.status_code == (200 if shown else 404), (caller, ev)

    # Event types and traits, with a policy letting every caller in: an unrestricted caller
    # sees the whole deployment, anyone else only what its own events carry.
    relaxed = make_client({"oslo_policy": {"policy_file": open_policy}})
    caller = data.draw(callers, label="caller of event types")
    if caller.unrestricted:
        visible = list(evs)
    elif caller.user and caller.project:
        visible = [e for e in evs if scope_allows("owner", caller, e)]
    else:
        assert relaxed.get("/v2/event_types", headers=caller.headers()).status_code == 401
        return
    resp = relaxed.get("/v2/event_types", headers=caller.headers())
    assert resp.status_code == 200
    assert resp.json() == sorted({e.event_type for e in visible})
    event_type = data.draw(st.sampled_from(EVENT_TYPES), label="event type")
    of_type = [e for e in visible if e.event_type == event_type]
    resp = relaxed.get(f"/v2/event_types/{event_type}/traits", headers=caller.headers())
    assert resp.status_code == 200
    want_descs = sorted(
        {(n, TYPE_NAMES[d]) for e in of_type for n, d, _ in e.traits},
        key=lambda nt: (TYPE_ORDER[nt[1]], nt[0]),
    )
    assert [(d["name"], d["type"]) for d in resp.json()] == want_descs
    name = data.draw(st.sampled_from(["project_id", "user_id", "state", "size"]), label="trait")
    resp = relaxed.get(f"/v2/event_types/{event_type}/traits/{name}", headers=caller.headers())
    assert resp.status_code == 200
    got = sorted((t["type"], t["value"]) for t in resp.json())
    assert got == sorted(
        (TYPE_NAMES[d], str(v)) for e in of_type for n, d, v in e.traits if n == name
    )
