"""Fixtures: a real database per test on every backend, and the API over WSGI or real HTTP.

Backends: SQLite always; PostgreSQL and MariaDB/MySQL from ``ANNALS_TEST_POSTGRESQL_URL`` and
``ANNALS_TEST_MYSQL_URL`` (defaults: the local servers). Each test gets its own schema (PG)
or database (MySQL) or file (SQLite), dropped afterwards. A backend that cannot be reached
is skipped locally but fails the run under ``CI=true``: CI must never pass by skipping.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from oslo_config import cfg

from annals import config
from annals.api.app import create_app
from annals.storage import get_driver
from annals.storage.base import StorageDriver
from tests.servers import serve_settings, spawn_serve, wait_healthy, write_ini

PG_URL = os.environ.get(
    "ANNALS_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MYSQL_URL = os.environ.get("ANNALS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/")
#: Test backends: each database engine, and MariaDB once more through mysqlclient (the
#: optional C driver, ``mysql+mysqldb://``) besides PyMySQL (the default).
BACKEND_ENGINES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mysqlclient": "mysql",
}
BACKENDS = [
    b for b in os.environ.get("ANNALS_TEST_BACKENDS", ",".join(BACKEND_ENGINES)).split(",") if b
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

ADMIN = {"X-User-Id": "admin-user", "X-Project-Id": "project-admin", "X-Roles": "admin"}
MEMBER_A = {"X-User-Id": "user-a", "X-Project-Id": "project-a", "X-Roles": "member"}


def _unavailable(backend: str, why: str) -> None:
    message = f"{backend} backend unavailable: {why}"
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing backend is a failure, not a skip)")
    pytest.skip(message)


def _admin_engine(url: str) -> sa.Engine:
    from annals.storage.sql.driver import normalise_url

    return sa.create_engine(normalise_url(url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


@contextlib.contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty database on ``backend``, dropped afterwards; yields its URL."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'annals-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    name = f"annals_t_{uuid.uuid4().hex[:12]}"
    if backend == "postgresql":
        engine = _admin_engine(PG_URL)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        except sa.exc.OperationalError as exc:
            _unavailable(backend, str(exc.orig))
        base = sa.make_url(PG_URL)
        url = base.update_query_dict({"options": f"-csearch_path={name}"})
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
            engine.dispose()
        return
    base = sa.make_url(MYSQL_URL)
    if backend == "mysqlclient":
        if importlib.util.find_spec("MySQLdb") is None:
            _unavailable(backend, "mysqlclient is not installed (it needs libmariadb-dev)")
        base = base.set(drivername="mysql+mysqldb")
    engine = _admin_engine(MYSQL_URL)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    except sa.exc.OperationalError as exc:
        _unavailable(backend, str(exc.orig))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name}")
        engine.dispose()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The engine the test's ``database_url`` runs on (``mysql`` through either driver)."""
    return BACKEND_ENGINES[str(request.node.callspec.params["database_url"])]


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL for one test on the backend named by the parameter."""
    backend: str = request.param
    if request.node.get_closest_marker("db") is None:
        pytest.fail("a test that uses a database must be marked @pytest.mark.db")
    with fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def second_database_url(database_url: str, backend: str, tmp_path: Path) -> Iterator[str]:
    """Another fresh database on the same backend (e.g. a Panko source next to Annals)."""
    with fresh_database(backend, tmp_path) as url:
        yield url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run database tests on every backend, or on those named by ``@pytest.mark.backends``."""
    if "database_url" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        wanted = [b for b in BACKENDS if marker is None or BACKEND_ENGINES[b] in marker.args]
        metafunc.parametrize("database_url", wanted, indirect=True)


@pytest.fixture
def driver(database_url: str) -> Iterator[StorageDriver]:
    drv = get_driver(database_url)
    drv.upgrade()
    try:
        yield drv
    finally:
        drv.close()


@pytest.fixture
def conf_factory(tmp_path: Path) -> Callable[..., Path]:
    """Write an INI file from {group: {option: value}} and return its path."""

    def write(sections: dict[str, dict[str, object]]) -> Path:
        return write_ini(tmp_path / f"annals-{uuid.uuid4().hex[:6]}.conf", sections)

    return write


def pep3333(app: Any) -> Any:
    """httpx's WSGITransport puts a decoded str in PATH_INFO; WSGI servers put latin-1."""

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        environ["PATH_INFO"] = environ["PATH_INFO"].encode("utf-8").decode("latin-1")
        return app(environ, start_response)

    return wrapped


def wsgi_client(conf: cfg.ConfigOpts, driver: StorageDriver) -> httpx.Client:
    app = pep3333(create_app(conf, driver))
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://localhost")


@pytest.fixture
def make_client(
    driver: StorageDriver, conf_factory: Callable[..., Path]
) -> Iterator[Callable[..., httpx.Client]]:
    """Build a WSGI client over the test's database with extra config sections."""
    clients: list[httpx.Client] = []

    def make(sections: dict[str, dict[str, object]] | None = None) -> httpx.Client:
        merged: dict[str, dict[str, object]] = {"database": {"connection": driver.url}}
        for group, options in (sections or {}).items():
            merged.setdefault(group, {}).update(options)
        conf = config.load([str(conf_factory(merged))])
        c = wsgi_client(conf, driver)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(make_client: Callable[..., httpx.Client]) -> httpx.Client:
    """The full WSGI stack (middleware included) over the test's database."""
    return make_client()


def wait_for(
    check: Callable[[], bool], timeout: float = 30, what: str = "a condition", every: float = 0.05
) -> None:
    """Poll ``check`` every ``every`` seconds until it is true; AssertionError naming ``what``
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def live_server_factory(
    driver: StorageDriver, conf_factory: Callable[..., Path], tmp_path: Path
) -> Iterator[Callable[..., LiveServer]]:
    """Start ``annals serve`` in a subprocess on a free port, over the test's database."""
    servers: list[LiveServer] = []

    def start(sections: dict[str, dict[str, object]] | None = None) -> LiveServer:
        server = _start_server(driver, conf_factory, tmp_path, sections or {})
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()


@pytest.fixture
def live_server(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    """``annals serve`` in a subprocess on a free port, over the test's database."""
    return live_server_factory()


def _start_server(
    driver: StorageDriver,
    conf_factory: Callable[..., Path],
    tmp_path: Path,
    sections: dict[str, dict[str, object]],
) -> LiveServer:
    port = free_port()
    conf = conf_factory(serve_settings(driver.url, port, sections=sections))
    log = tmp_path / f"serve-{port}.log"
    proc = spawn_serve(conf, log)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, log)
    return LiveServer(url, proc, log)
