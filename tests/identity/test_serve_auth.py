"""``annals serve`` refuses noauth beyond loopback, and a broken policy, before starting."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from annals.cli.serve import is_loopback
from tests.conftest import free_port


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.0.2.10", False),
        ("no-such-host.invalid", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def write_conf(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "annals.conf"
    path.write_text(f"[database]\nconnection = sqlite:///{tmp_path / 'a.sqlite'}\n" + text)
    return path


def serve(conf: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "annals", "serve", "--config-file", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_noauth_beyond_loopback_is_refused(tmp_path: Path) -> None:
    for args, text in (
        (["--host", "0.0.0.0"], ""),
        ([], "[api]\nhost = ::\n"),
        ([], "[api]\nhost = 0.0.0.0\nauth_mode = noauth\n"),
    ):
        done = serve(write_conf(tmp_path, text), *args)
        assert done.returncode == 1, done.stderr
        assert "refusing to serve with [api] auth_mode = noauth" in done.stderr
        assert "allow_noauth_beyond_loopback" in done.stderr
    assert not (tmp_path / "a.sqlite").exists()  # refused before touching anything


def test_broken_policy_file_stops_serve(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text('"telemetry:events:index": "rule:typo"\n')
    done = serve(write_conf(tmp_path, f"[oslo_policy]\npolicy_file = {tmp_path}/policy.yaml\n"))
    assert done.returncode == 2
    assert "configuration error" in done.stderr
    assert "policy.yaml" in done.stderr


def start(conf: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "annals",
            "serve",
            "--config-file",
            str(conf),
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "annals serve exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("annals serve did not come up")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "anonymous_status"),
    [
        ("[api]\nallow_noauth_beyond_loopback = true\n", 403),  # acknowledged: headers rule
        (
            "[api]\nauth_mode = keystone\n[keystone_authtoken]\n"  # a token is needed
            "www_authenticate_uri = http://127.0.0.1:1/v3\n",
            401,
        ),
    ],
)
def test_serving_beyond_loopback_when_acknowledged_or_with_keystone(
    tmp_path: Path, text: str, anonymous_status: int
) -> None:
    port = free_port()
    proc = start(write_conf(tmp_path, text), port)
    try:
        # only loopback traffic: the server listens on every address, we talk to 127.0.0.1
        resp = httpx.get(f"http://127.0.0.1:{port}/v2/events", timeout=10)
        assert resp.status_code == anonymous_status
    finally:
        proc.terminate()
        proc.wait(timeout=20)
