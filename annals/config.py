"""Configuration: oslo.config options declared as data, loaded once.

Option names follow Panko's where Panko had them (``[database] connection``,
``[api] default_api_return_limit``) so an existing ``panko.conf`` carries over.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from oslo_config import cfg, types
from oslo_middleware import cors, http_proxy_to_wsgi

from annals import __version__
from annals.ingest import opts as ingest_opts

DEFAULT_PORT = 8977


def default_data_dir() -> Path:
    """Where the embedded SQLite database lives when nothing is configured.

    ``$ANNALS_DATA_DIR`` wins, then ``$XDG_DATA_HOME/annals``, then ``~/.local/share/annals``.
    """
    env = os.environ.get("ANNALS_DATA_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "annals"


API_OPTS: list[cfg.Opt] = [
    cfg.HostAddressOpt("host", default="127.0.0.1", help="Address the API server listens on."),
    cfg.PortOpt("port", default=DEFAULT_PORT, help="Port the API server listens on."),
    cfg.IntOpt(
        "workers",
        default=2,
        min=1,
        help="Number of API worker processes started by 'annals serve' (gunicorn workers).",
    ),
    cfg.IntOpt(
        "default_api_return_limit",
        default=100,
        min=1,
        help="Default number of events returned by GET /v2/events when no limit is given.",
    ),
    cfg.IntOpt(
        "max_api_return_limit",
        default=10000,
        min=1,
        help="Hard cap on the 'limit' parameter; larger limits are silently lowered to this.",
    ),
    cfg.StrOpt(
        "auth_mode",
        default="noauth",
        choices=[
            (
                "noauth",
                "Identity is read from the X-User-Id, X-Project-Id, X-Roles and "
                "OpenStack-System-Scope headers. For development, tests and "
                "deployments behind a trusted proxy only.",
            ),
            (
                "keystone",
                "Every request but / and /healthcheck needs a Keystone token "
                "(X-Auth-Token), validated by keystonemiddleware's auth_token with "
                "the options of [keystone_authtoken]; identity comes from the token "
                "only.",
            ),
        ],
        help="How callers are identified.",
    ),
    cfg.BoolOpt(
        "allow_noauth_beyond_loopback",
        default=False,
        help="'annals serve' refuses to listen on an address other than loopback with "
        "auth_mode = noauth, where anyone who reaches the port can claim any identity. "
        "Set this only when a trusted proxy in front of Annals sets the identity "
        "headers itself and strips those sent by clients.",
    ),
    cfg.ListOpt(
        "publisher_credentials",
        default=[],
        secret=True,
        item_type=types.String(regex=r"^[^:]+:.+$"),
        help="user:password pairs that may POST /v2/events with HTTP Basic authentication. "
        "Ceilometer's http:// event publisher cannot send identity headers or tokens; "
        "give it http://user:password@annals-host:8977/v2/events instead.",
    ),
    cfg.IntOpt(
        "max_request_body_size",
        default=10 * 1024 * 1024,
        min=1024,
        help="Largest accepted request body in bytes; larger bodies get 413.",
    ),
    cfg.IntOpt(
        "max_query_filters",
        default=100,
        min=1,
        help="Most q filters one GET /v2/events may carry (each is a subquery); more get 400.",
    ),
    cfg.BoolOpt(
        "access_log",
        default=True,
        help="Log one line per request (logger annals.access): request id, caller (user and "
        "project, or publisher name; never tokens or passwords), method, path, route, "
        "status and duration.",
    ),
    cfg.BoolOpt(
        "enable_metrics",
        default=True,
        help="Serve Prometheus metrics at GET /metrics (no authentication, like "
        "/healthcheck: restrict it at the proxy if needed).",
    ),
    cfg.StrOpt(
        "metrics_dir",
        help="Directory where 'annals serve' workers keep their metric values "
        "(prometheus_client multiprocess mode); emptied when 'annals serve' starts. Unset: a "
        "private temporary directory, removed at exit.",
    ),
    cfg.IntOpt(
        "graceful_timeout",
        default=30,
        min=1,
        help="Seconds 'annals serve' gives in-flight requests to finish after SIGTERM before "
        "their workers are killed.",
    ),
]

DATABASE_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "connection",
        secret=True,
        help="SQLAlchemy URL of the event store: sqlite:///path, postgresql://user@host/db, "
        "mysql://user:pass@host/db (PyMySQL is used when no driver is named). Unset: an "
        "embedded SQLite database 'annals.sqlite' in the data directory.",
    ),
    cfg.StrOpt(
        "data_dir",
        help="Data directory for the default embedded SQLite database. Default: "
        "$ANNALS_DATA_DIR, else $XDG_DATA_HOME/annals, else ~/.local/share/annals.",
    ),
    cfg.IntOpt(
        "event_time_to_live",
        default=-1,
        help="Seconds events are kept; older ones are removed by 'annals expirer'. "
        "<= 0 keeps events forever. (Panko's option.)",
    ),
    cfg.IntOpt(
        "events_delete_batch_size",
        default=0,
        min=0,
        help="Events deleted per transaction by 'annals expirer'; 0 means the built-in "
        "batch of 10000. Every run removes every expired event, batch after batch. "
        "(Panko's option name.)",
    ),
    cfg.IntOpt(
        "max_pool_size",
        default=10,
        min=1,
        help="Connections kept open per API worker (ignored for SQLite).",
    ),
    cfg.IntOpt(
        "pool_timeout",
        default=30,
        min=1,
        help="Seconds to wait for a free connection from the pool.",
    ),
]

IMPORT_OPTS: list[cfg.Opt] = [
    cfg.IntOpt(
        "batch_size",
        default=1000,
        min=1,
        help="Events written per transaction by 'annals import'.",
    ),
]

GROUPS: dict[str, list[cfg.Opt]] = {
    "api": API_OPTS,
    "database": DATABASE_OPTS,
    "import": IMPORT_OPTS,
}


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace ``annals``)."""
    return own_opts() + library_opts()


def own_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The options Annals reads itself (registered by :func:`make_conf`)."""
    return (
        [(group, list(opts)) for group, opts in GROUPS.items()]
        + [
            ("cors", list(cors.CORS_OPTS)),
            ("oslo_middleware", list(http_proxy_to_wsgi.OPTS)),
        ]
        + ingest_opts.list_opts()
    )


def library_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options of libraries that register them on the config object themselves when used:
    ``[keystone_authtoken]`` (keystonemiddleware, auth_mode = keystone) and
    ``[oslo_policy]`` (oslo.policy). Listed for the sample only; imported lazily, since
    importing them costs every command half a second."""
    from keystonemiddleware import auth_token  # noqa: PLC0415
    from oslo_policy import opts as policy_opts  # noqa: PLC0415

    opts: list[tuple[str, list[cfg.Opt]]] = auth_token.list_opts()
    return opts + policy_opts.list_opts()


def make_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    for group, opts in own_opts():
        conf.register_opts(opts, group=None if group == "DEFAULT" else group)
    return conf


def load(config_files: Sequence[str] | None = None) -> cfg.ConfigOpts:
    """Build a ConfigOpts from the given INI files (none: built-in defaults only)."""
    conf = make_conf()
    files = list(config_files or [])
    for path in files:
        if not Path(path).is_file():
            raise cfg.ConfigFilesNotFoundError([path])
    conf(
        args=[],
        project="annals",
        version=__version__,
        default_config_files=files,
        default_config_dirs=[],
    )
    return conf


def database_url(conf: cfg.ConfigOpts) -> str:
    """The configured connection URL, or the embedded SQLite default (directory created)."""
    url: str | None = conf.database.connection
    if url:
        return url
    data_dir = Path(conf.database.data_dir) if conf.database.data_dir else default_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'annals.sqlite'}"
