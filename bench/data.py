"""A deterministic data set shaped like OpenStack notifications (Ceilometer publisher format).

Every event is one line of JSON in the ``POST /v2/events`` format. The same seed and size give
the same bytes. Alongside the events, :class:`DataPlan` records the request parameters the
query lines rotate through (instance ids, member identities, days, event ids), picked from
the generated data so that every query finds something, on Annals and Panko alike.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

#: The first instant of the data set; events are spread over ``DAYS`` days from here.
EPOCH = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
DAYS = 30
PROJECTS = 50
USERS_PER_PROJECT = 10
HOSTS = 40
#: Size of the raw payload, in bytes of JSON, that every event carries (about).
RAW_BYTES = 1000
#: How many distinct values each rotating query parameter gets.
SAMPLES = 40

#: (event type, weight, service) of the notifications in the mix.
EVENT_TYPES: tuple[tuple[str, int, str], ...] = (
    ("compute.instance.create.start", 18, "compute"),
    ("compute.instance.create.end", 18, "compute"),
    ("compute.instance.delete.end", 12, "compute"),
    ("volume.create.end", 16, "volume"),
    ("network.create.end", 10, "network"),
    ("identity.authenticate", 26, "identity"),
)
STATES = {
    "compute.instance.create.start": "building",
    "compute.instance.create.end": "active",
    "compute.instance.delete.end": "deleted",
    "volume.create.end": "available",
    "network.create.end": "ACTIVE",
    "identity.authenticate": "success",
}
FLAVORS = (  # (memory_mb, vcpus, disk_gb)
    (512, 1, 10),
    (1024, 1, 20),
    (2048, 2, 40),
    (4096, 2, 40),
    (8192, 4, 80),
    (16384, 8, 160),
    (32768, 16, 320),
)
#: The integer-range line asks for ``memory_mb >= MEMORY_THRESHOLD`` (the two largest flavors).
MEMORY_THRESHOLD = 16384
STRING_TRAIT, INTEGER_TRAIT, DATETIME_TRAIT = 1, 2, 4


@dataclass
class DataPlan:
    """What the query lines need to know about the data set."""

    events: int
    seed: int
    sha256: str = ""
    first: str = ""
    last: str = ""
    #: instance ids that have events (string trait filter)
    instance_ids: list[str] = field(default_factory=list)
    #: [project_id, user_id] pairs that have events (member-scoped list)
    members: list[list[str]] = field(default_factory=list)
    #: [message_id, project_id] of events (get by id, as an admin of that project)
    events_by_id: list[list[str]] = field(default_factory=list)
    #: the project an admin lists without all_tenants
    admin_project: str = ""
    #: message_id of the last event of page 9 (default sort, default page size 100)
    page10_marker: str = ""
    #: message_id of the first event of page 10
    page10_first: str = ""
    #: message_id of the event 90% of the way through the data set (default sort): the
    #: page after it is deep in the store (keyset pagination must not read what precedes)
    deep_marker: str = ""
    projects: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DataPlan:
        return cls(**doc)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _iso(when: dt.datetime) -> str:
    return when.replace(tzinfo=None).isoformat(timespec="microseconds")


class Generator:
    """Yields the events of one data set, in time order, and fills its plan."""

    def __init__(self, events: int, seed: int = 42) -> None:
        self.count = events
        self.seed = seed
        rng = random.Random(seed)
        self.projects = [_uuid(rng).hex for _ in range(PROJECTS)]
        self.users = {p: [_uuid(rng).hex for _ in range(USERS_PER_PROJECT)] for p in self.projects}
        self.hosts = [f"compute-{i:03d}.dc1.example.net" for i in range(HOSTS)]
        # About four events per instance (create.start, create.end, delete.end and others).
        self.instances = [
            (str(_uuid(rng)), rng.choice(self.projects), rng.choice(FLAVORS))
            for _ in range(max(1, events // 10))
        ]
        self.rng = rng

    def events(self, plan: DataPlan | None = None) -> Iterator[dict[str, Any]]:
        rng = random.Random(self.seed * 7919 + 1)
        span = DAYS * 86_400 * 1_000_000
        offsets = sorted(rng.randrange(span) for _ in range(self.count))
        for i in range(1, len(offsets)):  # unique timestamps: no ties to order
            if offsets[i] <= offsets[i - 1]:
                offsets[i] = offsets[i - 1] + 1
        types = [name for name, _, _ in EVENT_TYPES]
        weights = [w for _, w, _ in EVENT_TYPES]
        services = {name: svc for name, _, svc in EVENT_TYPES}
        picks: dict[str, list[Any]] = {"instance": [], "member": [], "byid": []}
        # Every k-th event of a kind feeds the plan, so samples spread over the whole range.
        stride = max(1, self.count // (SAMPLES * 2))
        previous: tuple[int, str] | None = None
        want_instance = False
        # The last event of page 9 (pages of 100); a later page of a tiny data set.
        page10_marker = min(899, max(0, self.count - 2))
        deep_marker = min(self.count * 9 // 10, max(0, self.count - 2))
        for index, offset in enumerate(offsets):
            event_type = rng.choices(types, weights)[0]
            generated = EPOCH + dt.timedelta(microseconds=offset)
            stamp = _iso(generated)
            message_id = str(_uuid(rng))
            host = rng.choice(self.hosts)
            if event_type.startswith("compute."):
                instance_id, project, (memory, vcpus, disk) = rng.choice(self.instances)
            else:
                instance_id, project = "", rng.choice(self.projects)
                memory, vcpus, disk = 0, 0, rng.choice((10, 20, 50, 100, 500))
            user = rng.choice(self.users[project])
            traits: list[list[Any]] = [
                ["tenant_id", STRING_TRAIT, project],
                ["project_id", STRING_TRAIT, project],
                ["user_id", STRING_TRAIT, user],
                ["host", STRING_TRAIT, host],
                ["service", STRING_TRAIT, services[event_type]],
                ["state", STRING_TRAIT, STATES[event_type]],
            ]
            launched = generated - dt.timedelta(seconds=rng.randrange(1, 600))
            if instance_id:
                traits += [
                    ["instance_id", STRING_TRAIT, instance_id],
                    ["memory_mb", INTEGER_TRAIT, memory],
                    ["disk_gb", INTEGER_TRAIT, disk],
                    ["vcpus", INTEGER_TRAIT, vcpus],
                    ["launched_at", DATETIME_TRAIT, _iso(launched)],
                ]
            elif event_type == "volume.create.end":
                traits.append(["disk_gb", INTEGER_TRAIT, disk])
            doc = {
                "message_id": message_id,
                "event_type": event_type,
                "generated": stamp,
                "traits": traits,
                "raw": self._raw(
                    rng,
                    event_type=event_type,
                    message_id=message_id,
                    generated=generated,
                    traits=traits,
                    host=host,
                ),
            }
            if plan is not None:
                if index % stride == 0:
                    want_instance = True
                    if (index // stride) % 2:
                        picks["member"].append([project, user])
                    else:
                        picks["byid"].append([message_id, project])
                if want_instance and instance_id:
                    picks["instance"].append(instance_id)
                    want_instance = False
                key = (offset, message_id)
                if previous is not None and key < previous:
                    raise AssertionError("events must come out in (generated, message_id) order")
                previous = key
                if index == page10_marker:
                    plan.page10_marker = message_id
                elif index == page10_marker + 1:
                    plan.page10_first = message_id
                if index == deep_marker:
                    plan.deep_marker = message_id
                if index == 0:
                    plan.first = stamp
                plan.last = stamp
            yield doc
        if plan is not None:
            plan.instance_ids = list(dict.fromkeys(picks["instance"]))[:SAMPLES]
            plan.members = picks["member"][:SAMPLES]
            plan.events_by_id = picks["byid"][:SAMPLES]
            plan.admin_project = self.projects[0]
            plan.projects = list(self.projects)

    @staticmethod
    def _raw(
        rng: random.Random,
        *,
        event_type: str,
        message_id: str,
        generated: dt.datetime,
        traits: list[list[Any]],
        host: str,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {name: value for name, _, value in traits}
        payload.update(
            display_name=f"server-{rng.randrange(10**6):06d}",
            image_ref_url=f"http://glance.example.net:9292/images/{_uuid(rng)}",
            availability_zone="nova",
            metadata={"role": rng.choice(("web", "db", "batch", "cache"))},
        )
        raw: dict[str, Any] = {
            "message_id": message_id,
            "event_type": event_type,
            "priority": "INFO",
            "publisher_id": f"{event_type.split('.', maxsplit=1)[0]}.{host}",
            "timestamp": _iso(generated),
            "_context_request_id": f"req-{_uuid(rng)}",
            "payload": payload,
        }
        size = len(orjson.dumps(raw))
        if size < RAW_BYTES:
            pad = RAW_BYTES - size - len('"_notes":"",')
            raw["_notes"] = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=max(0, pad)))
        return raw


def paths(directory: Path, events: int, seed: int) -> tuple[Path, Path]:
    stem = directory / f"events-{events}-s{seed}"
    return stem.with_suffix(".jsonl"), stem.with_suffix(".plan.json")


def ensure_dataset(
    directory: Path, events: int, seed: int = 42, log: Any = print
) -> tuple[Path, DataPlan]:
    """The JSON-lines file and plan of a data set, generated once and cached."""
    data_file, plan_file = paths(directory, events, seed)
    if data_file.exists() and plan_file.exists():
        plan = DataPlan.from_json(json.loads(plan_file.read_text()))
        if plan.deep_marker:  # (plans written before it existed are made again)
            return data_file, plan
    directory.mkdir(parents=True, exist_ok=True)
    log(f"generating {events:,} events (seed {seed}) into {data_file}")
    plan = DataPlan(events=events, seed=seed)
    digest = hashlib.sha256()
    tmp = data_file.with_suffix(".jsonl.tmp")
    with tmp.open("wb") as out:
        for doc in Generator(events, seed).events(plan):
            line = orjson.dumps(doc) + b"\n"
            digest.update(line)
            out.write(line)
    tmp.rename(data_file)
    plan.sha256 = digest.hexdigest()
    plan_file.write_text(json.dumps(plan.to_json(), indent=1) + "\n")
    return data_file, plan
