"""Options of ``annals consume``, named as Ceilometer names them so its configuration carries over.

``[DEFAULT] transport_url``, ``[notification] messaging_urls, batch_size, batch_timeout, workers,
notification_control_exchanges`` and ``[event] definitions_cfg_file,
drop_unmatched_notifications, store_raw`` are Ceilometer's options. The rest (topics, queue and
dead-letter names, exchange durability) are Annals' own: Ceilometer consumed the services'
shared ``notifications.*`` queues, Annals declares a queue of its own.
"""

from __future__ import annotations

from oslo_config import cfg

DEFAULT_TRANSPORT_URL = "rabbit://guest:guest@127.0.0.1:5672/"

#: Ceilometer's default list of exchanges, plus the services it forgot (octavia, manila) and
#: designate's own exchange name (Ceilometer lists "dns").
DEFAULT_EXCHANGES = [
    "nova", "glance", "neutron", "cinder", "heat", "keystone", "trove", "zaqar", "swift",
    "ceilometer", "magnum", "dns", "designate", "ironic", "aodh", "octavia", "manila",
]  # fmt: skip

DEFAULT_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "transport_url",
        default=DEFAULT_TRANSPORT_URL,
        secret=True,
        help="The RabbitMQ broker 'annals consume' reads notifications from, as an "
        "oslo.messaging transport URL: rabbit://user:password@host:port[,user:password@"
        "host2:port]/virtual_host[?ssl=1]. Several hosts are tried in turn (failover). Used "
        "when [notification] messaging_urls is empty.",
    ),
]

NOTIFICATION_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "messaging_urls",
        default=[],
        secret=True,
        help="Brokers to consume from, one transport URL each, when notifications are spread "
        "over several brokers. Every URL gets its own 'workers' consumer processes. Empty: "
        "[DEFAULT] transport_url.",
    ),
    cfg.IntOpt(
        "batch_size",
        default=100,
        min=1,
        help="Notifications written per database transaction. A batch is acknowledged to "
        "RabbitMQ only once its events are committed. The consumer's prefetch is twice this.",
    ),
    cfg.FloatOpt(
        "batch_timeout",
        default=1.0,
        min=0.01,
        help="Seconds to wait for a batch to fill after its first notification; then the "
        "partial batch is written.",
    ),
    cfg.IntOpt(
        "workers",
        default=1,
        min=1,
        help="Consumer processes per broker URL. They share the queue (each notification goes "
        "to one of them); a worker that dies is restarted.",
    ),
    cfg.ListOpt(
        "notification_control_exchanges",
        default=DEFAULT_EXCHANGES,
        help="Exchanges (the services' control_exchange) whose notifications are consumed. "
        "Exchanges that do not exist yet are created, as topic exchanges.",
    ),
    cfg.ListOpt(
        "topics",
        default=["notifications"],
        help="Notification topics of the services ([oslo_messaging_notifications] topics). "
        "The queue is bound to '<topic>.info' and '<topic>.error' on every exchange: only "
        "info and error notifications become events.",
    ),
    cfg.StrOpt(
        "queue_name",
        default="annals.notifications",
        help="The durable queue Annals declares and consumes. It is Annals' own: it never "
        "competes with other consumers of the services' notifications.* queues. Consumers "
        "with the same queue_name share the work.",
    ),
    cfg.BoolOpt(
        "durable_exchanges",
        default=False,
        help="Whether exchanges Annals has to create are durable. Must match the services' "
        "[oslo_messaging_rabbit] amqp_durable_queues; an existing exchange is used as it is.",
    ),
    cfg.StrOpt(
        "dead_letter_exchange",
        default="annals.dead-letter",
        help="Exchange that receives notifications which cannot be decoded or converted, or "
        "which the database refuses, with the reason in the 'x-annals-error' header. Empty: "
        "such notifications are logged and dropped.",
    ),
    cfg.StrOpt(
        "dead_letter_queue",
        default="annals.dead-letter",
        help="Durable queue bound to dead_letter_exchange, where rejected notifications wait "
        "for an operator. Empty: no queue is declared (bind your own).",
    ),
]

EVENT_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "definitions_cfg_file",
        default="event_definitions.yaml",
        help="Event definitions (Ceilometer's event_definitions.yaml format). A relative name "
        "is looked up next to the configuration files, then in /etc/annals; the copy shipped "
        "with Annals is used when none is found.",
    ),
    cfg.BoolOpt(
        "drop_unmatched_notifications",
        default=False,
        help="Drop notifications that no event definition matches. Otherwise they are stored "
        "with the default traits only.",
    ),
    cfg.MultiStrOpt(
        "store_raw",
        default=[],
        help="Priorities (info, error) whose notifications are stored whole in the event's "
        "raw field, without credentials. By default nothing is stored.",
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The consumer's option groups, for annals.config and oslo-config-generator."""
    return [
        ("DEFAULT", list(DEFAULT_OPTS)),
        ("notification", list(NOTIFICATION_OPTS)),
        ("event", list(EVENT_OPTS)),
    ]
