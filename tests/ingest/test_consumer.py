# mypy: disallow-untyped-calls=False
# (kombu ships py.typed but leaves most of its API unannotated)
"""The consumer against the real RabbitMQ and every database engine.

Real-shaped notifications go through the services' exchanges in both wire forms; what the
store then holds is compared trait by trait, and also read back through the API.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest

from annals.errors import StorageError, StorageUnavailable
from annals.ingest.notifications import Converter
from annals.models import Event, RecordResult, Trait, TraitType, decode_raw
from annals.query import EventQuery, Scope, ScopeKind
from annals.storage.base import StorageDriver
from tests.conftest import ADMIN
from tests.ingest import samples
from tests.ingest.conftest import RunningConsumer
from tests.ingest.helpers import Rabbit, wait_for

pytestmark = pytest.mark.db

StartConsumer = Callable[..., RunningConsumer]


def stored(driver: StorageDriver) -> dict[str, Event]:
    events = driver.get_events(EventQuery(scope=Scope(ScopeKind.ALL), limit=100_000))
    return {e.message_id: e for e in events}


def traits_of(event: Event) -> dict[str, tuple[TraitType, Any]]:
    return {t.name: (t.type, t.value) for t in event.traits}


def S(value: str) -> tuple[TraitType, Any]:
    return (TraitType.STRING, value)


def test_notifications_become_events(
    driver: StorageDriver,
    rabbit: Rabbit,
    start_consumer: StartConsumer,
    make_client: Callable[..., httpx.Client],
) -> None:
    runner = start_consumer(driver)
    create = samples.instance_create_end()
    delete = samples.instance_delete_end()
    volume = samples.volume_create_end()
    port = samples.port_create_end()
    auth = samples.identity_authenticate()
    # The usual v2 envelope, and the unwrapped form of the old "messaging" driver.
    rabbit.publish("nova", [samples.envelope(create), delete])
    rabbit.publish("cinder", [samples.envelope(volume)])
    rabbit.publish("neutron", [port])
    rabbit.publish("keystone", [samples.envelope(auth)], priority="info")
    rabbit.publish("nova", ["{not json"], raw=True)
    rabbit.publish("nova", [{"oslo.version": "2.0", "oslo.message": "[1, 2]"}])
    wait_for(lambda: len(stored(driver)) == 5, what="5 events")
    wait_for(lambda: runner.consumer.stats.dead_lettered == 2, what="2 dead letters")
    events = stored(driver)

    got = traits_of(events[create["message_id"]])
    assert events[create["message_id"]].event_type == "compute.instance.create.end"
    assert events[create["message_id"]].generated == dt.datetime(2026, 11, 24, 10, 0, 0, 123456)
    assert events[create["message_id"]].raw == {}
    assert got == {
        "service": S("compute"),
        "host": S("compute-3.example.org"),
        "request_id": S(samples.REQUEST),
        "project_id": S(samples.PROJECT),
        "tenant_id": S(samples.PROJECT),
        "user_id": S(samples.USER),
        "resource_id": S(samples.INSTANCE),
        "instance_id": S(samples.INSTANCE),
        "display_name": S("web-01"),
        "state": S("active"),
        "state_description": S(""),
        "instance_type": S("m1.small"),
        "instance_type_id": S("5"),
        "instance_flavor_id": S("2"),
        "memory_mb": (TraitType.INTEGER, 2048),
        "disk_gb": (TraitType.INTEGER, 20),
        "root_gb": (TraitType.INTEGER, 20),
        "ephemeral_gb": (TraitType.INTEGER, 0),
        "vcpus": (TraitType.INTEGER, 1),
        "node": S("compute-3.example.org"),
        "availability_zone": S("nova"),
        "cell_name": S(""),
        "image_id": S(samples.IMAGE),
        "architecture": S("x86_64"),
        "reservation_id": S("r-3kd9x0aa"),
        "created_at": (TraitType.DATETIME, dt.datetime(2026, 11, 24, 9, 59, 40)),
        "launched_at": (TraitType.DATETIME, dt.datetime(2026, 11, 24, 9, 59, 58)),
    }  # deleted_at/terminated_at are '' (no trait), os_type is null (no trait)

    got = traits_of(events[delete["message_id"]])
    assert got["state"] == S("deleted")
    assert got["deleted_at"] == (TraitType.DATETIME, dt.datetime(2026, 11, 24, 18, 30, 1))
    assert got["terminated_at"] == (
        TraitType.DATETIME,
        dt.datetime(2026, 11, 24, 18, 30, 0, 500000),
    )
    assert events[delete["message_id"]].generated == dt.datetime(2026, 11, 24, 18, 30, 1, 250000)

    got = traits_of(events[volume["message_id"]])
    assert got == {
        "service": S("volume"),
        "host": S("block1@lvm#LVM"),
        "request_id": S(samples.REQUEST),
        "project_id": S(samples.PROJECT),
        "tenant_id": S(samples.PROJECT),
        "user_id": S(samples.USER),
        "resource_id": S(samples.VOLUME),
        "volume_id": S(samples.VOLUME),
        "display_name": S("data-01"),
        "size": (TraitType.INTEGER, 10),
        "status": S("available"),
        "volume_type": S("8a1b2c3d-0000-4000-8000-00000000aaaa"),
        "availability_zone": S("nova"),
        "image_id": S(samples.IMAGE),
        "created_at": (TraitType.DATETIME, dt.datetime(2026, 11, 24, 10, 5)),
        "launched_at": (TraitType.DATETIME, dt.datetime(2026, 11, 24, 10, 5, 3)),
    }

    got = traits_of(events[port["message_id"]])
    assert got["resource_id"] == S(samples.PORT)
    assert got["project_id"] == S(samples.OTHER_PROJECT)  # the port's owner, not the admin
    assert got["user_id"] == S("admin-user")
    assert got["fixed_ip"] == S("10.0.0.5")
    assert got["binding_host_id"] == S("compute-3")
    assert got["admin_state_up"] == S("True")  # Python str(), as Ceilometer
    assert got["service"] == S("network.controller-1")

    got = traits_of(events[auth["message_id"]])
    assert got["action"] == S("authenticate")
    assert got["outcome"] == S("success")
    assert got["user_id"] == S(samples.USER)
    assert got["initiator_host_address"] == S("192.0.2.10")
    assert got["event_time"] == (TraitType.DATETIME, dt.datetime(2026, 11, 24, 10, 0, 30, 123456))
    assert "project_id" not in got

    # Through the API, as pankoclient would ask.
    client = make_client()
    response = client.get(
        "/v2/events",
        headers=ADMIN,
        params=[
            ("q.field", "all_tenants"),
            ("q.value", "True"),
            ("q.field", "resource_id"),
            ("q.value", samples.INSTANCE),
        ],
    )
    assert response.status_code == 200, response.text
    by_type = {e["event_type"]: e for e in response.json()}
    assert set(by_type) == {"compute.instance.create.end", "compute.instance.delete.end"}
    api_traits = {
        t["name"]: (t["type"], t["value"]) for t in by_type["compute.instance.create.end"]["traits"]
    }
    assert api_traits["memory_mb"] == ("integer", "2048")  # Panko renders values as text
    assert api_traits["launched_at"] == ("datetime", "2026-11-24T09:59:58")
    assert api_traits["project_id"] == ("string", samples.PROJECT)
    response = client.get("/v2/event_types/port.create.end/traits/fixed_ip", headers=ADMIN)
    assert [t["value"] for t in response.json()] == ["10.0.0.5"]

    # The malformed messages were dead-lettered with the reason, and nothing is left behind.
    runner.stop()
    letters = rabbit.get_dead_letters()
    assert sorted(m.headers["x-annals-error"][:20] for m in letters) == [
        "a notification must ",
        "not valid JSON: Expe",
    ]
    assert {m.headers["x-annals-exchange"] for m in letters} == {rabbit.exchange("nova")}
    assert rabbit.queue_depth()[0] == 0


def test_duplicates_and_other_priorities(
    driver: StorageDriver, rabbit: Rabbit, start_consumer: StartConsumer
) -> None:
    runner = start_consumer(driver, batch_size=3)
    create = samples.instance_create_end()
    error = samples.oslo_message(
        "compute.instance.create.error",
        samples.nova_instance_payload(state="error", message="No valid host", code=500),
        "compute.compute-3",
        priority="ERROR",
    )
    # The same message_id twice (a redelivery, or two topics), and a WARN notification sent
    # on the info key (priority comes from the body): only info and error become events.
    warn = samples.oslo_message("compute.instance.create.end", {}, "compute.x", priority="WARN")
    rabbit.publish("nova", [samples.envelope(create), samples.envelope(create), warn])
    rabbit.publish("nova", [samples.envelope(error)], priority="error")
    wait_for(lambda: runner.consumer.stats.received == 4, what="4 deliveries")
    wait_for(
        lambda: rabbit.queue_depth()[0] == 0 and len(stored(driver)) == 2, what="the queue to drain"
    )
    runner.stop()
    stats = runner.consumer.stats
    assert (stats.stored, stats.duplicates, stats.dropped, stats.dead_lettered) == (2, 1, 1, 0)
    events = stored(driver)
    got = traits_of(events[error["message_id"]])
    assert got["fault"] == S("No valid host")
    assert got["code"] == (TraitType.INTEGER, 500)
    # A second consumer run sees the same message again: still one event.
    runner = start_consumer(driver)
    rabbit.publish("nova", [samples.envelope(create)])
    wait_for(lambda: runner.consumer.stats.duplicates == 1, what="the duplicate")
    assert len(stored(driver)) == 2


@pytest.mark.backends("sqlite")
def test_store_raw_and_unmatched(
    driver: StorageDriver, rabbit: Rabbit, start_consumer: StartConsumer, default_definitions: Any
) -> None:
    runner = start_consumer(driver, converter=Converter(default_definitions, ["INFO"]))
    unmatched = samples.oslo_message(
        "something.else.happened", {"tenant_id": "p1", "x": 1}, "other.host-1"
    )
    create = samples.instance_create_end()
    rabbit.publish("heat", [samples.envelope(unmatched), samples.envelope(create)])
    wait_for(lambda: len(stored(driver)) == 2, what="2 events")
    runner.stop()
    events = stored(driver)
    assert traits_of(events[unmatched["message_id"]]) == {
        "service": S("other.host-1"),
        "request_id": S(samples.REQUEST),
        "project_id": S("p1"),
        "tenant_id": S("p1"),
        "user_id": S(samples.USER),
    }
    raw = decode_raw(events[create["message_id"]].raw)  # stored: JSON text
    assert set(raw) == {"ctxt", "publisher_id", "event_type", "payload", "metadata"}
    assert raw["metadata"] == {
        "message_id": create["message_id"],
        "timestamp": "2026-11-24 10:00:00.123456",
    }
    assert "auth_token" not in raw["ctxt"]  # credentials never reach the store
    assert raw["ctxt"]["request_id"] == samples.REQUEST
    assert raw["payload"]["instance_id"] == samples.INSTANCE


@pytest.mark.backends("sqlite")
def test_exchanges_are_created_and_shared_queue(
    driver: StorageDriver, rabbit: Rabbit, start_consumer: StartConsumer
) -> None:
    """No exchange exists before the consumer starts; two consumers share one queue."""
    first = start_consumer(driver, batch_size=5)
    second = start_consumer(driver, batch_size=5)
    assert rabbit.queue_depth()[1] == 2
    messages = [samples.instance_create_end() for _ in range(200)]
    # The exchanges were declared by the consumer: publishing to them without declaring works.
    channel = rabbit.connection.channel()
    channel.exchange_declare(exchange=rabbit.exchange("glance"), type="topic", passive=True)
    channel.close()
    rabbit.publish("glance", [samples.envelope(m) for m in messages])
    wait_for(lambda: len(stored(driver)) == 200, what="200 events")
    first.stop()
    second.stop()
    assert first.consumer.stats.stored > 0 and second.consumer.stats.stored > 0
    assert first.consumer.stats.stored + second.consumer.stats.stored == 200


class FlakyWrites:
    """record_events of a real driver, unavailable for the first calls, refusing a poison."""

    def __init__(self, driver: StorageDriver, outages: int, poison: str) -> None:
        self.real = driver.record_events
        self.outages, self.poison, self.calls = outages, poison, 0

    def __call__(self, events: Sequence[Event]) -> RecordResult:
        self.calls += 1
        if self.outages > 0:
            self.outages -= 1
            raise StorageUnavailable("database is restarting")
        if any(e.message_id == self.poison for e in events):
            raise StorageError("value too long for type character varying(255)")
        return self.real(events)


@pytest.mark.backends("sqlite")
def test_outage_holds_messages_and_poison_is_isolated(
    driver: StorageDriver,
    rabbit: Rabbit,
    start_consumer: StartConsumer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages = [samples.instance_create_end() for _ in range(30)]
    poison = messages[7]["message_id"]
    flaky = FlakyWrites(driver, outages=2, poison=poison)
    monkeypatch.setattr(driver, "record_events", flaky)
    runner = start_consumer(driver, batch_size=10)
    rabbit.publish("nova", [samples.envelope(m) for m in messages])
    # Two failed attempts (1 s, then 2 s of back-off) while nothing is acknowledged.
    wait_for(lambda: flaky.calls >= 1, what="a first write")
    assert stored(driver) == {}
    wait_for(lambda: len(stored(driver)) == 29, timeout=20, what="29 events")
    wait_for(lambda: runner.consumer.stats.dead_lettered == 1, what="the poison dead letter")
    runner.stop()
    assert poison not in stored(driver)
    letters = rabbit.get_dead_letters()
    assert len(letters) == 1
    assert json.loads(json.loads(letters[0].body)["oslo.message"])["message_id"] == poison
    assert "value too long" in letters[0].headers["x-annals-error"]
    assert rabbit.queue_depth()[0] == 0


def test_trait_that_does_not_convert_is_dropped(
    driver: StorageDriver, rabbit: Rabbit, start_consumer: StartConsumer
) -> None:
    """Ceilometer lost the whole notification; Annals drops the one trait (and logs it)."""
    runner = start_consumer(driver)
    bad = samples.oslo_message(
        "compute.instance.create.end",
        samples.nova_instance_payload(
            memory_mb="a lot", launched_at="yesterday", display_name="nul\x00byte", vcpus=2**70
        ),
        "compute.compute-3",
    )
    rabbit.publish("nova", [samples.envelope(bad)])
    wait_for(lambda: len(stored(driver)) == 1, what="the event")
    runner.stop()
    got = traits_of(stored(driver)[bad["message_id"]])
    for dropped in ("memory_mb", "launched_at", "display_name", "vcpus"):
        assert dropped not in got
    assert got["disk_gb"] == (TraitType.INTEGER, 20)
    assert (
        Trait("instance_id", TraitType.STRING, samples.INSTANCE)
        in stored(driver)[bad["message_id"]].traits
    )


def close_consumer_connections() -> int:
    """Close this process's consumer connections on the broker, as a broker restart would."""
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "-q", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    name = f"annals-consume pid {os.getpid()}"
    pids = [line.split("\t")[0] for line in listing.splitlines() if name in line]
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "close_connection", pid, "test: broker went away"],
            capture_output=True,
            check=True,
            timeout=30,
        )
    return len(pids)


@pytest.mark.backends("sqlite")
def test_consumer_reconnects_when_the_broker_drops_it(
    driver: StorageDriver, rabbit: Rabbit, start_consumer: StartConsumer
) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is needed to close the consumer's connection")
    runner = start_consumer(driver, batch_size=20)
    messages = [samples.volume_create_end() for _ in range(300)]
    rabbit.publish("cinder", [samples.envelope(m) for m in messages[:150]])
    wait_for(lambda: len(stored(driver)) > 0, what="the first events")
    assert close_consumer_connections() >= 1
    rabbit.publish("cinder", [samples.envelope(m) for m in messages[150:]])
    wait_for(lambda: len(stored(driver)) == 300, what="every event after the reconnection")
    wait_for(lambda: rabbit.queue_depth() == (0, 1), what="an empty queue, one consumer")
    runner.stop()
    assert set(stored(driver)) == {m["message_id"] for m in messages}


@pytest.mark.backends("sqlite")
def test_database_refusing_every_write_holds_everything(
    driver: StorageDriver,
    rabbit: Rabbit,
    start_consumer: StartConsumer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full disk refuses every event: that is not the events' fault, none is dead-lettered."""
    real = driver.record_events
    refusing = [True]
    calls = [0]

    def record(events: Sequence[Event]) -> RecordResult:
        calls[0] += 1
        if refusing[0]:
            raise StorageError("Database refused the write: could not extend file: No space")
        return real(events)

    monkeypatch.setattr(driver, "record_events", record)
    runner = start_consumer(driver, batch_size=10)  # a prefetch of 20: room for the later ones
    messages = [samples.instance_create_end() for _ in range(12)]
    rabbit.publish("nova", [samples.envelope(m) for m in messages])
    wait_for(lambda: calls[0] >= 12, what="the writes to be tried event by event")
    # More notifications arrive while the consumer waits to retry: once the disk has space,
    # they are written first, and the held ones, refused for the disk's sake rather than
    # their own, must then be stored too, not dead-lettered.
    later = [samples.instance_create_end() for _ in range(3)]
    rabbit.publish("nova", [samples.envelope(m) for m in later])
    wait_for(lambda: runner.consumer.stats.received == 15, what="the later notifications")
    assert runner.consumer.stats.dead_lettered == 0
    assert stored(driver) == {}
    refusing[0] = False
    wait_for(lambda: len(stored(driver)) == 15, timeout=40, what="every event once writable")
    runner.stop()
    assert runner.consumer.stats.dead_lettered == 0
    assert rabbit.get_dead_letters() == []
    assert rabbit.queue_depth()[0] == 0
