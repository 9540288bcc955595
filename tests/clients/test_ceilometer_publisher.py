"""Ceilometer's own HttpPublisher (``publish_events``) into ``annals serve``.

The publisher runs in a subprocess (ceilometer_publish.py) with the real Ceilometer
package: real Event/Trait models, loaded through the pipeline's stevedore namespace, and
authenticated the only way it can be, with HTTP Basic credentials in the URL, which
Annals checks against ``[api] publisher_credentials``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.conftest import PUBLISHER_PASSWORD, PUBLISHER_USER, require_installed
from tests.clients.events_data import assert_same_event
from tests.conftest import ADMIN, LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.db]

SCRIPT = Path(__file__).with_name("ceilometer_publish.py")

INSTANCE = {"project_id": "project-c", "user_id": "user-c"}


def spec(
    n: int,
    event_type: str,
    generated: str,
    traits: list[list[Any]],
    raw: dict[str, Any] | None = None,
) -> dict[str, Any]:
    owner = [["project_id", 1, INSTANCE["project_id"]], ["user_id", 1, INSTANCE["user_id"]]]
    return {
        "message_id": f"ceilo-{n:04d}-6f1c-4b8e-9d1e-0a5f3c2b1e7d",
        "event_type": event_type,
        "generated": generated,
        "traits": owner + traits,
        "raw": raw if raw is not None else {"event_type": event_type, "n": n},
    }


#: Published in one batch (the publisher's default), then once more (all duplicates).
BATCH = [
    spec(
        1,
        "compute.instance.create.end",
        "2024-06-01T08:00:00.123456",
        [
            ["instance_id", 1, "9f8e7d6c-0000-4000-8000-000000000001"],
            ["display_name", 1, "Zo\u00eb \u00c5ngstr\u00f6m \u2603"],
            ["state", 1, ""],
            ["memory_mb", 2, 2048],
            ["disk_gb", 2, -42],
            ["big", 2, 2**53 + 1],
            ["vcpu_load", 3, 0.1],
            ["tiny", 3, 1e-07],
            ["huge", 3, 1e20],
            ["whole", 3, 3.0],
            ["launched_at", 4, "2024-06-01T07:59:58.500000"],
            ["created_at", 4, "2024-06-01T07:59:00"],
        ],
        raw={"payload": {"nested": {"list": [1, 2.5, "x", None, True]}}, "priority": "INFO"},
    ),
    spec(
        2,
        "compute.instance.delete.start",
        "2024-06-01T08:00:01",
        [
            ["memory_mb", 2, 512],
            ["vcpu_load", 3, 20.5],
            ["deleted_at", 4, "2024-06-01T08:00:01.000001"],
        ],
    ),
    spec(
        3, "volume.create.end", "2024-06-01T08:00:02", [["size", 2, 10], ["size", 3, 10.5]], raw={}
    ),
]

#: Published one event per request (``batch=False``), twice.
SINGLE = [
    spec(
        10,
        "compute.instance.update",
        "2024-06-01T09:00:00",
        [
            ["state", 1, "active"],
            ["audit_period_beginning", 4, "2024-06-01T00:00:00"],
        ],
    ),
    spec(11, "compute.instance.update", "2024-06-01T09:00:00.500000", [["state", 1, "stopped"]]),
]

#: Each refused (wrong password, unknown user, no credentials): must never be stored.
REFUSED = [
    spec(20, "refused.wrong_password", "2024-06-01T10:00:00", [["x", 2, 1]]),
    spec(21, "refused.unknown_user", "2024-06-01T10:00:00", [["x", 2, 1]]),
    spec(22, "refused.anonymous", "2024-06-01T10:00:00", [["x", 2, 1]]),
]


def publish(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    require_installed("ceilometer")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        input=json.dumps({"steps": steps}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: list[dict[str, Any]] = json.loads(proc.stdout)["steps"]
    return result


def stored(url: str) -> list[dict[str, Any]]:
    resp = httpx.get(
        f"{url}/v2/events",
        headers=ADMIN,
        timeout=30,
        params={"q.field": "all_tenants", "q.value": "True", "limit": "1000"},
    )
    assert resp.status_code == 200, resp.text
    events: list[dict[str, Any]] = resp.json()
    return events


def test_ceilometer_http_publisher(annals_server: LiveServer) -> None:
    port = annals_server.url.rsplit(":", 1)[1]
    good = f"http://{PUBLISHER_USER}:{PUBLISHER_PASSWORD}@127.0.0.1:{port}/v2/events"
    steps = [
        {"url": good, "events": BATCH},
        {"url": good + "?batch=True&timeout=10", "events": BATCH},
        {"url": good + "?batch=False&timeout=10&max_retries=0", "events": SINGLE},
        {"url": good + "?batch=False&timeout=10&max_retries=0", "events": SINGLE},
        {"url": f"http://{PUBLISHER_USER}:wrong@127.0.0.1:{port}/v2/events", "events": REFUSED[:1]},
        {
            "url": f"http://nobody:{PUBLISHER_PASSWORD}@127.0.0.1:{port}/v2/events",
            "events": REFUSED[1:2],
        },
        {"url": f"http://127.0.0.1:{port}/v2/events", "events": REFUSED[2:]},
    ]
    results = publish(steps)

    target = f"http://127.0.0.1:{port}/v2/events"
    assert [r["target"] for r in results] == [target] * len(steps)  # credentials, options off
    assert [r["batch"] for r in results] == [True, True, False, False, True, True, True]
    for accepted in results[:4]:  # 201, duplicates included: nothing for the publisher to log
        assert accepted["logged"] == []
    for refused, code in zip(results[4:], (401, 401, 403), strict=True):
        assert len(refused["logged"]) == 1, refused
        level, message = refused["logged"][0]
        assert level == "ERROR"
        assert message.startswith(f"Status Code: {code}. Failed to dispatch message")

    # every event exactly once, with every trait's name, type and value
    events = stored(annals_server.url)
    published = BATCH + SINGLE
    assert sorted(e["message_id"] for e in events) == sorted(d["message_id"] for d in published)
    by_id = {e["message_id"]: e for e in events}
    for doc in published:
        assert_same_event(by_id[doc["message_id"]], doc)

    # the typed catalogue and values agree
    url = annals_server.url
    descriptions = httpx.get(
        f"{url}/v2/event_types/compute.instance.create.end/traits", headers=ADMIN
    ).json()
    assert descriptions == [
        {"type": "string", "name": n}
        for n in ("display_name", "instance_id", "project_id", "state", "user_id")
    ] + [{"type": "integer", "name": n} for n in ("big", "disk_gb", "memory_mb")] + [
        {"type": "float", "name": n} for n in ("huge", "tiny", "vcpu_load", "whole")
    ] + [{"type": "datetime", "name": n} for n in ("created_at", "launched_at")]
    assert httpx.get(
        f"{url}/v2/event_types/volume.create.end/traits/size", headers=ADMIN
    ).json() == [
        {"name": "size", "value": "10", "type": "integer"},
        {"name": "size", "value": "10.5", "type": "float"},
    ]
    assert httpx.get(
        f"{url}/v2/event_types/compute.instance.update/traits/state", headers=ADMIN
    ).json() == [{"name": "state", "value": v, "type": "string"} for v in ("active", "stopped")]
    types = httpx.get(f"{url}/v2/event_types", headers=ADMIN).json()
    assert types == sorted({d["event_type"] for d in published})
