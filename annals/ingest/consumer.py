# mypy: disallow-untyped-calls=False
# (kombu ships py.typed but leaves most of its API unannotated)
"""The consumer loop: RabbitMQ -> events -> one transaction per batch -> acknowledgements.

Delivery is at least once:

* A notification is acknowledged only after its event is committed (or after it was found to
  need no event: a ``warn`` notification, an unmatched one with drop_unmatched_notifications).
  A crash or a lost connection before that leaves it in RabbitMQ, which delivers it again;
  the message_id makes the second write a no-op.
* While the database is unavailable nothing is acknowledged: the batch stays in hand, the
  prefetch limit stops the broker from sending more, and the write is retried with a growing
  delay (up to 30 s) until the database is back.
* A message that cannot be decoded or converted is dead-lettered at once (published to the
  dead-letter exchange with the reason in ``x-annals-error``, then acknowledged), so it never
  blocks the queue. A batch the database refuses (not "unavailable": refuses) is written
  event by event; an event the database refuses on its own while it accepts others is
  dead-lettered too. If it refuses everything, nothing is acknowledged and the writes wait.

One process, one connection, two channels (consuming, and publishing dead letters with
publisher confirms). Deliveries are only collected in the AMQP callback; all the work runs in
the loop, so waiting for a publisher confirm can never re-enter it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import amqp  # type: ignore[import-untyped]
import kombu.exceptions
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.message import Message
from kombu.messaging import Consumer as KombuConsumer
from kombu.messaging import Producer

from annals.errors import AnnalsError, StorageUnavailable
from annals.ingest.notifications import Converter, Rejected, decode
from annals.ingest.transport import Broker, Topology, close_quietly
from annals.models import Event
from annals.storage.base import StorageDriver

LOG = logging.getLogger(__name__)

#: Longest wait in one drain call: how quickly a stop request or a due batch is noticed.
POLL_INTERVAL = 1.0
MAX_BACKOFF = 30.0
STATS_INTERVAL = 60.0
#: Failures of the broker or the network (logged without a traceback).
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    amqp.exceptions.AMQPError,
    kombu.exceptions.KombuError,
)


class ConsumerError(AnnalsError):
    """The consumer cannot run with this configuration (bad credentials, queue mismatch)."""


class Backoff:
    """1, 2, 4 ... MAX_BACKOFF seconds."""

    def __init__(self, first: float = 1.0, limit: float = MAX_BACKOFF) -> None:
        self.first, self.limit, self.current = first, limit, 0.0

    def next(self) -> float:
        self.current = self.first if not self.current else min(self.current * 2, self.limit)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


@dataclass
class Stats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dropped: int = 0
    dead_lettered: int = 0

    def line(self) -> str:
        return (
            f"received {self.received}, stored {self.stored}, duplicates "
            f"{self.duplicates}, dropped {self.dropped}, dead-lettered {self.dead_lettered}"
        )


@dataclass
class Entry:
    message: Message
    event: Event
    refused: str = ""  # why the database refused this event when written alone


@dataclass
class _Session:
    """What one broker connection holds; delivery tags die with it."""

    connection: Connection
    consumer: KombuConsumer
    dead_letters: Any  # channel for dead-letter publishing, or None
    entries: list[Entry] = field(default_factory=list)


class Consumer:
    def __init__(
        self,
        broker: Broker,
        topology: Topology,
        converter: Converter,
        driver: StorageDriver,
        *,
        batch_size: int,
        batch_timeout: float,
    ) -> None:
        self.broker = broker
        self.topology = topology
        self.converter = converter
        self.driver = driver
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self.prefetch = 2 * batch_size
        self.stats = Stats()
        self._stopping = threading.Event()
        self._inbox: collections.deque[Message] = collections.deque()
        self._pending: list[Entry] = []  # converted, waiting for a batch write
        self._suspects: list[Entry] = []  # refused by the database when written alone
        self._batch_started: float | None = None
        self._retry_at = 0.0
        self._db_backoff = Backoff()
        self._attempt = 0
        self._connected_once = False

    def stop(self) -> None:
        """Ask the loop to finish: write what is in hand, acknowledge it, disconnect."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> Stats:
        """Consume until stop(); reconnect by itself whenever the broker goes away."""
        backoff = Backoff()
        last_stats = time.monotonic()
        while not self.stopping:
            try:
                self._run_session(backoff)
            except ConsumerError:
                raise
            except Exception as exc:  # any failure costs a reconnection, never the process
                self._forget_deliveries()
                delay = backoff.next()
                LOG.warning(
                    "RabbitMQ %s: %s: %s; reconnecting in %.0f s",
                    self.broker.display,
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=not isinstance(exc, BROKER_ERRORS),
                )
                self._attempt += 1
                self._stopping.wait(delay)
            if time.monotonic() - last_stats > STATS_INTERVAL:
                LOG.info("%s", self.stats.line())
                last_stats = time.monotonic()
        LOG.info("consumer stopped: %s", self.stats.line())
        return self.stats

    # --- one connection ---------------------------------------------------------------------

    def _run_session(self, backoff: Backoff) -> None:
        connection = self.broker.connection(self._attempt)
        session: _Session | None = None
        try:
            session = self._open(connection)
            backoff.reset()
            last_stats = time.monotonic()
            while not self.stopping:
                self._drain(session)
                self._process_inbox(session)
                self._maybe_flush(session, force=False)
                if time.monotonic() - last_stats > STATS_INTERVAL:
                    LOG.info("%s", self.stats.line())
                    last_stats = time.monotonic()
            self._process_inbox(session)
            self._maybe_flush(session, force=True)
        finally:
            if session is not None:
                close_quietly([session.consumer])
            close_quietly([connection])

    def _open(self, connection: Connection) -> _Session:
        try:
            connection.connect()
            channel = self.topology.declare(connection)
        except (
            amqp.exceptions.AccessRefused,
            amqp.exceptions.NotAllowed,
            amqp.exceptions.PreconditionFailed,
        ) as exc:
            if not self._connected_once:  # a configuration problem, not an outage
                raise ConsumerError(
                    f"RabbitMQ {self.broker.display} refused the set-up: {exc}"
                ) from exc
            raise
        dead_letters = connection.channel() if self.topology.dead_letter_exchange else None
        consumer = KombuConsumer(
            channel,
            queues=[Queue(self.topology.queue, no_declare=True)],
            on_message=self._inbox.append,
            on_decode_error=lambda message, _exc: self._inbox.append(message),
            prefetch_count=self.prefetch,
            auto_declare=False,
        )
        consumer.consume()
        self._connected_once = True
        LOG.info(
            "consuming %s on %s (batches of %d, %.2f s)",
            self.topology.queue,
            self.broker.display,
            self.batch_size,
            self.batch_timeout,
        )
        return _Session(connection, consumer, dead_letters)

    def _drain(self, session: _Session) -> None:
        timeout = POLL_INTERVAL
        now = time.monotonic()
        if self._batch_started is not None:
            timeout = min(timeout, max(0.0, self._batch_started + self.batch_timeout - now))
        if self._retry_at > now:
            timeout = min(timeout, self._retry_at - now)
        with contextlib.suppress(TimeoutError):
            session.connection.drain_events(timeout=max(timeout, 0.001))
        session.connection.heartbeat_check()

    def _forget_deliveries(self) -> None:
        """After a lost connection: unacknowledged messages come back from RabbitMQ anyway."""
        dropped = len(self._inbox) + len(self._pending) + len(self._suspects)
        if dropped:
            LOG.info("%d unacknowledged notifications will be delivered again", dropped)
        self._inbox.clear()
        self._pending.clear()
        self._suspects.clear()
        self._batch_started = None

    # --- messages -> events -----------------------------------------------------------------

    def _process_inbox(self, session: _Session) -> None:
        while self._inbox:
            message = self._inbox.popleft()
            self.stats.received += 1
            try:
                if message.errors:
                    raise Rejected(f"cannot decode the message: {message.errors[0][1]}")
                event = self.converter.to_event(decode(message.body))
            except Rejected as exc:
                self._dead_letter(session, message, str(exc))
                continue
            except Exception as exc:  # a defect must cost one message, never the consumer
                LOG.exception("converting a notification failed")
                self._dead_letter(session, message, f"conversion failed: {exc!r}")
                continue
            if event is None:
                message.ack()
                self.stats.dropped += 1
                continue
            self._pending.append(Entry(message, event))
            if self._batch_started is None:
                self._batch_started = time.monotonic()

    def _dead_letter(self, session: _Session, message: Message, reason: str) -> None:
        info = message.delivery_info
        LOG.warning(
            "rejecting a notification from exchange %r, key %r: %s",
            info.get("exchange"),
            info.get("routing_key"),
            reason,
        )
        if session.dead_letters is not None:
            headers = dict(message.headers or {})
            if not message.errors:  # the body was decompressed on receipt
                headers.pop("compression", None)
            headers.update(
                {
                    "x-annals-error": reason[:1000],
                    "x-annals-exchange": info.get("exchange") or "",
                    "x-annals-routing-key": info.get("routing_key") or "",
                }
            )
            Producer(session.dead_letters).publish(
                message.body,
                exchange=self.topology.dead_letter_exchange,
                routing_key=info.get("routing_key") or "unknown",
                content_type=message.content_type or "application/octet-stream",
                content_encoding=message.content_encoding or "binary",
                headers=headers,
                delivery_mode=2,
                retry=False,
            )
        message.ack()
        self.stats.dead_lettered += 1

    # --- events -> database -----------------------------------------------------------------

    def _maybe_flush(self, session: _Session, force: bool) -> None:
        now = time.monotonic()
        if now < self._retry_at and not force:
            return
        retrying = self._retry_at > 0
        if self._suspects and not self._pending and (retrying or force):
            # Nothing else to prove the database writable: try the refused events again.
            LOG.info("retrying %d events the database refused", len(self._suspects))
            self._pending, self._suspects = self._suspects, []
        timed_out = (
            self._batch_started is not None and now - self._batch_started >= self.batch_timeout
        )
        while self._pending and (
            force or retrying or timed_out or len(self._pending) >= self.batch_size
        ):
            chunk = self._pending[: self.batch_size]
            try:
                written = self._write(session, chunk)
            except StorageUnavailable as exc:
                self._wait_for_database(exc)
                return
            del self._pending[: len(chunk)]
            if not written:
                # Not one event went in: the database refuses writes (full, read-only) rather
                # than these events. Keep them in hand and wait.
                self._wait_for_database(None)
                return
            if self._retry_at:  # retrying refused events found the database unavailable
                return
        self._batch_started = time.monotonic() if self._pending else None

    def _write(self, session: _Session, chunk: list[Entry]) -> bool:
        """One transaction for the chunk, else event by event; False when none went in.

        Raises StorageUnavailable, with what was stored (event by event) removed from
        ``_pending`` and acknowledged.
        """
        try:
            result = self.driver.record_events([entry.event for entry in chunk])
        except StorageUnavailable:
            raise
        except Exception as exc:  # refused: find out which event
            LOG.warning(
                "the database refused a batch of %d events (%s); writing them one by one",
                len(chunk),
                exc,
            )
            return self._write_one_by_one(session, chunk)
        for entry in chunk:
            entry.message.ack()
        self.stats.stored += result.stored
        self.stats.duplicates += len(result.duplicates)
        self._database_ok(session)
        return True

    def _write_one_by_one(self, session: _Session, chunk: list[Entry]) -> bool:
        stored_any = False
        for position, entry in enumerate(chunk):
            try:
                result = self.driver.record_events([entry.event])
            except StorageUnavailable:
                del self._pending[:position]  # stored and acknowledged, or suspects now
                raise
            except Exception as exc:  # this one is refused
                entry.refused = str(exc) or type(exc).__name__
                self._suspects.append(entry)
                continue
            entry.message.ack()
            stored_any = True
            self.stats.stored += result.stored
            self.stats.duplicates += len(result.duplicates)
        if stored_any:
            self._database_ok(session)
        return stored_any

    def _database_ok(self, session: _Session) -> None:
        """A write succeeded, so the database takes writes: give each event it refused on its
        own one more try; one it still refuses is poison and is dead-lettered."""
        self._db_backoff.reset()
        self._retry_at = 0.0
        suspects, self._suspects = self._suspects, []
        for position, entry in enumerate(suspects):
            try:
                result = self.driver.record_events([entry.event])
            except StorageUnavailable as exc:
                self._suspects = suspects[position:]
                self._wait_for_database(exc)
                return
            except Exception as exc:  # refused again while others go in: poison
                reason = str(exc) or type(exc).__name__
                self._dead_letter(
                    session,
                    entry.message,
                    f"the database refused the event {entry.event.message_id}: {reason}",
                )
                continue
            entry.message.ack()
            self.stats.stored += result.stored
            self.stats.duplicates += len(result.duplicates)

    def _wait_for_database(self, exc: Exception | None) -> None:
        delay = self._db_backoff.next()
        self._retry_at = time.monotonic() + delay
        held = len(self._pending) + len(self._suspects)
        reason = exc if exc is not None else "it refuses every write"
        LOG.warning(
            "database not writable (%s); %d notifications held, not acknowledged; "
            "retrying in %.0f s",
            reason,
            held,
            delay,
        )
