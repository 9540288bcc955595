"""``annals serve``: the API under gunicorn, a production WSGI server.

Each gunicorn worker builds its own application and database pool after the fork. With no
configuration at all, an embedded SQLite database is created in the data directory and its
schema is created or upgraded before the workers start. A PostgreSQL or MySQL schema is not
touched here: run ``annals dbsync`` (refusing to start beats serving errors).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ipaddress
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from oslo_config import cfg
from prometheus_client.multiprocess import mark_process_dead

from annals import config, gctune
from annals.api.app import create_app
from annals.api.logging import RequestIdFilter
from annals.api.metrics import MULTIPROC_ENV
from annals.cli.common import load_conf, open_driver, prepare_schema
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
        app = create_app(self.conf, open_driver(self.conf))
        # What is built so far lives as long as the worker: out of the collector's sight,
        # which a large POST (tens of thousands of JSON objects) would otherwise wake
        # dozens of times per batch (annals.gctune).
        gctune.tune()
        return app


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


@contextlib.contextmanager
def metrics_directory(conf: cfg.ConfigOpts) -> Iterator[str | None]:
    """The directory the workers share their metric values in (prometheus_client
    multiprocess mode), named to them by PROMETHEUS_MULTIPROC_DIR.

    Emptied first (values of a previous run would be added to this one's); a temporary one
    is removed at exit. None when metrics are off.
    """
    if not conf.api.enable_metrics:
        os.environ.pop(MULTIPROC_ENV, None)
        yield None
        return
    configured: str | None = conf.api.metrics_dir
    path = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="annals-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    owner = os.getpid()
    try:
        yield str(path)
    finally:
        # gunicorn forks the workers inside this block, and a worker that exits unwinds the
        # same stack: only the master cleans up, or the workers still running (and those
        # being booted) would lose the directory.
        if os.getpid() == owner and configured:
            for stale in path.glob("*.db"):
                stale.unlink(missing_ok=True)
        elif os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)


def configure_logging() -> None:
    """Every line logged while serving a request names it: the request id is added to the
    records, and the format shows it (the access line carries it in its message)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(process)d %(levelname)s %(name)s%(request_context)s: %(message)s"
            )
        )


#: glibc malloc arenas per process under ``annals serve`` (unless MALLOC_ARENA_MAX is set).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt() parameter number


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Let glibc's malloc use at most ``arenas`` arenas in this process and the workers it
    forks, as ``MALLOC_ARENA_MAX`` would; True when set.

    glibc gives a thread that allocates while another holds the main arena an arena of its
    own, up to 8 per core. A gthread worker's 4 threads then each keep the memory freed by
    the large pages they served: one 10,000-event page took a worker to 152 MB, 128 MB with 2
    arenas (SQLite, 1M events; 16 such pages at concurrency 8: 200.1 -> 194.9 MB, requests
    per second unchanged). Called before gunicorn starts any thread.
    An operator's own MALLOC_ARENA_MAX (read by glibc at start) is left alone; on a C library
    without mallopt (musl) nothing is done.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))


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
        # SIGTERM: stop accepting, finish in-flight requests, exit; workers still busy after
        # this many seconds are killed.
        "graceful_timeout": conf.api.graceful_timeout,
        "keepalive": 5,
        # Annals writes its own access line (request id, caller, route): see annals.api.logging.
        "accesslog": None,
        "errorlog": "-",
        "proc_name": "annals-api",
        # gunicorn's control socket is one path per user ($HOME/.gunicorn): two servers would
        # fight over it, and Annals has no use for it.
        "control_socket_disable": True,
    }
    configure_logging()
    limit_malloc_arenas()
    LOG.info("serving the Panko V2 API on http://%s with %d workers", options["bind"], workers)
    with metrics_directory(conf) as shared:
        if shared is not None:
            options["child_exit"] = _child_exit
        AnnalsApplication(conf, options).run()
    return 0


def _child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the master: a worker's live gauges (requests in progress) go with
    it; its counters stay, so totals never go backwards."""
    mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
