"""Fixtures for the end-to-end tests with the real OpenStack clients.

The clients (``pankoclient``, ``python-openstackclient``, ``ceilometer``) come from the
``test`` extra. Locally a missing client skips its tests with the install command; under
``CI=true`` it fails them: CI must never pass by skipping.
"""

from __future__ import annotations

import http.server
import importlib
import importlib.util
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import httpx
import pytest

from tests.conftest import ADMIN, IN_CI, LiveServer

#: Basic-auth pair the publisher tests configure in ``[api] publisher_credentials``.
PUBLISHER_USER = "ceilometer"
PUBLISHER_PASSWORD = "s3cret"

INSTALL_HINT = "pip install -e '.[test]'"


def missing_client(what: str) -> NoReturn:
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


def require_installed(module: str) -> None:
    """Like :func:`require`, without importing the module into the test process."""
    if importlib.util.find_spec(module) is None:
        missing_client(module)


def require_script(name: str) -> str:
    """A console script of this venv (``openstack``), or fail/skip."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        missing_client(f"the {name!r} command")
    return found


@pytest.fixture
def annals_server(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    """``annals serve`` over the test's database, with a publisher account."""
    credentials = f"{PUBLISHER_USER}:{PUBLISHER_PASSWORD}"
    return live_server_factory({"api": {"publisher_credentials": credentials}})


IDENTITY_HEADERS = ("x-user-id", "x-project-id", "x-roles")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "content-length",
    "host",
}


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
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in HOP_BY_HOP and k.lower() not in IDENTITY_HEADERS
                }
                headers.update(proxy.identity)
                proxy.requests.append(f"{self.command} {self.path}")
                resp = httpx.request(
                    self.command,
                    proxy.upstream + self.path,
                    headers=headers,
                    content=body,
                    timeout=30,
                )
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
def admin_proxy(annals_server: LiveServer) -> Iterator[IdentityProxy]:
    """An :class:`IdentityProxy` in front of ``annals_server`` that makes callers admins."""
    with IdentityProxy(annals_server.url, ADMIN) as proxy:
        yield proxy
