# mypy: disallow-untyped-calls=False
# (kombu ships py.typed but leaves most of its API unannotated)
"""Test helpers for the consumer: a test's own corner of RabbitMQ, waiting, counting rows.

No API imports here, so tests/ingest/throughput.py can use them as a script.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from kombu.connection import Connection
from kombu.messaging import Producer

from annals.ingest.transport import Broker, Topology
from tests.conftest import wait_for

__all__ = ["wait_for"]  # shared by the ingest tests, from tests.conftest

RABBIT_URL = os.environ.get("ANNALS_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).parent.parent.parent
DEFINITIONS_FILE = ROOT / "etc" / "event_definitions.yaml"
SERVICES = ("nova", "cinder", "neutron", "glance", "keystone", "heat")


@dataclass
class Rabbit:
    """One test's corner of the broker: its exchanges, queue and dead-letter queue."""

    broker: Broker
    prefix: str
    connection: Connection
    extra_exchanges: list[str] = field(default_factory=list)

    def exchange(self, service: str) -> str:
        return f"{self.prefix}{service}"

    @property
    def topology(self) -> Topology:
        return Topology(
            exchanges=tuple(self.exchange(s) for s in SERVICES),
            topics=("notifications",),
            queue=f"{self.prefix}annals",
            durable_exchanges=False,
            dead_letter_exchange=f"{self.prefix}dlx",
            dead_letter_queue=f"{self.prefix}dlq",
        )

    def conf_sections(self) -> dict[str, dict[str, object]]:
        """The [DEFAULT]/[notification] options that point ``annals consume`` here."""
        t = self.topology
        return {
            "DEFAULT": {"transport_url": RABBIT_URL},
            "notification": {
                "notification_control_exchanges": ",".join(t.exchanges),
                "queue_name": t.queue,
                "dead_letter_exchange": t.dead_letter_exchange,
                "dead_letter_queue": t.dead_letter_queue,
            },
        }

    def publish(
        self, service: str, bodies: list[Any], priority: str = "info", raw: bool = False
    ) -> None:
        """Publish as oslo.messaging does: JSON, persistent, key ``notifications.<prio>``."""
        channel = self.connection.channel()
        try:
            self._declare_exchange(channel, self.exchange(service))
            producer = Producer(channel)
            for body in bodies:
                data = body if raw else json.dumps(body)
                producer.publish(
                    data,
                    exchange=self.exchange(service),
                    routing_key=f"notifications.{priority}",
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    retry=False,
                )
        finally:
            channel.close()

    @staticmethod
    def _declare_exchange(channel: Any, name: str) -> None:
        channel.exchange_declare(exchange=name, type="topic", durable=False, auto_delete=False)

    def queue_depth(self, queue: str | None = None) -> tuple[int, int]:
        """(ready, unacknowledged... as far as a passive declare tells: ready, consumers)."""
        channel = self.connection.channel()
        try:
            result = channel.queue_declare(queue=queue or self.topology.queue, passive=True)
            return int(result.message_count), int(result.consumer_count)
        finally:
            channel.close()

    def get_dead_letters(self) -> list[Any]:
        channel = self.connection.channel()
        messages = []
        try:
            while (
                message := channel.basic_get(self.topology.dead_letter_queue, no_ack=True)
            ) is not None:
                messages.append(message)
        finally:
            channel.close()
        return messages

    def declare(self) -> None:
        """Declare the consumer's topology (as a consumer's start would)."""
        channel = self.topology.declare(self.connection)
        channel.close()

    def cleanup(self) -> None:
        channel = self.connection.channel()
        t = self.topology
        for queue in (t.queue, t.dead_letter_queue):
            channel.queue_delete(queue=queue)
        for exchange in (*t.exchanges, t.dead_letter_exchange, *self.extra_exchanges):
            channel.exchange_delete(exchange=exchange)
        channel.close()


def count_events(url: str) -> tuple[int, int]:
    """(rows, distinct message_ids) in the event table of the database at ``url``."""
    from annals.storage.sql.driver import normalise_url

    engine = sa.create_engine(normalise_url(url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT count(*), count(DISTINCT message_id) FROM event")
            ).one()
    finally:
        engine.dispose()
    return int(rows[0]), int(rows[1])
