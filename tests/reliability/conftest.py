"""Helpers of the reliability tests: ``annals serve`` in its own process group (so that a test
can SIGKILL the whole server, master and workers), batches of events with known ids, and
control of the local PostgreSQL cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from annals.storage.base import StorageDriver
from tests.conftest import ADMIN, free_port
from tests.conftest import wait_for as shared_wait_for
from tests.servers import serve_settings, spawn_serve, wait_healthy

PG_VERSION = os.environ.get("ANNALS_TEST_PG_VERSION") or (
    sorted(os.listdir("/etc/postgresql"))[-1] if os.path.isdir("/etc/postgresql") else "15"
)


@dataclass
class Server:
    """One ``annals serve`` process group."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    conf: Path

    def wait_ready(self, timeout: float = 30) -> None:
        wait_healthy(self.url, self.process, self.log, timeout)

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the children of the master."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except FileNotFoundError:
            return []

    def kill(self) -> None:
        """SIGKILL the master and every worker at once, as a crash or the OOM killer would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
                return None
        return self.process.returncode


ServeFactory = Callable[..., Server]


@pytest.fixture
def serve(
    driver: StorageDriver, conf_factory: Callable[..., Path], tmp_path: Path
) -> Iterator[ServeFactory]:
    """Start ``annals serve`` over the test's database, each in a new process group; every
    server still running at the end is stopped (SIGKILL if SIGTERM is not enough)."""
    servers: list[Server] = []

    def start(
        sections: dict[str, dict[str, object]] | None = None,
        *,
        url: str | None = None,
        workers: int = 2,
        port: int | None = None,
        ready: bool = True,
    ) -> Server:
        port = port or free_port()
        conf = conf_factory(serve_settings(url or driver.url, port, workers, sections))
        log = tmp_path / f"serve-{port}-{uuid.uuid4().hex[:6]}.log"
        # A server killed with SIGKILL cannot remove its temporary metrics directory: keep it
        # under the test's own directory.
        process = spawn_serve(conf, log, new_session=True, tmpdir=tmp_path)
        server = Server(f"http://127.0.0.1:{port}", process, log, conf)
        servers.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop(timeout=20)


def event(
    message_id: str, *, event_type: str = "reliability.test", **traits: Any
) -> dict[str, Any]:
    """One publisher document, visible to ADMIN's project."""
    rows: list[list[Any]] = [["project_id", 1, ADMIN["X-Project-Id"]]]
    for name, value in traits.items():
        dtype = 2 if isinstance(value, int) else 1
        rows.append([name, dtype, value])
    return {
        "message_id": message_id,
        "event_type": event_type,
        "generated": "2026-11-24T10:00:00",
        "traits": rows,
        "raw": {"payload": {"id": message_id}},
    }


@dataclass
class Batches:
    """Batches of events with known message ids: ``<prefix>-<batch>-<n>``."""

    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    size: int = 20

    def ids(self, batch: int) -> list[str]:
        return [f"{self.prefix}-{batch:06d}-{n:03d}" for n in range(self.size)]

    def body(self, batch: int) -> list[dict[str, Any]]:
        return [event(mid, seq=n, batch=batch) for n, mid in enumerate(self.ids(batch))]


def stored_ids(database_url: str, prefix: str) -> set[str]:
    """message_ids starting with ``prefix`` in the database, read directly (not through Annals)."""
    from annals.storage.sql.driver import normalise_url

    engine = sa.create_engine(normalise_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT message_id FROM event WHERE message_id LIKE :p"),
                {"p": f"{prefix}-%"},
            )
            return {row[0] for row in rows}
    finally:
        engine.dispose()


def pg_ready() -> bool:
    result = subprocess.run(
        ["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True, check=False
    )
    return result.returncode == 0


def pg_ctl(action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", action],
        check=True,
        capture_output=True,
        timeout=90,
    )


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """tests.conftest.wait_for, polling every 0.2 s (its checks are HTTP requests)."""
    shared_wait_for(check, timeout, what, every=0.2)
