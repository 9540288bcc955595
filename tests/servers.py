"""``annals serve`` in a subprocess, for the tests (and the load script) that need a real
server: its settings, its start, and the wait until it answers ``/healthcheck``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from bench.servers import write_ini

__all__ = ["serve_settings", "spawn_serve", "wait_healthy", "write_ini"]


def serve_settings(
    database_url: str,
    port: int,
    workers: int = 2,
    sections: Mapping[str, Mapping[str, object]] | None = None,
) -> dict[str, dict[str, object]]:
    """The configuration of a test server on 127.0.0.1:``port``, ``sections`` merged in."""
    merged: dict[str, dict[str, object]] = {
        "database": {"connection": database_url},
        "api": {"host": "127.0.0.1", "port": port, "workers": workers},
    }
    for group, options in (sections or {}).items():
        merged.setdefault(group, {}).update(options)
    return merged


def spawn_serve(
    conf: Path, log: Path, *, new_session: bool = False, tmpdir: Path | None = None
) -> subprocess.Popen[bytes]:
    """``annals serve --config-file conf``, output to ``log``. ``new_session``: in a process
    group of its own (a test can then SIGKILL master and workers at once); ``tmpdir``: its
    temporary files (the metrics directory) there, for servers a test may SIGKILL."""
    env = None if tmpdir is None else {**os.environ, "TMPDIR": str(tmpdir)}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "annals", "serve", "--config-file", str(conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
            env=env,
        )


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> None:
    """Until ``url`` answers 200 on /healthcheck; RuntimeError, with the server's log, if the
    server exits or does not come up in time (it is killed then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"annals serve exited: {log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthcheck", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    process.kill()
    process.wait(timeout=10)
    raise RuntimeError(f"annals serve did not come up: {log.read_text()}")
