"""Fixtures for the end-to-end tests with the real OpenStack clients.

The clients (``pankoclient``, ``python-openstackclient``, ``ceilometer``) come from the
``test`` extra. Locally a missing client skips its tests with the install command; under
``CI=true`` it fails them: CI must never pass by skipping.
"""

from __future__ import annotations

import http.server
import importlib
import importlib.util
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from annals.storage import get_driver
from annals.storage.base import StorageDriver
from tests.conftest import ADMIN, IN_CI, LiveServer, free_port

#: Basic-auth pair the publisher tests configure in ``[api] publisher_credentials``.
PUBLISHER_USER = "ceilometer"
PUBLISHER_PASSWORD = "s3cret"

INSTALL_HINT = "pip install -e '.[test]'"


def missing_client(what: str) -> None:
    message = f"{what} is not installed in this venv ({INSTALL_HINT})"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing client is a failure, not a skip)")
    pytest.skip(message)


def require(module: str) -> ModuleType:
    """Import a client module, or fail (CI) / skip (locally) if its package is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing_client(f"{module} ({exc})")
        raise  # not reached: fail() and skip() raise


def require_installed(module: str) -> None:
    """Like :func:`require`, without importing the module into the test process."""
    if importlib.util.find_spec(module) is None:
        missing_client(module)


def require_script(name: str) -> str:
    """A console script of this venv (``openstack``), or fail/skip."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        missing_client(f"the {name!r} command")
    return str(path)


def start_annals(conf: Path, port: int, log: Path) -> LiveServer:
    """``annals serve --config-file conf`` (listening on ``port``) in a subprocess;
    returns once /healthcheck answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "annals", "serve", "--config-file", str(conf)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"annals serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthcheck", timeout=1).status_code == 200:
                return LiveServer(url, proc, log)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"annals serve did not come up: {log.read_text()}")


def stop_annals(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def _serve(database_url: str, conf_factory: Callable[..., Path], tmp_path: Path,
           name: str) -> Iterator[LiveServer]:
    port = free_port()
    conf = conf_factory({
        "database": {"connection": database_url},
        "api": {"host": "127.0.0.1", "port": port, "workers": 2,
                "publisher_credentials": f"{PUBLISHER_USER}:{PUBLISHER_PASSWORD}"},
    })
    server = start_annals(conf, port, tmp_path / f"{name}.log")
    try:
        yield server
    finally:
        stop_annals(server)


@pytest.fixture
def annals_server(driver: StorageDriver, conf_factory: Callable[..., Path],
                  tmp_path: Path) -> Iterator[LiveServer]:
    """``annals serve`` over the test's database (every backend), with a publisher account."""
    yield from _serve(driver.url, conf_factory, tmp_path, "serve")


@pytest.fixture
def sqlite_annals_server(conf_factory: Callable[..., Path],
                         tmp_path: Path) -> Iterator[LiveServer]:
    """``annals serve`` over a fresh SQLite file, for client checks that do not depend on
    the storage backend (the CLI tests: each command is a ~2 s process start)."""
    drv = get_driver(f"sqlite:///{tmp_path / 'cli.sqlite'}")
    drv.upgrade()
    try:
        yield from _serve(drv.url, conf_factory, tmp_path, "serve-sqlite")
    finally:
        drv.close()


IDENTITY_HEADERS = ("x-user-id", "x-project-id", "x-roles")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "content-length", "host"}


class IdentityProxy:
    """A trusted front end for ``auth_mode = noauth``: it forwards every request to Annals
    with the identity headers it was given, dropping any the client sent. The OpenStack
    CLI cannot add headers itself without Keystone (see test_openstack_cli.py)."""

    def __init__(self, upstream: str, identity: dict[str, str]) -> None:
        self.upstream = upstream
        self.identity = identity
        self.requests: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP
                           and k.lower() not in IDENTITY_HEADERS}
                headers.update(proxy.identity)
                proxy.requests.append(f"{self.command} {self.path}")
                resp = httpx.request(self.command, proxy.upstream + self.path,
                                     headers=headers, content=body, timeout=30)
                self.send_response(resp.status_code)
                for key, value in resp.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(resp.content)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_HEAD = forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> IdentityProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def admin_proxy(sqlite_annals_server: LiveServer) -> Iterator[IdentityProxy]:
    with IdentityProxy(sqlite_annals_server.url, ADMIN) as proxy:
        yield proxy
