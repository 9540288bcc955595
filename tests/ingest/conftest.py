# mypy: disallow-untyped-calls=False
# (kombu ships py.typed but leaves most of its API unannotated)
"""Fixtures for the consumer tests: the real RabbitMQ of this machine, with names of their own.

``ANNALS_TEST_RABBIT_URL`` (default ``rabbit://guest:guest@127.0.0.1:5672/``) names the broker.
Every test gets its own exchanges and queues (a random prefix), deleted afterwards, so tests
never see each other's messages. An unreachable broker skips the test locally and fails it
under ``CI=true``, like the database backends.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from kombu.connection import Connection

from annals.ingest import definitions
from annals.ingest.consumer import Consumer
from annals.ingest.notifications import Converter
from annals.ingest.transport import Broker, Topology, parse_transport_url
from annals.storage.base import StorageDriver
from tests.conftest import IN_CI
from tests.ingest.helpers import DEFINITIONS_FILE, RABBIT_URL, Rabbit, wait_for


@pytest.fixture(scope="session")
def broker() -> Broker:
    parsed = parse_transport_url(RABBIT_URL)
    connection = parsed.connection()
    try:
        connection.connect()
    except Exception as exc:
        message = f"RabbitMQ unavailable at {parsed.display}: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: a missing broker is a failure, not a skip)")
        pytest.skip(message)
    finally:
        connection.release()
    return parsed


@pytest.fixture
def rabbit(broker: Broker) -> Iterator[Rabbit]:
    # Publishing like a service does: no publisher confirms (the consumer's connection has
    # them, for its dead letters), so thousands of notifications go out in a second or two.
    connection = Connection(broker.urls[0], ssl=broker.ssl)
    connection.connect()
    corner = Rabbit(broker, f"annals-test-{uuid.uuid4().hex[:8]}-", connection)
    try:
        yield corner
    finally:
        corner.cleanup()
        connection.release()


@pytest.fixture(scope="session")
def default_definitions() -> definitions.Definitions:
    return definitions.Definitions(definitions.load_definitions(DEFINITIONS_FILE), False)


class RunningConsumer:
    """A Consumer in a thread of the test process, stopped at the end of the test."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.consumer.run()
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.consumer.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the consumer did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def start_consumer(
    rabbit: Rabbit, default_definitions: definitions.Definitions
) -> Iterator[Callable[..., RunningConsumer]]:
    running: list[RunningConsumer] = []

    def start(
        driver: StorageDriver,
        *,
        batch_size: int = 50,
        batch_timeout: float = 0.2,
        converter: Converter | None = None,
        topology: Topology | None = None,
    ) -> RunningConsumer:
        consumer = Consumer(
            rabbit.broker,
            topology or rabbit.topology,
            converter or Converter(default_definitions),
            driver,
            batch_size=batch_size,
            batch_timeout=batch_timeout,
        )
        runner = RunningConsumer(consumer)
        running.append(runner)
        # Declared (queue bound) before the test publishes anything.
        alive = sum(r.thread.is_alive() for r in running)
        wait_for(lambda: _consumers(rabbit) >= alive, what="the consumer to start")
        return runner

    yield start
    for runner in running:
        if runner.thread.is_alive():
            runner.stop()


def _consumers(rabbit: Rabbit) -> int:
    try:
        return rabbit.queue_depth()[1]
    except Exception:  # the queue does not exist yet: the passive declare closed the channel
        return 0
