"""A small event set in the publisher's format, and how the API must render it.

Inputs are written in canonical form (timestamps with 6 or no fractional digits, floats
whose ``repr`` is exact), so the expected rendering is spelt out here rather than computed
by Annals' own code.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import ADMIN, MEMBER_A

TYPE_NAMES = {1: "string", 2: "integer", 3: "float", 4: "datetime"}


def mid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _owner(identity: dict[str, str]) -> list[list[Any]]:
    return [["project_id", 1, identity["X-Project-Id"]], ["user_id", 1, identity["X-User-Id"]]]


CREATE_START = "compute.instance.create.start"
CREATE_END = "compute.instance.create.end"
VOLUME_END = "volume.create.end"
AUTHENTICATE = "identity.authenticate"

#: e1..e4 belong to the admin's project, e5 to another project, e6 to MEMBER_A.
EVENTS: list[dict[str, Any]] = [
    {
        "message_id": mid(1),
        "event_type": CREATE_START,
        "generated": "2024-05-01T10:00:00",
        "traits": [
            *_owner(ADMIN),
            ["state", 1, "building"],
            ["memory_mb", 2, 512],
            ["load", 3, 0.25],
            ["launched_at", 4, "2024-05-01T09:59:59.500000"],
        ],
        "raw": {"payload": {"instance_id": "i-1", "nested": {"ok": True, "n": None}}},
    },
    {
        "message_id": mid(2),
        "event_type": CREATE_END,
        "generated": "2024-05-01T10:00:05.250000",
        "traits": [
            *_owner(ADMIN),
            ["state", 1, "active"],
            ["memory_mb", 2, 2048],
            ["load", 3, 1.5],
            ["launched_at", 4, "2024-05-01T10:00:05"],
        ],
        "raw": {"payload": {"instance_id": "i-1"}},
    },
    {
        "message_id": mid(3),
        "event_type": CREATE_END,
        "generated": "2024-05-01T10:05:00",
        "traits": [
            *_owner(ADMIN),
            ["state", 1, "active"],
            ["memory_mb", 2, 4096],
            ["load", 3, 3.0],
            ["launched_at", 4, "2024-05-01T10:04:59.000001"],
        ],
        "raw": {},
    },
    {
        "message_id": mid(4),
        "event_type": VOLUME_END,
        "generated": "2024-05-01T10:10:00",
        "traits": [*_owner(ADMIN), ["size", 2, 10], ["size", 3, 20.5]],
        "raw": {"payload": {"volume_id": "v-1"}},
    },
    {
        "message_id": mid(5),
        "event_type": AUTHENTICATE,
        "generated": "2024-05-01T10:15:00",
        "traits": [
            ["project_id", 1, "project-b"],
            ["user_id", 1, "user-b"],
            ["outcome", 1, "Zo\u00eb \u2603 success"],
        ],
        "raw": {"payload": {"typeURI": "http://schemas.dmtf.org/cloud/audit/1.0/event"}},
    },
    {
        "message_id": mid(6),
        "event_type": CREATE_END,
        "generated": "2024-05-01T10:20:00",
        "traits": [
            *_owner(MEMBER_A),
            ["state", 1, "active"],
            ["memory_mb", 2, 1024],
            ["load", 3, 0.5],
            ["launched_at", 4, "2024-05-01T10:19:00"],
        ],
        "raw": {"payload": {"instance_id": "i-6"}},
    },
]

BY_ID = {e["message_id"]: e for e in EVENTS}


def render_value(dtype: int, value: Any) -> str:
    if dtype == 3:
        return repr(float(value))
    return str(value)


def render_trait(name: str, dtype: int, value: Any) -> dict[str, str]:
    return {"name": name, "value": render_value(dtype, value), "type": TYPE_NAMES[dtype]}


def expected(doc: dict[str, Any]) -> dict[str, Any]:
    """The API's JSON for one posted document: traits ordered by name."""
    traits = sorted(
        (render_trait(*t) for t in doc["traits"]),
        key=lambda t: (t["name"], ["string", "integer", "float", "datetime"].index(t["type"])),
    )
    return {
        "message_id": doc["message_id"],
        "event_type": doc["event_type"],
        "traits": traits,
        "generated": doc["generated"],
        "raw": doc["raw"],
    }


def expected_ids(*numbers: int) -> list[str]:
    return [mid(n) for n in numbers]


def assert_same_event(got: dict[str, Any], doc: dict[str, Any]) -> None:
    """``got`` (an event from the API) equals the posted document. Traits come ordered by
    name; two traits sharing a name (different types) may come in either order, so they are
    compared as a multiset."""
    want = expected(doc)
    assert list(got) == ["message_id", "event_type", "traits", "generated", "raw"]
    assert [t["name"] for t in got["traits"]] == [t["name"] for t in want["traits"]]
    assert sorted(got["traits"], key=json.dumps) == sorted(want["traits"], key=json.dumps)
    assert {k: v for k, v in got.items() if k != "traits"} == {
        k: v for k, v in want.items() if k != "traits"
    }
