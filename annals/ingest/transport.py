# mypy: disallow-untyped-calls=False
# (kombu ships py.typed but leaves most of its API unannotated)
"""RabbitMQ plumbing for the consumer: oslo.messaging transport URLs and the topology.

Annals declares its own durable queue and binds it to ``<topic>.info`` and ``<topic>.error``
on every configured exchange. A topic exchange copies each notification into every queue
bound to its key, so the services' own ``notifications.*`` queues (and whoever consumes them)
are not affected, and no service needs reconfiguring.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import amqp  # type: ignore[import-untyped]
from kombu.connection import Connection
from oslo_config import cfg

from annals.errors import AnnalsError

LOG = logging.getLogger(__name__)

SCHEMES = {"rabbit": False, "amqp": False, "amqps": True}
DEFAULT_PORT = 5672
#: Seconds; the connection is dropped when the broker misses two heartbeats.
HEARTBEAT = 60
CONNECT_TIMEOUT = 10
TRUE_WORDS = ("1", "true", "yes", "on")


class TransportURLError(AnnalsError):
    """A transport URL Annals cannot use."""


@dataclass(frozen=True)
class Broker:
    """One transport URL: the hosts to try in turn, and how to log in."""

    urls: tuple[str, ...]  # kombu URLs, one per host (failover order)
    ssl: bool
    display: str  # without passwords, for logs

    def connection(self, attempt: int = 0) -> Connection:
        """A connection to the next host in turn: failover is one host per attempt."""
        return Connection(
            self.urls[attempt % len(self.urls)],
            ssl=self.ssl,
            heartbeat=HEARTBEAT,
            connect_timeout=CONNECT_TIMEOUT,
            transport_options={
                # Confirms make a dead letter safe before its original is acknowledged.
                "confirm_publish": True,
                # Shown by rabbitmqctl list_connections and the management UI.
                "client_properties": {"connection_name": f"annals-consume pid {os.getpid()}"},
            },
        )


def parse_transport_url(url: str) -> Broker:
    """``rabbit://user:pass@host:port[,user:pass@host2:port]/vhost[?ssl=1]`` -> Broker."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise TransportURLError(
            f"unsupported transport {parts.scheme or url!r}: annals consume reads RabbitMQ "
            "(rabbit://user:password@host:5672/)"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    ssl = SCHEMES[parts.scheme] or query.get("ssl", "").lower() in TRUE_WORDS
    vhost = unquote(parts.path[1:]) if parts.path else ""
    urls: list[str] = []
    shown: list[str] = []
    for host_part in parts.netloc.split(","):
        credentials, _, hostport = host_part.rpartition("@")
        user, _, password = credentials.partition(":")
        host, port = _host_port(hostport, url)
        login = f"{quote(unquote(user), safe='')}:{quote(unquote(password), safe='')}"
        auth = f"{login}@" if user else ""
        urls.append(f"amqp://{auth}{host}:{port}/{quote(vhost or '/', safe='')}")
        shown.append(f"{unquote(user) + '@' if user else ''}{host}:{port}")
    display = f"{parts.scheme}://{','.join(shown)}/{vhost}"
    return Broker(tuple(urls), ssl, display)


def _host_port(hostport: str, url: str) -> tuple[str, int]:
    if not hostport:
        return "127.0.0.1", DEFAULT_PORT
    if hostport.startswith("["):  # [ipv6]:port
        host, _, rest = hostport[1:].partition("]")
        host = f"[{host}]"
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = hostport.partition(":")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise TransportURLError(f"bad port {port_text!r} in transport URL") from None
    if not 0 < port < 65536:
        raise TransportURLError(f"bad port {port} in transport URL")
    return host or "127.0.0.1", port


def brokers(conf: cfg.ConfigOpts) -> list[Broker]:
    """Every broker to consume from: ``[notification] messaging_urls`` or the transport_url."""
    urls: list[str] = list(conf.notification.messaging_urls) or [conf.transport_url]
    return [parse_transport_url(u) for u in urls]


@dataclass(frozen=True)
class Topology:
    exchanges: tuple[str, ...]
    topics: tuple[str, ...]
    queue: str
    durable_exchanges: bool
    dead_letter_exchange: str
    dead_letter_queue: str

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> Topology:
        n = conf.notification
        return cls(
            tuple(n.notification_control_exchanges),
            tuple(n.topics),
            n.queue_name,
            n.durable_exchanges,
            n.dead_letter_exchange or "",
            n.dead_letter_queue or "",
        )

    @property
    def routing_keys(self) -> list[str]:
        return [f"{topic}.{priority}" for topic in self.topics for priority in ("info", "error")]

    def declare(self, connection: Connection) -> Any:
        """Declare exchanges, queues and bindings; return a channel to consume on.

        Runs on every (re)connection: bindings to a transient exchange vanish with it when
        the broker restarts.
        """
        channel = connection.channel()
        for exchange in self.exchanges:
            channel = _declare_exchange(connection, channel, exchange, self.durable_exchanges)
        channel.queue_declare(queue=self.queue, durable=True, auto_delete=False)
        for exchange in self.exchanges:
            for key in self.routing_keys:
                channel.queue_bind(queue=self.queue, exchange=exchange, routing_key=key)
        if self.dead_letter_exchange:
            channel = _declare_exchange(connection, channel, self.dead_letter_exchange, True)
            if self.dead_letter_queue:
                channel.queue_declare(queue=self.dead_letter_queue, durable=True, auto_delete=False)
                channel.queue_bind(
                    queue=self.dead_letter_queue,
                    exchange=self.dead_letter_exchange,
                    routing_key="#",
                )
        LOG.info(
            "queue %s bound to %s on exchanges %s",
            self.queue,
            ", ".join(self.routing_keys),
            ", ".join(self.exchanges),
        )
        return channel


def _declare_exchange(connection: Connection, channel: Any, name: str, durable: bool) -> Any:
    """Create a topic exchange unless it exists; an existing one is used as it is.

    Re-declaring an exchange with other flags (a durable one, say) is a 406 that closes the
    channel: the exchange exists, which is all Annals needs, so carry on on a new channel.
    """
    try:
        channel.exchange_declare(exchange=name, type="topic", durable=durable, auto_delete=False)
    except amqp.exceptions.PreconditionFailed as exc:
        LOG.info("exchange %s exists with other settings (%s); using it as it is", name, exc)
        channel = connection.channel()
        channel.exchange_declare(exchange=name, type="topic", passive=True)
    return channel


def close_quietly(objects: Sequence[Any]) -> None:
    for obj in objects:
        if obj is None:
            continue
        try:
            obj.close()
        except Exception as exc:  # a connection already gone: nothing more to release
            LOG.debug("closing %r: %s", obj, exc)
