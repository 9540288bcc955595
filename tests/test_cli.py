"""The ``annals`` command: every subcommand, as an operator runs it (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from annals.storage.base import StorageDriver
from tests.conftest import ADMIN, LiveServer, free_port

ANNALS = [sys.executable, "-m", "annals"]


def run(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ANNALS, *args],
        check=False,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("command", [[], ["serve"], ["dbsync"], ["import"]])
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "usage: annals" in result.stdout


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("annals ")


def test_unreachable_database_is_a_clear_error(conf_factory: Callable[..., Path]) -> None:
    conf = conf_factory({"database": {"connection": "postgresql://nobody@127.0.0.1:1/none"}})
    result = run("dbsync", "--config-file", str(conf))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "annals dbsync: Database unavailable" in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run("dbsync", "--config-file", str(tmp_path / "nope.conf"))
    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert "Traceback" not in result.stderr


LINES = [
    {
        "message_id": "a",
        "event_type": "t",
        "generated": "2024-01-01T00:00:00",
        "traits": [["project_id", 1, "p"], ["n", 2, 1]],
    },
    "this is not json",
    {"message_id": "b", "event_type": "t"},
    {"message_id": "c", "event_type": "t", "generated": "2024-01-01T00:00:01"},
    {"message_id": "a", "event_type": "t", "generated": "2024-01-01T00:00:00"},
]


def _jsonl() -> bytes:
    out = []
    for line in LINES:
        out.append(line if isinstance(line, str) else json.dumps(line))
    return ("\n".join(out) + "\n\n").encode()


@pytest.mark.db
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_import(
    driver: StorageDriver, conf_factory: Callable[..., Path], tmp_path: Path, source: str
) -> None:
    conf = conf_factory({"database": {"connection": driver.url}, "import": {"batch_size": 2}})
    if source == "file":
        path = tmp_path / "events.jsonl"
        path.write_bytes(_jsonl())
        result = run("import", "--config-file", str(conf), str(path))
    else:
        result = run("import", "--config-file", str(conf), "-", stdin=_jsonl())
    assert result.returncode == 1, result.stderr  # some lines were rejected
    assert "stored: 2" in result.stdout
    assert "duplicates: 1" in result.stdout
    assert "rejected: 2" in result.stdout
    assert "line 2: not valid JSON" in result.stdout
    assert "line 3: generated must be an ISO 8601 timestamp string" in result.stdout
    from annals.query import EventQuery

    assert [e.message_id for e in driver.get_events(EventQuery())] == ["a", "c"]


@pytest.mark.db
def test_import_missing_file(
    driver: StorageDriver, conf_factory: Callable[..., Path], tmp_path: Path
) -> None:
    conf = conf_factory({"database": {"connection": driver.url}})
    result = run("import", "--config-file", str(conf), str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


@pytest.mark.db
@pytest.mark.slow
def test_serve_real_http(live_server: LiveServer) -> None:
    event = {
        "message_id": "http-1",
        "event_type": "volume.create.end",
        "generated": "2024-01-01T00:00:00.5",
        "traits": [["project_id", 1, "project-admin"]],
    }
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        resp = http.post("/v2/events", json=[event], headers=ADMIN)
        assert resp.status_code == 201
        resp = http.get("/v2/events/http-1", headers=ADMIN)
        assert resp.json()["generated"] == "2024-01-01T00:00:00.500000"
        assert (
            http.get("/v2/events/ünïcode ☃", headers=ADMIN).json()["error_message"]["faultstring"]
            == "Event ünïcode ☃ Not Found"
        )
    # SIGTERM: gunicorn finishes in-flight requests and exits cleanly
    live_server.process.send_signal(signal.SIGTERM)
    assert live_server.process.wait(timeout=30) == 0


@pytest.mark.slow
def test_serve_with_no_configuration_uses_embedded_sqlite(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {**os.environ, "ANNALS_DATA_DIR": str(data)}
    proc = subprocess.Popen(
        [*ANNALS, "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/v2/capabilities", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("annals serve did not come up")
        assert resp.json()["event_storage"] == {"storage:production_ready": False}
        assert (data / "annals.sqlite").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.db
@pytest.mark.backends("postgresql", "mysql")  # serve creates a SQLite schema itself
def test_serve_refuses_a_server_database_without_schema(
    database_url: str, conf_factory: Callable[..., Path]
) -> None:
    conf = conf_factory({"database": {"connection": database_url}})
    result = run("serve", "--config-file", str(conf), "--port", str(free_port()))
    assert result.returncode == 1
    assert "run 'annals dbsync' first" in result.stderr


ARENAS_PROBE = """
import ctypes, sys, threading
from annals.cli import serve
if sys.argv[1] == "limit":
    assert serve.limit_malloc_arenas()
held, start, done = [], threading.Barrier(9), threading.Barrier(9)
def work():
    start.wait()  # all at once: each finds the arenas busy
    held.append([bytearray(2000) for _ in range(3000)])
    done.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
start.wait()
done.wait()
ctypes.CDLL(None).malloc_stats()  # one "Arena n:" block per arena, on stderr
"""


@pytest.mark.parametrize("mode", ["limit", "default"])
def test_serve_limits_malloc_arenas(mode: str) -> None:
    """Under glibc, ``annals serve`` keeps its threads to 2 malloc arenas (worker memory)."""
    if not hasattr(os, "confstr") or "glibc" not in (os.confstr("CS_GNU_LIBC_VERSION") or ""):
        pytest.skip("glibc only")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", ARENAS_PROBE, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    arenas = done.stderr.count("Arena ")
    if mode == "limit":
        assert 1 <= arenas <= 2, done.stderr
    else:
        assert arenas > 2, done.stderr  # the probe does need more than 2 without the limit
