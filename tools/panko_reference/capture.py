"""Capture golden wire behaviour from the real Panko 10.0.0 V2 API.

Runs ONLY inside the reference virtualenv (see README.md in this folder):
it imports panko itself, loads ``tests/golden/panko10_events.jsonl`` into a
fresh SQLite database through panko's own storage driver, builds the
``panko+noauth`` WSGI pipeline and replays a fixed request matrix against it
in-process.  The result is written to ``tests/golden/panko10_responses.json``.

The output is deterministic: re-running produces the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import webob
from oslo_utils import timeutils
from panko import service, storage
from panko.api import app as panko_app
from panko.storage import models

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_EVENTS = REPO / "tests" / "golden" / "panko10_events.jsonl"
DEFAULT_OUTPUT = REPO / "tests" / "golden" / "panko10_responses.json"
DEFAULT_PASTE_INI = Path(sys.prefix) / "etc" / "panko" / "api_paste.ini"
PANKO_VERSION = "10.0.0"

# Response headers whose value changes on every request; only their presence
# is recorded.
VOLATILE_HEADERS = {"x-openstack-request-id"}

# ---------------------------------------------------------------------------
# Identities (the noauth pipeline trusts these headers as-is)
# ---------------------------------------------------------------------------

IDENTITIES: dict[str, dict[str, str]] = {
    "admin": {"X-User-Id": "admin-user", "X-Project-Id": "project-admin", "X-Roles": "admin"},
    "admin_of_a": {"X-User-Id": "admin-user", "X-Project-Id": "project-a", "X-Roles": "admin"},
    "admin_of_b": {"X-User-Id": "admin-user", "X-Project-Id": "project-b", "X-Roles": "admin"},
    "admin_multirole": {
        "X-User-Id": "admin-user",
        "X-Project-Id": "project-admin",
        "X-Roles": "member,admin",
    },
    "admin_capitalised": {
        "X-User-Id": "admin-user",
        "X-Project-Id": "project-admin",
        "X-Roles": "Admin",
    },
    "admin_no_project": {"X-User-Id": "admin-user", "X-Roles": "admin"},
    "admin_roles_only": {"X-Roles": "admin"},
    "member_a": {"X-User-Id": "user-a", "X-Project-Id": "project-a", "X-Roles": "member"},
    "member_b": {"X-User-Id": "user-b", "X-Project-Id": "project-b", "X-Roles": "member"},
    "member_a_in_b": {"X-User-Id": "user-a", "X-Project-Id": "project-b", "X-Roles": "member"},
    "member_c_reader": {"X-User-Id": "user-c", "X-Project-Id": "project-c", "X-Roles": "reader"},
    "member_no_roles": {"X-User-Id": "user-a", "X-Project-Id": "project-a"},
    "member_user_only": {"X-User-Id": "user-a", "X-Roles": "member"},
    "anonymous": {},
}

JSON_CT = "application/json"
XML = {"Accept": "application/xml"}

# Message ids from the data set used by the matrix.
EV_A_CREATE_START = "3f1e0c2a-0001-4a8e-9d1e-000000000001"
EV_A_CREATE_END = "3f1e0c2a-0002-4a8e-9d1e-000000000002"
EV_B_CREATE_START = "3f1e0c2a-0003-4a8e-9d1e-000000000003"
EV_B_CREATE_END = "3f1e0c2a-0004-4a8e-9d1e-000000000004"
EV_A_DELETE_BY_UB = "3f1e0c2a-0005-4a8e-9d1e-000000000005"
EV_B_VOLUME = "3f1e0c2a-0006-4a8e-9d1e-000000000006"
EV_ADMIN_AUTH = "3f1e0c2a-0008-4a8e-9d1e-000000000008"
EV_NO_PROJECT = "3f1e0c2a-0009-4a8e-9d1e-000000000009"
EV_NO_TRAITS = "3f1e0c2a-0010-4a8e-9d1e-000000000010"
EV_INT_ONLY = "3f1e0c2a-0011-4a8e-9d1e-000000000011"
EV_INT_PROJECT = "3f1e0c2a-0012-4a8e-9d1e-000000000012"
EV_INT_PROJECT_NO_TEXT = "3f1e0c2a-0013-4a8e-9d1e-000000000013"
EV_TIE_LOW = "00000000-0014-4a8e-9d1e-000000000014"
EV_TIE_HIGH = "ffff0000-0015-4a8e-9d1e-000000000015"
EV_C_IMAGE = "3f1e0c2a-0017-4a8e-9d1e-000000000017"
EV_ADMIN_CREATE_END = "3f1e0c2a-0020-4a8e-9d1e-000000000020"
EV_UNKNOWN = "00000000-dead-beef-0000-000000000000"


@dataclass
class Case:
    """One request of the matrix."""

    name: str
    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    identity: str = "admin"

    def query_string(self) -> str:
        return urlencode(self.query, quote_via=quote, safe="")


def qf(
    fld: str | None = None,
    value: str | None = None,
    op: str | None = None,
    typ: str | None = None,
) -> list[tuple[str, str]]:
    """Expand one EventQuery into ``q.*`` query parameters (field, op, type, value)."""
    out: list[tuple[str, str]] = []
    if fld is not None:
        out.append(("q.field", fld))
    if op is not None:
        out.append(("q.op", op))
    if typ is not None:
        out.append(("q.type", typ))
    if value is not None:
        out.append(("q.value", value))
    return out


def fq(fld: str, value: str, op: str = "eq", typ: str = "string") -> list[tuple[str, str]]:
    """A fully specified EventQuery (all four ``q.*`` attributes).

    WSME matches repeated ``q.*`` parameters by position, per attribute, so when
    a request carries several filters each must specify the same attributes:
    otherwise ops/types shift onto the wrong filter, or WSME fails with a 500
    ("list index out of range").  Panko's own client always sends all four.
    """
    return qf(fld, value, op=op, typ=typ)


ALL_TENANTS = fq("all_tenants", "True")


class Matrix:
    """Collects cases, enforcing unique names."""

    def __init__(self) -> None:
        self.cases: list[Case] = []
        self._names: set[str] = set()

    def add(
        self,
        name: str,
        path: str,
        *,
        identity: str = "admin",
        query: list[tuple[str, str]] | None = None,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> None:
        if name in self._names:
            raise ValueError(f"duplicate case name {name}")
        self._names.add(name)
        hdrs = dict(IDENTITIES[identity])
        hdrs.update(headers or {})
        self.cases.append(
            Case(
                name=name,
                method=method,
                path=path,
                query=list(query or []),
                headers=hdrs,
                body=body,
                identity=identity,
            )
        )


def build_matrix() -> list[Case]:
    m = Matrix()
    ev = "/v2/events"

    # --- root, version document, capabilities, routing ----------------------
    m.add("root", "/", identity="anonymous")
    m.add("root_admin", "/")
    m.add("root_xml", "/", identity="anonymous", headers=XML)
    m.add("root_accept_html", "/", identity="anonymous", headers={"Accept": "text/html"})
    m.add("root_host_header", "/", identity="anonymous", headers={"Host": "panko.example.com:8977"})
    m.add("root_post", "/", identity="anonymous", method="POST")
    m.add("root_head", "/", identity="anonymous", method="HEAD")
    m.add("v2_no_slash", "/v2")
    m.add("v2_slash", "/v2/")
    m.add("v2_xml", "/v2/", headers=XML)
    m.add("capabilities", "/v2/capabilities")
    m.add("capabilities_anonymous", "/v2/capabilities", identity="anonymous")
    m.add("capabilities_member", "/v2/capabilities", identity="member_a")
    m.add("capabilities_slash", "/v2/capabilities/")
    m.add("capabilities_xml", "/v2/capabilities", headers=XML)
    m.add("capabilities_accept_any", "/v2/capabilities", headers={"Accept": "*/*"})
    m.add("capabilities_accept_html", "/v2/capabilities", headers={"Accept": "text/html"})
    m.add("capabilities_post", "/v2/capabilities", method="POST")
    m.add("capabilities_put", "/v2/capabilities", method="PUT")
    m.add("capabilities_delete", "/v2/capabilities", method="DELETE")
    m.add("capabilities_post_xml", "/v2/capabilities", method="POST", headers=XML)
    m.add("capabilities_extra_segment", "/v2/capabilities/foo")
    m.add("unknown_top_level", "/foo")
    m.add("unknown_v2_path", "/v2/foo")
    m.add("unknown_v2_path_xml", "/v2/foo", headers=XML)
    m.add("unknown_v2_path_accept_any", "/v2/foo", headers={"Accept": "*/*"})
    m.add("unknown_v2_path_accept_html", "/v2/foo", headers={"Accept": "text/html"})
    m.add("unknown_v1", "/v1/events")
    m.add("events_json_extension", "/v2/events.json")
    m.add("events_xml_extension", "/v2/events.xml")
    m.add("event_extra_segment", f"{ev}/{EV_ADMIN_AUTH}/extra")
    m.add("event_types_too_deep", "/v2/event_types/a/traits/b/c")

    # --- wrong methods --------------------------------------------------------
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        m.add(f"events_{method.lower()}", ev, method=method)
    m.add(
        "events_post_json_body",
        ev,
        method="POST",
        headers={"Content-Type": JSON_CT},
        body='{"message_id": "x", "event_type": "y"}',
    )
    m.add("events_post_xml", ev, method="POST", headers=XML)
    m.add("events_head", ev, method="HEAD")
    m.add("events_options", ev, method="OPTIONS")
    for method in ("POST", "PUT", "DELETE"):
        m.add(f"event_one_{method.lower()}", f"{ev}/{EV_ADMIN_AUTH}", method=method)
    m.add("event_types_post", "/v2/event_types", method="POST")
    m.add("event_types_delete", "/v2/event_types", method="DELETE")
    m.add("event_type_one_delete", "/v2/event_types/identity.authenticate", method="DELETE")
    m.add("event_type_traits_post", "/v2/event_types/identity.authenticate/traits", method="POST")
    m.add(
        "event_type_trait_put", "/v2/event_types/identity.authenticate/traits/outcome", method="PUT"
    )
    m.add("event_types_post_member", "/v2/event_types", method="POST", identity="member_a")

    # --- /v2/events: identities and visibility -------------------------------
    for ident in IDENTITIES:
        m.add(f"events_as_{ident}", ev, identity=ident)
    m.add("events_slash", f"{ev}/")
    m.add("events_member_a_slash", f"{ev}/", identity="member_a")
    for ident in ("admin", "admin_of_b", "member_a", "member_b", "anonymous"):
        m.add(f"events_all_tenants_true_as_{ident}", ev, identity=ident, query=ALL_TENANTS)
    for label, val in (
        ("true_lower", "true"),
        ("one", "1"),
        ("yes", "yes"),
        ("on", "on"),
        ("y", "y"),
        ("t", "t"),
        ("false", "False"),
        ("zero", "0"),
        ("garbage", "garbage"),
        ("empty", ""),
        ("upper", "TRUE"),
    ):
        m.add(f"events_all_tenants_{label}", ev, query=qf("all_tenants", val))
    m.add("events_all_tenants_op_ne", ev, query=qf("all_tenants", "True", op="ne"))
    m.add("events_all_tenants_type_integer", ev, query=qf("all_tenants", "True", typ="integer"))
    m.add("events_all_tenants_plain_param", ev, query=[("all_tenants", "True")])
    m.add(
        "events_all_tenants_false_then_true",
        ev,
        query=fq("all_tenants", "False") + fq("all_tenants", "True"),
    )
    m.add(
        "events_all_tenants_true_then_false",
        ev,
        query=fq("all_tenants", "True") + fq("all_tenants", "False"),
    )
    # Several invalid entries: which one is reported (request order, all_tenants included
    # where the caller's role makes it a trait filter).
    bad_all_tenants = fq("all_tenants", "True", typ="foo")
    bad_event_type = fq("event_type", "e", op="ne")
    bad_integer = fq("memory_mb", "x", typ="integer")
    m.add(
        "events_errors_member_all_tenants_first",
        ev,
        identity="member_a",
        query=bad_all_tenants + bad_event_type,
    )
    m.add(
        "events_errors_member_all_tenants_last",
        ev,
        identity="member_a",
        query=bad_integer + bad_all_tenants,
    )
    m.add(
        "events_errors_member_valid_all_tenants_first",
        ev,
        identity="member_a",
        query=fq("all_tenants", "True") + bad_integer,
    )
    m.add(
        "events_errors_admin_second_all_tenants_first",
        ev,
        query=fq("all_tenants", "True") + fq("all_tenants", "z", typ="integer") + bad_event_type,
    )
    m.add(
        "events_errors_admin_second_all_tenants_last",
        ev,
        query=fq("all_tenants", "True") + bad_event_type + fq("all_tenants", "z", typ="integer"),
    )

    # --- /v2/events: event model fields --------------------------------------
    m.add(
        "events_event_type_eq",
        ev,
        query=ALL_TENANTS + fq("event_type", "compute.instance.create.end"),
    )
    m.add(
        "events_event_type_eq_explicit_op",
        ev,
        query=ALL_TENANTS + fq("event_type", "volume.create.end", op="eq"),
    )
    m.add("events_event_type_unknown", ev, query=ALL_TENANTS + fq("event_type", "no.such.type"))
    m.add(
        "events_event_type_member",
        ev,
        identity="member_a",
        query=qf("event_type", "compute.instance.create.start"),
    )
    m.add(
        "events_event_type_type_integer",
        ev,
        query=ALL_TENANTS + fq("event_type", "identity.authenticate", typ="integer"),
    )
    m.add(
        "events_event_type_twice",
        ev,
        query=ALL_TENANTS
        + fq("event_type", "volume.create.end")
        + fq("event_type", "identity.authenticate"),
    )
    m.add("events_message_id_eq", ev, query=ALL_TENANTS + fq("message_id", EV_B_VOLUME))
    m.add("events_message_id_unknown", ev, query=ALL_TENANTS + fq("message_id", EV_UNKNOWN))
    m.add(
        "events_message_id_member_invisible",
        ev,
        identity="member_a",
        query=qf("message_id", EV_B_VOLUME),
    )
    m.add(
        "events_start_timestamp_ge",
        ev,
        query=ALL_TENANTS + fq("start_timestamp", "2024-03-04T11:00:00.000006", op="ge"),
    )
    m.add(
        "events_start_timestamp_default_op",
        ev,
        identity="admin_of_a",
        query=qf("start_timestamp", "2024-03-03T00:00:00"),
    )
    m.add(
        "events_start_timestamp_tz_offset",
        ev,
        query=ALL_TENANTS + fq("start_timestamp", "2024-03-05T03:00:00+02:00", op="ge"),
    )
    m.add(
        "events_start_timestamp_z",
        ev,
        query=ALL_TENANTS + fq("start_timestamp", "2024-03-05T02:00:00Z", op="ge"),
    )
    m.add(
        "events_start_timestamp_date_only",
        ev,
        query=ALL_TENANTS + fq("start_timestamp", "2024-03-05", op="ge"),
    )
    m.add(
        "events_start_timestamp_bad",
        ev,
        query=ALL_TENANTS + fq("start_timestamp", "notadate", op="ge"),
    )
    m.add(
        "events_end_timestamp_le",
        ev,
        query=ALL_TENANTS + fq("end_timestamp", "2024-03-01T11:30:00", op="le"),
    )
    m.add(
        "events_end_timestamp_default_op",
        ev,
        identity="admin_of_a",
        query=qf("end_timestamp", "2024-03-03T00:00:00"),
    )
    m.add(
        "events_end_timestamp_le_explicit_single",
        ev,
        identity="admin_of_a",
        query=qf("end_timestamp", "2024-03-03T00:00:00", op="le"),
    )
    m.add(
        "events_start_and_end",
        ev,
        query=ALL_TENANTS
        + fq("start_timestamp", "2024-03-02T00:00:00", op="ge")
        + fq("end_timestamp", "2024-03-03T00:00:00.000001", op="le"),
    )
    m.add(
        "events_start_after_end",
        ev,
        query=ALL_TENANTS
        + fq("start_timestamp", "2024-03-04T00:00:00", op="ge")
        + fq("end_timestamp", "2024-03-03T00:00:00", op="le"),
    )
    for fld, bad_op in (
        ("event_type", "ne"),
        ("event_type", "lt"),
        ("message_id", "gt"),
        ("start_timestamp", "gt"),
        ("start_timestamp", "le"),
        ("start_timestamp", "eq"),
        ("end_timestamp", "lt"),
        ("end_timestamp", "ge"),
        ("end_timestamp", "eq"),
    ):
        value = "2024-03-02T00:00:00" if "timestamp" in fld else "identity.authenticate"
        m.add(f"events_{fld}_op_{bad_op}", ev, query=qf(fld, value, op=bad_op))
    m.add("events_event_type_op_ne_xml", ev, query=qf("event_type", "x", op="ne"), headers=XML)

    # --- /v2/events: trait filters, every type x op --------------------------
    trait_samples = {
        "string": ("state", "active"),
        "integer": ("memory_mb", "2048"),
        "float": ("cpu_util", "0.25"),
        "datetime": ("launched_at", "2024-03-01T11:30:07"),
    }
    for typ, (name, value) in trait_samples.items():
        for op in ("lt", "le", "eq", "ne", "ge", "gt"):
            m.add(
                f"events_trait_{typ}_{op}", ev, query=ALL_TENANTS + fq(name, value, op=op, typ=typ)
            )
    m.add(
        "events_trait_string_default_type_and_op",
        ev,
        identity="admin_of_a",
        query=qf("state", "deleted"),
    )
    m.add(
        "events_trait_integer_value_without_type",
        ev,
        identity="admin_of_a",
        query=qf("memory_mb", "2048"),
    )
    m.add(
        "events_trait_integer_value_with_op_no_type",
        ev,
        identity="admin_of_a",
        query=qf("memory_mb", "2048", op="eq"),
    )
    m.add(
        "events_trait_integer_typed_no_op",
        ev,
        identity="admin_of_a",
        query=qf("memory_mb", "1024", typ="integer"),
    )
    m.add(
        "events_trait_float_value_integer_text",
        ev,
        query=ALL_TENANTS + fq("cpu_util", "1", typ="float"),
    )
    m.add(
        "events_trait_integer_as_float",
        ev,
        query=ALL_TENANTS + fq("memory_mb", "1024", typ="float"),
    )
    m.add(
        "events_trait_float_as_integer_mixed",
        ev,
        query=ALL_TENANTS + fq("size", "10", op="ge", typ="integer"),
    )
    m.add(
        "events_trait_float_mixed_name",
        ev,
        query=ALL_TENANTS + fq("size", "10", op="ge", typ="float"),
    )
    m.add(
        "events_trait_datetime_with_tz",
        ev,
        query=ALL_TENANTS + fq("launched_at", "2024-03-01T13:30:07+02:00", typ="datetime"),
    )
    m.add(
        "events_trait_datetime_micro",
        ev,
        query=ALL_TENANTS + fq("launched_at", "2024-03-01T10:00:04.987654", typ="datetime"),
    )
    m.add(
        "events_trait_unicode_value",
        ev,
        query=ALL_TENANTS + fq("display_name", "données-тест-数据"),
    )
    m.add("events_trait_empty_string_value", ev, query=ALL_TENANTS + fq("empty_string", ""))
    m.add("events_trait_unknown_name", ev, query=ALL_TENANTS + fq("no_such_trait", "x"))
    m.add(
        "events_trait_project_id_integer",
        ev,
        query=ALL_TENANTS + fq("project_id", "42", typ="integer"),
    )
    m.add(
        "events_trait_big_int",
        ev,
        query=ALL_TENANTS + fq("big_int", "9007199254740993", typ="integer"),
    )
    m.add("events_trait_bad_op", ev, query=ALL_TENANTS + fq("state", "active", op="foo"))
    m.add("events_trait_bad_op_xml", ev, query=qf("state", "active", op="foo"), headers=XML)
    m.add("events_trait_bad_type", ev, query=ALL_TENANTS + fq("state", "active", typ="foo"))
    m.add("events_trait_bad_type_xml", ev, query=qf("state", "active", typ="foo"), headers=XML)
    m.add("events_trait_type_boolean", ev, query=ALL_TENANTS + fq("shared", "False", typ="boolean"))
    m.add("events_trait_type_none", ev, query=ALL_TENANTS + fq("state", "active", typ="none"))
    m.add("events_trait_empty_type", ev, query=ALL_TENANTS + fq("state", "active", typ=""))
    m.add(
        "events_trait_empty_type_numeric_value",
        ev,
        query=ALL_TENANTS + fq("memory_mb", "2048", typ=""),
    )
    m.add("events_trait_empty_op", ev, query=ALL_TENANTS + fq("state", "active", op=""))
    m.add(
        "events_trait_integer_not_convertible",
        ev,
        query=ALL_TENANTS + fq("memory_mb", "abc", typ="integer"),
    )
    m.add(
        "events_trait_integer_float_text",
        ev,
        query=ALL_TENANTS + fq("memory_mb", "2048.0", typ="integer"),
    )
    m.add(
        "events_trait_float_not_convertible",
        ev,
        query=ALL_TENANTS + fq("cpu_util", "x", typ="float"),
    )
    m.add(
        "events_trait_datetime_not_convertible",
        ev,
        query=ALL_TENANTS + fq("launched_at", "notadate", typ="datetime"),
    )
    m.add(
        "events_trait_integer_not_convertible_xml",
        ev,
        query=qf("memory_mb", "abc", typ="integer"),
        headers=XML,
    )
    m.add(
        "events_same_trait_range",
        ev,
        query=ALL_TENANTS
        + fq("memory_mb", "1024", op="ge", typ="integer")
        + fq("memory_mb", "2048", op="le", typ="integer"),
    )
    m.add(
        "events_same_trait_conflicting",
        ev,
        query=ALL_TENANTS + fq("state", "active") + fq("state", "building"),
    )
    m.add(
        "events_two_traits",
        ev,
        query=ALL_TENANTS + fq("project_id", "project-a") + fq("state", "building"),
    )
    m.add(
        "events_trait_and_event_type",
        ev,
        query=ALL_TENANTS
        + fq("event_type", "compute.instance.create.end")
        + fq("memory_mb", "4096", op="lt", typ="integer"),
    )
    m.add(
        "events_member_a_project_filter_other",
        ev,
        identity="member_a",
        query=qf("project_id", "project-b"),
    )
    m.add(
        "events_member_a_user_filter_other", ev, identity="member_a", query=qf("user_id", "user-b")
    )
    m.add("events_member_a_trait_filter", ev, identity="member_a", query=qf("state", "building"))
    m.add("events_admin_project_filter_no_all_tenants", ev, query=qf("project_id", "project-a"))

    # --- /v2/events: malformed q --------------------------------------------
    m.add("events_q_field_without_value", ev, query=[("q.field", "state")])
    m.add("events_q_value_without_field", ev, query=[("q.value", "active")])
    m.add("events_q_op_only", ev, query=[("q.op", "eq")])
    m.add(
        "events_q_mismatched_counts",
        ev,
        query=[("q.field", "state"), ("q.field", "host"), ("q.value", "active")],
    )
    m.add(
        "events_q_type_fewer_than_fields",
        ev,
        query=[
            ("q.field", "all_tenants"),
            ("q.field", "memory_mb"),
            ("q.type", "integer"),
            ("q.value", "True"),
            ("q.value", "2048"),
        ],
    )
    m.add(
        "events_q_op_fewer_than_fields",
        ev,
        query=[
            ("q.field", "all_tenants"),
            ("q.field", "start_timestamp"),
            ("q.op", "ge"),
            ("q.value", "True"),
            ("q.value", "2024-03-05T00:00:00"),
        ],
    )
    m.add(
        "events_q_mismatched_ops",
        ev,
        query=[
            ("q.field", "all_tenants"),
            ("q.field", "state"),
            ("q.op", "eq"),
            ("q.value", "True"),
            ("q.value", "active"),
        ],
    )
    m.add("events_q_empty_field", ev, query=qf("", "x"))
    m.add("events_q_plain_param", ev, query=[("q", "state")])
    m.add("events_q_unknown_attribute", ev, query=[*qf("state", "active"), ("q.foo", "bar")])
    m.add("events_q_field_without_value_xml", ev, query=[("q.field", "state")], headers=XML)
    m.add("events_unknown_param", ev, query=[("foo", "bar")])
    m.add("events_unknown_param_xml", ev, query=[("foo", "bar")], headers=XML)

    # --- /v2/events: limit -----------------------------------------------------
    for label, val in (
        ("0", "0"),
        ("neg1", "-1"),
        ("abc", "abc"),
        ("1", "1"),
        ("2", "2"),
        ("huge", "100000"),
        ("float", "1.5"),
        ("empty", ""),
        ("plus", "+3"),
    ):
        m.add(f"events_limit_{label}", ev, query=[*ALL_TENANTS, ("limit", val)])
    m.add("events_limit_0_xml", ev, query=[("limit", "0")], headers=XML)
    m.add("events_limit_twice", ev, query=[*ALL_TENANTS, ("limit", "1"), ("limit", "2")])
    m.add("events_limit_member", ev, identity="member_a", query=[("limit", "2")])

    # --- /v2/events: sort ------------------------------------------------------
    for label, vals in (
        ("message_id", ["message_id"]),
        ("message_id_asc", ["message_id:asc"]),
        ("message_id_desc", ["message_id:desc"]),
        ("generated_asc", ["generated:asc"]),
        ("generated_desc", ["generated:desc"]),
        ("generated_no_dir", ["generated"]),
        ("generated_empty_dir", ["generated:"]),
        ("bad_key", ["foo:asc"]),
        ("bad_dir", ["generated:up"]),
        ("upper_dir", ["generated:DESC"]),
        ("colon_only", [":"]),
        ("empty", [""]),
        ("multiple", ["generated:desc", "message_id:desc"]),
        ("multiple_msgid_first", ["message_id:desc", "generated:asc"]),
        ("duplicate_key", ["generated:desc", "generated:asc"]),
        ("three_parts", ["generated:desc:extra"]),
    ):
        m.add(f"events_sort_{label}", ev, query=ALL_TENANTS + [("sort", v) for v in vals])
    m.add("events_sort_bad_key_xml", ev, query=[("sort", "foo")], headers=XML)
    m.add(
        "events_sort_desc_limit",
        ev,
        query=[*ALL_TENANTS, ("sort", "generated:desc"), ("limit", "3")],
    )

    # --- /v2/events: marker ----------------------------------------------------
    m.add(
        "events_marker_valid",
        ev,
        query=[*ALL_TENANTS, ("marker", EV_B_CREATE_START), ("limit", "3")],
    )
    m.add("events_marker_tie", ev, query=[*ALL_TENANTS, ("marker", EV_TIE_LOW), ("limit", "2")])
    m.add(
        "events_marker_desc",
        ev,
        query=[
            *ALL_TENANTS,
            ("marker", EV_INT_PROJECT),
            ("sort", "generated:desc"),
            ("limit", "3"),
        ],
    )
    m.add(
        "events_marker_message_id_sort",
        ev,
        query=[
            *ALL_TENANTS,
            ("marker", EV_B_CREATE_START),
            ("sort", "message_id:asc"),
            ("limit", "3"),
        ],
    )
    m.add(
        "events_marker_last",
        ev,
        query=[*ALL_TENANTS, ("marker", "3f1e0c2a-0026-4a8e-9d1e-000000000026")],
    )
    m.add("events_marker_unknown", ev, query=[*ALL_TENANTS, ("marker", EV_UNKNOWN)])
    m.add("events_marker_unknown_xml", ev, query=[("marker", EV_UNKNOWN)], headers=XML)
    m.add("events_marker_empty", ev, query=[*ALL_TENANTS, ("marker", ""), ("limit", "2")])
    m.add(
        "events_marker_invisible_to_member",
        ev,
        identity="member_a",
        query=[("marker", EV_B_CREATE_END)],
    )
    m.add(
        "events_marker_own_member",
        ev,
        identity="member_a",
        query=[("marker", EV_A_CREATE_START), ("limit", "2")],
    )

    # --- /v2/events: JSON body --------------------------------------------------
    jhdr = {"Content-Type": JSON_CT}
    body_q = json.dumps(
        {
            "q": [
                {"field": "all_tenants", "value": "True"},
                {"field": "event_type", "value": "volume.create.end"},
            ]
        }
    )
    m.add("events_body_q", ev, headers=jhdr, body=body_q)
    m.add(
        "events_body_q_typed_trait",
        ev,
        headers=jhdr,
        body=json.dumps(
            {
                "q": [
                    {"field": "all_tenants", "value": "True"},
                    {"field": "memory_mb", "op": "gt", "type": "integer", "value": "2048"},
                ]
            }
        ),
    )
    m.add(
        "events_body_q_member",
        ev,
        identity="member_a",
        headers=jhdr,
        body=json.dumps({"q": [{"field": "state", "value": "building"}]}),
    )
    m.add(
        "events_body_q_bad_op",
        ev,
        headers=jhdr,
        body=json.dumps({"q": [{"field": "state", "op": "foo", "value": "active"}]}),
    )
    m.add(
        "events_body_q_missing_value",
        ev,
        headers=jhdr,
        body=json.dumps({"q": [{"field": "state"}]}),
    )
    m.add(
        "events_body_q_value_not_string",
        ev,
        headers=jhdr,
        body=json.dumps(
            {
                "q": [
                    {"field": "all_tenants", "value": "True"},
                    {"field": "memory_mb", "type": "integer", "value": 2048},
                ]
            }
        ),
    )
    m.add(
        "events_body_limit_sort",
        ev,
        headers=jhdr,
        body=json.dumps(
            {
                "q": [{"field": "all_tenants", "value": "True"}],
                "limit": 2,
                "sort": ["generated:desc"],
            }
        ),
    )
    m.add(
        "events_body_marker",
        ev,
        headers=jhdr,
        body=json.dumps(
            {
                "q": [{"field": "all_tenants", "value": "True"}],
                "limit": 2,
                "marker": EV_B_CREATE_START,
            }
        ),
    )
    m.add(
        "events_body_and_query",
        ev,
        headers=jhdr,
        query=qf("event_type", "image.upload"),
        body=body_q,
    )
    m.add(
        "events_body_and_query_limit",
        ev,
        headers=jhdr,
        query=[("limit", "1")],
        body=json.dumps({"q": [{"field": "all_tenants", "value": "True"}], "limit": 2}),
    )
    m.add(
        "events_body_list",
        ev,
        headers=jhdr,
        body=json.dumps([{"field": "event_type", "value": "volume.create.end"}]),
    )
    m.add("events_body_not_json", ev, headers=jhdr, body="this is not json")
    m.add("events_body_not_json_xml", ev, headers={**jhdr, **XML}, body="this is not json")
    m.add("events_body_empty_object", ev, headers=jhdr, body="{}")
    m.add("events_body_missing_q", ev, headers=jhdr, body=json.dumps({"foo": "bar"}))
    m.add("events_body_q_null", ev, headers=jhdr, body=json.dumps({"q": None}))
    m.add("events_body_q_not_list", ev, headers=jhdr, body=json.dumps({"q": "state"}))
    m.add("events_body_empty_string", ev, headers=jhdr, body="")
    m.add("events_body_text_plain", ev, headers={"Content-Type": "text/plain"}, body=body_q)
    m.add("events_body_no_content_type", ev, body=body_q)
    m.add(
        "events_body_xml_content_type",
        ev,
        headers={"Content-Type": "application/xml"},
        body="<q><item><field>event_type</field><value>image.upload</value></item></q>",
    )

    # --- /v2/events: content negotiation -------------------------------------
    for label, accept in (
        ("xml", "application/xml"),
        ("any", "*/*"),
        ("html", "text/html"),
        ("json", "application/json"),
        ("text_xml", "text/xml"),
        ("xml_preferred", "application/json;q=0.5, application/xml"),
        ("json_preferred", "application/xml;q=0.5, application/json"),
        ("unsupported", "application/yaml"),
    ):
        m.add(
            f"events_accept_{label}",
            ev,
            query=[*ALL_TENANTS, ("limit", "3")],
            headers={"Accept": accept},
        )
    m.add("events_xml_full", ev, query=ALL_TENANTS, headers=XML)
    m.add("events_xml_member_a", ev, identity="member_a", headers=XML)
    m.add("events_xml_anonymous", ev, identity="anonymous", headers=XML)
    m.add("events_anonymous_accept_any", ev, identity="anonymous", headers={"Accept": "*/*"})
    m.add("events_html_anonymous", ev, identity="anonymous", headers={"Accept": "text/html"})
    m.add("events_xml_empty", ev, query=ALL_TENANTS + fq("event_type", "nope"), headers=XML)

    # --- /v2/events/<message_id> -----------------------------------------------
    one = f"{ev}/"
    for label, ident, mid in (
        ("admin_own_project", "admin", EV_ADMIN_AUTH),
        ("admin_other_project", "admin", EV_A_CREATE_END),
        ("admin_no_project_trait", "admin", EV_NO_PROJECT),
        ("admin_no_traits", "admin", EV_NO_TRAITS),
        ("admin_int_only", "admin", EV_INT_ONLY),
        ("admin_int_project", "admin", EV_INT_PROJECT),
        ("admin_int_project_no_text", "admin", EV_INT_PROJECT_NO_TEXT),
        ("admin_unknown", "admin", EV_UNKNOWN),
        ("admin_of_b_b_event", "admin_of_b", EV_B_VOLUME),
        ("admin_of_b_a_event", "admin_of_b", EV_A_CREATE_END),
        ("admin_multirole", "admin_multirole", EV_ADMIN_CREATE_END),
        ("member_a_own", "member_a", EV_A_CREATE_END),
        ("member_a_same_project_other_user", "member_a", EV_A_DELETE_BY_UB),
        ("member_a_other_project", "member_a", EV_B_CREATE_END),
        ("member_a_int_project", "member_a", EV_INT_PROJECT),
        ("member_a_unknown", "member_a", EV_UNKNOWN),
        ("member_b_own_unicode", "member_b", EV_B_VOLUME),
        ("member_c_floats", "member_c_reader", EV_C_IMAGE),
        ("member_no_roles", "member_no_roles", EV_A_CREATE_END),
        ("anonymous", "anonymous", EV_A_CREATE_END),
        ("admin_roles_only", "admin_roles_only", EV_ADMIN_AUTH),
        ("member_user_only", "member_user_only", EV_A_CREATE_END),
    ):
        m.add(f"event_{label}", one + mid, identity=ident)
    m.add("event_all_tenants_param_ignored", one + EV_A_CREATE_END, query=ALL_TENANTS)
    m.add("event_trailing_slash", one + EV_ADMIN_AUTH + "/")
    m.add("event_xml", one + EV_ADMIN_AUTH, headers=XML)
    m.add("event_xml_floats", one + EV_C_IMAGE, identity="member_c_reader", headers=XML)
    m.add("event_xml_unicode", one + EV_B_VOLUME, identity="member_b", headers=XML)
    m.add("event_xml_not_found", one + EV_UNKNOWN, headers=XML)
    m.add("event_xml_forbidden", one + EV_ADMIN_AUTH, identity="anonymous", headers=XML)
    m.add("event_accept_html", one + EV_ADMIN_AUTH, headers={"Accept": "text/html"})
    m.add("event_percent_encoded_id", one + quote("weird id/ü", safe=""))
    m.add("event_unicode_id", one + quote("événement", safe=""))
    m.add("event_id_with_extension", one + "foo.json")
    m.add(
        "event_forbidden_accept_html",
        one + EV_ADMIN_AUTH,
        identity="anonymous",
        headers={"Accept": "text/html"},
    )

    # --- /v2/event_types ----------------------------------------------------------
    et = "/v2/event_types"
    for ident in (
        "admin",
        "admin_of_b",
        "member_a",
        "member_no_roles",
        "member_user_only",
        "admin_roles_only",
        "anonymous",
    ):
        m.add(f"event_types_as_{ident}", et, identity=ident)
    m.add("event_types_slash", et + "/")
    m.add("event_types_xml", et, headers=XML)
    m.add("event_types_member_xml", et, identity="member_a", headers=XML)
    m.add(
        "event_types_member_accept_html", et, identity="member_a", headers={"Accept": "text/html"}
    )
    m.add("event_types_query_ignored", et, query=[("limit", "1")])
    m.add("event_type_one", et + "/compute.instance.create.end")
    m.add("event_type_one_unknown", et + "/no.such.type")
    m.add("event_type_one_slash", et + "/compute.instance.create.end/")
    m.add("event_type_one_xml", et + "/compute.instance.create.end", headers=XML)
    m.add("event_type_one_member", et + "/compute.instance.create.end", identity="member_a")
    m.add("event_type_one_anonymous", et + "/compute.instance.create.end", identity="anonymous")

    for label, etype in (
        ("create_end", "compute.instance.create.end"),
        ("volume_mixed_types", "volume.create.end"),
        ("no_traits", "compute.instance.update"),
        ("int_only", "compute.metrics.update"),
        ("image_floats", "image.upload"),
        ("unknown", "no.such.type"),
    ):
        m.add(f"event_type_traits_{label}", f"{et}/{etype}/traits")
    m.add("event_type_traits_slash", f"{et}/compute.instance.create.end/traits/")
    m.add("event_type_traits_xml", f"{et}/compute.instance.create.end/traits", headers=XML)
    m.add(
        "event_type_traits_member", f"{et}/compute.instance.create.end/traits", identity="member_a"
    )
    m.add(
        "event_type_traits_member_xml",
        f"{et}/compute.instance.create.end/traits",
        identity="member_a",
        headers=XML,
    )
    m.add(
        "event_type_traits_anonymous",
        f"{et}/compute.instance.create.end/traits",
        identity="anonymous",
    )

    for label, etype, trait in (
        ("string", "compute.instance.create.end", "state"),
        ("integer", "compute.instance.create.end", "memory_mb"),
        ("float", "compute.instance.create.end", "cpu_util"),
        ("datetime", "compute.instance.create.end", "launched_at"),
        ("mixed_types", "volume.create.end", "size"),
        ("unicode", "volume.create.end", "display_name"),
        ("float_formats_min", "image.upload", "min_ratio"),
        ("float_formats_max", "image.upload", "max_ratio"),
        ("float_formats_neg", "image.upload", "neg_ratio"),
        ("float_formats_pi", "image.upload", "pi"),
        ("big_int", "compute.metrics.update", "big_int"),
        ("negative_int", "compute.metrics.update", "negative_int"),
        ("int_project_id", "compute.instance.exists", "project_id"),
        ("empty_string", "compute.instance.create.start", "empty_string"),
        ("unknown_trait", "compute.instance.create.end", "no_such_trait"),
        ("unknown_type", "no.such.type", "state"),
    ):
        m.add(f"event_type_trait_{label}", f"{et}/{etype}/traits/{trait}")
    m.add("event_type_trait_slash", f"{et}/compute.instance.create.end/traits/state/")
    m.add("event_type_trait_xml", f"{et}/compute.instance.create.end/traits/state", headers=XML)
    m.add(
        "event_type_trait_xml_datetime",
        f"{et}/compute.instance.create.end/traits/launched_at",
        headers=XML,
    )
    m.add(
        "event_type_trait_member",
        f"{et}/compute.instance.create.end/traits/state",
        identity="member_a",
    )
    m.add(
        "event_type_trait_anonymous",
        f"{et}/compute.instance.create.end/traits/state",
        identity="anonymous",
    )
    return m.cases


# ---------------------------------------------------------------------------
# Reference service
# ---------------------------------------------------------------------------


def ensure_paste_ini(path: Path) -> Path:
    """Return panko's api_paste.ini, extracting it from the 10.0.0 sdist if absent.

    The wheel does not ship ``etc/panko/api_paste.ini``; the sdist does.
    """
    if path.exists():
        return path
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                tmp,
                f"panko=={PANKO_VERSION}",
            ],
            check=True,
        )
        sdist = Path(tmp) / f"panko-{PANKO_VERSION}.tar.gz"
        member = f"panko-{PANKO_VERSION}/etc/panko/api_paste.ini"
        with tarfile.open(sdist) as tar:
            extracted = tar.extractfile(member)
            if extracted is None:
                raise RuntimeError(f"{member} missing from {sdist}")
            data = extracted.read()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def load_events(events_file: Path) -> list[Any]:
    """Convert Ceilometer http-publisher lines into panko storage models."""
    out: list[Any] = []
    for line in events_file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        traits = [
            models.Trait(name, dtype, models.Trait.convert_value(dtype, value))
            for name, dtype, value in doc.get("traits", [])
        ]
        generated = timeutils.normalize_time(timeutils.parse_isotime(doc["generated"]))
        out.append(
            models.Event(
                doc["message_id"], doc["event_type"], generated, traits, doc.get("raw", {})
            )
        )
    return out


def build_app(workdir: Path, paste_ini: Path, events_file: Path) -> Any:
    conf_file = workdir / "panko.conf"
    conf_file.write_text(
        "[DEFAULT]\n"
        f"api_paste_config = {paste_ini}\n"
        "debug = false\n"
        "use_stderr = false\n"
        "[database]\n"
        f"connection = sqlite:///{workdir / 'panko.db'}\n"
        "max_retries = 0\n",
        encoding="utf-8",
    )
    conf = service.prepare_service(argv=[], config_files=[str(conf_file)])
    conn = storage.get_connection_from_config(conf)
    conn.upgrade()
    conn.record_events(load_events(events_file))
    return panko_app.load_app(conf, appname="panko+noauth")


def run_case(app: Any, case: Case) -> dict[str, Any]:
    qs = case.query_string()
    url = case.path + (f"?{qs}" if qs else "")
    environ: dict[str, Any] = {"REQUEST_METHOD": case.method}
    body = case.body.encode("utf-8") if case.body is not None else None
    req = webob.Request.blank(url, environ=environ, headers=case.headers, body=body)
    if case.method != "GET" and body is None:
        req.content_length = None
    resp = req.get_response(app)
    raw = resp.body
    text = raw.decode("utf-8")
    parsed: Any = None
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    headers: dict[str, str] = {}
    for name, value in resp.headerlist:
        key = name.lower()
        headers[key] = "<present>" if key in VOLATILE_HEADERS else value
    return {
        "name": case.name,
        "identity": case.identity,
        "method": case.method,
        "path": case.path,
        "query": [list(p) for p in case.query],
        "query_string": qs,
        "headers": dict(sorted(case.headers.items())),
        "body": case.body,
        "status": resp.status_code,
        "status_line": resp.status,
        "content_type": resp.headers.get("Content-Type"),
        "response_headers": dict(sorted(headers.items())),
        "body_text": text,
        "json": parsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=Path, default=DEFAULT_EVENTS)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--paste-ini", type=Path, default=DEFAULT_PASTE_INI)
    args = parser.parse_args(argv)

    # WSME lists unknown arguments from a set ("Unknown argument: ..."); pin the
    # hash seed so that message, and therefore the golden file, is reproducible.
    if os.environ.get("PYTHONHASHSEED") != "0":
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(  # noqa: S606 - re-exec self with a pinned hash seed
            sys.executable,
            [
                sys.executable,
                str(Path(__file__).resolve()),
                *(argv if argv is not None else sys.argv[1:]),
            ],
            env,
        )

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    os.environ.setdefault("TZ", "UTC")

    paste_ini = ensure_paste_ini(args.paste_ini)
    cases = build_matrix()
    with tempfile.TemporaryDirectory(prefix="panko-ref-") as tmp:
        app = build_app(Path(tmp), paste_ini, args.events)
        results = [run_case(app, c) for c in cases]

    events_bytes = args.events.read_bytes()
    doc = {
        "generator": "tools/panko_reference/capture.py",
        "panko_version": PANKO_VERSION,
        "pipeline": "panko+noauth",
        "wsgi_host": "localhost:80",
        "events_file": "tests/golden/panko10_events.jsonl",
        "events_sha256": hashlib.sha256(events_bytes).hexdigest(),
        "identities": IDENTITIES,
        "cases": results,
    }
    args.output.write_text(
        json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
    )
    print(f"wrote {len(results)} cases to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
