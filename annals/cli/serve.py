"""``annals serve``: the API under gunicorn, a production WSGI server.

Each gunicorn worker builds its own application and database pool after the fork. With no
configuration at all, an embedded SQLite database is created in the data directory and its
schema is created or upgraded before the workers start. A PostgreSQL or MySQL schema is not
touched here: run ``annals dbsync`` (refusing to start beats serving errors).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
from typing import Any

from gunicorn.app.base import BaseApplication
from oslo_config import cfg

from annals import config
from annals.api.app import create_app
from annals.cli.common import load_conf, open_driver
from annals.errors import AnnalsError
from annals.policy import Policy

LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (default: [api] host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: [api] port, 8977)")
    parser.add_argument("--workers", type=int, help="worker processes (default: [api] workers)")


class AnnalsApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn application that builds the Annals WSGI app in each worker."""

    def __init__(self, conf: cfg.ConfigOpts, options: dict[str, Any]) -> None:
        self.conf = conf
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app(self.conf, open_driver(self.conf))


def prepare_schema(conf: cfg.ConfigOpts) -> None:
    driver = open_driver(conf)
    try:
        if driver.url.startswith("sqlite"):
            driver.upgrade()
        elif not driver.schema_is_current():
            raise AnnalsError(
                "the database schema is missing or out of date: run 'annals dbsync' first"
            )
    finally:
        driver.close()


def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None)
    except (socket.gaierror, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(address).split("%")[0]).is_loopback for address in addresses
    )


def refuse_open_noauth(conf: cfg.ConfigOpts, host: str) -> None:
    """With auth_mode = noauth, anyone reaching the port can claim any identity (admin
    included): refuse to listen beyond loopback unless the operator says otherwise."""
    if conf.api.auth_mode != "noauth" or conf.api.allow_noauth_beyond_loopback:
        return
    if is_loopback(host):
        return
    raise AnnalsError(
        f"refusing to serve with [api] auth_mode = noauth on {host}, which is not a loopback "
        "address: anyone who can reach it could claim any identity (X-Roles: admin). Use "
        "[api] auth_mode = keystone, listen on 127.0.0.1, or, when a trusted proxy in front "
        "sets the identity headers and strips the clients' own, set "
        "[api] allow_noauth_beyond_loopback = true."
    )


def run(args: argparse.Namespace) -> int:
    conf = load_conf(args)
    host = args.host or conf.api.host
    port = args.port if args.port is not None else conf.api.port
    workers = args.workers or conf.api.workers
    refuse_open_noauth(conf, host)
    Policy(conf)  # a broken policy file stops here, not in every worker
    prepare_schema(conf)
    if not conf.database.connection:
        LOG.info("using the embedded SQLite database %s", config.database_url(conf))
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": 4,
        "timeout": 60,
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": "-",
        "errorlog": "-",
        "proc_name": "annals-api",
    }
    LOG.info("serving the Panko V2 API on http://%s with %d workers", options["bind"], workers)
    AnnalsApplication(conf, options).run()
    return 0
