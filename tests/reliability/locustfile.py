"""The load of tests/reliability/load.py: writers posting batches, readers running the
benchmark's query set, against one ``annals serve``.

Run by ``python -m tests.reliability.load`` (which seeds the database, starts the server and
reads the results), not by hand. The plan (ids, projects, days) comes from the JSON file
named by ``ANNALS_LOAD_PLAN``; what the writers sent and what was acknowledged goes to the
file named by ``ANNALS_LOAD_REPORT`` when the run stops.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from locust import FastHttpUser, constant, events, task
from locust.env import Environment

PLAN: dict[str, Any] = json.loads(Path(os.environ["ANNALS_LOAD_PLAN"]).read_text())
REPORT = Path(os.environ["ANNALS_LOAD_REPORT"])
BATCH_SIZE: int = PLAN["batch_size"]
#: Reads see every project: a system-scoped admin, as an operator's dashboard would be.
OPERATOR = {"X-User-Id": "operator", "X-Roles": "admin", "OpenStack-System-Scope": "all"}
WRITER = {"X-User-Id": "ceilometer", "X-Project-Id": "services", "X-Roles": "admin"}

_lock = threading.Lock()
acknowledged: list[str] = []  # message_ids of batches answered 201
unacknowledged: list[str] = []  # sent, but no 201 (maybe stored, maybe not)
duplicates_reported = 0
statuses: Counter[str] = Counter()  # "<kind> <status>"


def record(kind: str, status: int) -> None:
    with _lock:
        statuses[f"{kind} {status}"] += 1


def q(*filters: tuple[str, str, str, str]) -> list[tuple[str, str]]:
    """Query-string pairs of (field, op, type, value) filters, all_tenants first."""
    params = [("q.field", "all_tenants"), ("q.op", "eq"), ("q.type", "string"), ("q.value", "True")]
    for field, op, typ, value in filters:
        params += [("q.field", field), ("q.op", op), ("q.type", typ), ("q.value", value)]
    return params


class Writer(FastHttpUser):
    """Ceilometer's publisher: batches of BATCH_SIZE new events, one after the other."""

    fixed_count = int(os.environ.get("ANNALS_LOAD_WRITERS", "4"))
    wait_time = constant(0)
    _ids = iter(range(1 << 62))

    def on_start(self) -> None:
        self.name = f"{PLAN['run']}-w{next(Writer._ids):02d}"
        self.sequence = 0
        self.rng = random.Random(self.name)

    def batch(self) -> tuple[list[str], list[dict[str, Any]]]:
        self.sequence += 1
        ids = [f"load-{self.name}-{self.sequence:07d}-{n:03d}" for n in range(BATCH_SIZE)]
        docs = []
        for message_id in ids:
            project = self.rng.choice(PLAN["projects"])
            docs.append(
                {
                    "message_id": message_id,
                    "event_type": self.rng.choice(PLAN["event_types"]),
                    "generated": f"{self.rng.choice(PLAN['days'])}T"
                    f"{self.rng.randrange(24):02d}:{self.rng.randrange(60):02d}:00",
                    "traits": [
                        ["project_id", 1, project],
                        ["user_id", 1, self.rng.choice(PLAN["users"][project])],
                        ["instance_id", 1, self.rng.choice(PLAN["instances"])],
                        ["memory_mb", 2, self.rng.choice(PLAN["memory"])],
                        ["host", 1, f"compute-{self.rng.randrange(40):02d}"],
                    ],
                    "raw": {"payload": {"load": True}},
                }
            )
        return ids, docs

    @task
    def post_batch(self) -> None:
        global duplicates_reported  # noqa: PLW0603 - one counter for every writer
        ids, docs = self.batch()
        with self.client.post(
            "/v2/events", json=docs, headers=WRITER, name="POST batch", catch_response=True
        ) as resp:
            record("POST batch", resp.status_code)
            if resp.status_code == 201:
                body = resp.json()
                with _lock:
                    acknowledged.extend(ids)
                    duplicates_reported += int(body["duplicates"])
                if body["stored"] != len(ids):
                    resp.failure(f"stored {body['stored']} of {len(ids)}")
            else:
                with _lock:
                    unacknowledged.extend(ids)
                resp.failure(f"status {resp.status_code}")


class Reader(FastHttpUser):
    """Dashboards and operators: the query set of the benchmark (bench/lines.py)."""

    fixed_count = int(os.environ.get("ANNALS_LOAD_READERS", "12"))
    wait_time = constant(0)

    def on_start(self) -> None:
        self.rng = random.Random()

    def get(
        self,
        kind: str,
        path: str,
        params: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        url = f"{path}?{urlencode(params)}" if params else path
        with self.client.get(
            url, headers=headers or OPERATOR, name=kind, catch_response=True
        ) as resp:
            record(kind, resp.status_code)
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
                return None
            return resp.json()

    @task(3)
    def default_list(self) -> None:
        self.get("list (default)", "/v2/events", q())

    @task(2)
    def event_type(self) -> None:
        kind = self.rng.choice(PLAN["event_types"])
        self.get("event_type eq", "/v2/events", q(("event_type", "eq", "string", kind)))

    @task(2)
    def string_trait(self) -> None:
        instance = self.rng.choice(PLAN["instances"])
        self.get("string trait eq", "/v2/events", q(("instance_id", "eq", "string", instance)))

    @task(2)
    def member_list(self) -> None:
        project = self.rng.choice(PLAN["projects"])
        user = self.rng.choice(PLAN["users"][project])
        member = {"X-User-Id": user, "X-Project-Id": project, "X-Roles": "member"}
        self.get("member-scoped list", "/v2/events", headers=member)

    @task(2)
    def integer_range(self) -> None:
        low = self.rng.choice(PLAN["memory"])
        self.get(
            "integer range",
            "/v2/events",
            q(
                ("memory_mb", "ge", "integer", str(low)),
                ("memory_mb", "lt", "integer", str(low * 2)),
            ),
        )

    @task(2)
    def day_window(self) -> None:
        day = self.rng.choice(PLAN["days"])
        self.get(
            "one-day window",
            "/v2/events",
            q(
                ("start_timestamp", "ge", "string", f"{day}T00:00:00"),
                ("end_timestamp", "le", "string", f"{day}T23:59:59"),
            ),
        )

    @task(2)
    def sort_desc(self) -> None:
        self.get("sort desc", "/v2/events", [*q(), ("sort", "generated:desc"), ("limit", "20")])

    @task(2)
    def marker_paging(self) -> None:
        page = self.get("page 1 (limit 10)", "/v2/events", [*q(), ("limit", "10")])
        if page:
            marker = page[-1]["message_id"]
            self.get("marker paging", "/v2/events", [*q(), ("limit", "10"), ("marker", marker)])

    @task(3)
    def get_by_id(self) -> None:
        message_id = self.rng.choice(PLAN["message_ids"])
        self.get("get by id", f"/v2/events/{quote(message_id)}")

    @task(1)
    def event_types(self) -> None:
        self.get("event_types", "/v2/event_types")

    @task(1)
    def traits(self) -> None:
        kind = self.rng.choice(PLAN["event_types"])
        self.get("traits", f"/v2/event_types/{quote(kind)}/traits")


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def write_report(environment: Environment, **_: Any) -> None:
    with _lock:
        REPORT.write_text(
            json.dumps(
                {
                    "acknowledged": acknowledged,
                    "unacknowledged": unacknowledged,
                    "duplicates_reported": duplicates_reported,
                    "statuses": dict(statuses),
                }
            )
        )
