"""A real OpenStack Keystone for the identity tests, and Annals served behind it.

Keystone (from PyPI, in its own venv built by ``tests/identity/make-keystone-venv.sh``) is
bootstrapped on SQLite in a temporary directory (``keystone-manage db_sync``,
``fernet_setup``, ``credential_setup``, ``bootstrap``) and served on loopback by gunicorn
from that venv. A second gunicorn serves the same database and keys with short-lived tokens
(SHORT_EXPIRATION), to get genuinely expired tokens. Locally a missing venv skips these
tests; under ``CI=true`` it fails them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IN_CI, free_port

ROOT = Path(__file__).parent.parent.parent
KEYSTONE_VENV = Path(os.environ.get("ANNALS_KEYSTONE_VENV", ROOT / ".venv-keystone"))
ADMIN_PASSWORD = "admin-secret"
PASSWORD = "user-secret"
SERVICE_PASSWORD = "annals-secret"
#: Lifetime of the tokens of the second Keystone. Keystone truncates expiry times to the
#: second, so such a token is valid for between SHORT_EXPIRATION - 1 and SHORT_EXPIRATION s.
SHORT_EXPIRATION = 3

# Keystone's WSGI entry point parses sys.argv with oslo.config: hide gunicorn's arguments.
WSGI_SHIM = """\
import sys
sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
"""


@dataclass
class Keystone:
    url: str  # the v3 endpoint
    short_url: str  # same database and keys, tokens valid for SHORT_EXPIRATION seconds
    projects: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    _admin_token: str | None = None

    def token(
        self,
        user: str,
        password: str = PASSWORD,
        *,
        project: str | None = None,
        system: bool = False,
        domain: str | None = None,
        short: bool = False,
    ) -> str:
        scope: dict[str, Any] | None = None
        if project is not None:
            scope = {"project": {"id": self.projects[project]}}
        elif system:
            scope = {"system": {"all": True}}
        elif domain is not None:
            scope = {"domain": {"id": domain}}
        auth: dict[str, Any] = {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "domain": {"id": "default"}, "password": password}
                },
            },
        }
        if scope is not None:
            auth["scope"] = scope
        resp = httpx.post(
            f"{self.short_url if short else self.url}/auth/tokens", json={"auth": auth}, timeout=30
        )
        assert resp.status_code == 201, resp.text
        return resp.headers["X-Subject-Token"]

    def admin_token(self) -> str:
        """A system-scoped admin token (one per session: it outlives the tests)."""
        if self._admin_token is None:
            self._admin_token = self.token("admin", ADMIN_PASSWORD, system=True)
        return self._admin_token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = httpx.request(
            method,
            f"{self.url}{path}",
            json=body,
            timeout=30,
            headers={"X-Auth-Token": self.admin_token()},
        )
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None


def _keystone_manage(conf: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(KEYSTONE_VENV / "bin" / "keystone-manage"), "--config-file", str(conf), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _finish(proc: subprocess.Popen[bytes], what: str) -> None:
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"keystone-manage {what} failed: {out.decode(errors='replace')}")


def _write_conf(directory: Path, name: str, expiration: int) -> Path:
    conf = directory / name
    conf.write_text(
        "[DEFAULT]\n"
        f"log_file = {directory / (name + '.log')}\n"
        "[database]\n"
        f"connection = sqlite:///{directory / 'keystone.db'}\n"
        "[fernet_tokens]\n"
        f"key_repository = {directory / 'fernet-keys'}\n"
        "[fernet_receipts]\n"
        f"key_repository = {directory / 'fernet-receipts'}\n"
        "[credential]\n"
        f"key_repository = {directory / 'credential-keys'}\n"
        "[token]\n"
        f"expiration = {expiration}\n"
        "[cache]\n"
        # in-process cache (one gunicorn worker): validation reads far less of the database;
        # revocations still invalidate it
        "enabled = true\n"
        "backend = dogpile.cache.memory\n"
        "[identity]\n"
        # the cheapest bcrypt: the tests authenticate dozens of times
        "password_hash_rounds = 4\n"
    )
    return conf


def _serve(directory: Path, conf: Path, port: int) -> subprocess.Popen[bytes]:
    log = (directory / f"gunicorn-{port}.log").open("wb")
    return subprocess.Popen(
        [
            str(KEYSTONE_VENV / "bin" / "gunicorn"),
            "--chdir",
            str(directory),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--timeout",
            "120",
            "keystone_wsgi:application",
        ],
        env={**os.environ, "OS_KEYSTONE_CONFIG_FILES": str(conf)},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"keystone exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"keystone did not come up: {log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="session")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keystone]:
    manage = KEYSTONE_VENV / "bin" / "keystone-manage"
    if not manage.exists():
        message = f"no Keystone venv at {KEYSTONE_VENV}: run tests/identity/make-keystone-venv.sh"
        if IN_CI:
            pytest.fail(message + " (CI=true: the Keystone tests must run, not skip)")
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("keystone")
    conf = _write_conf(directory, "keystone.conf", 3600)
    short_conf = _write_conf(directory, "keystone-short.conf", SHORT_EXPIRATION)
    (directory / "keystone_wsgi.py").write_text(WSGI_SHIM)
    port, short_port = free_port(), free_port()
    url, short_url = f"http://127.0.0.1:{port}/v3", f"http://127.0.0.1:{short_port}/v3"
    setup = [_keystone_manage(conf, "db_sync")]
    for what in ("fernet_setup", "credential_setup"):
        setup.append(
            _keystone_manage(
                conf,
                what,
                "--keystone-user",
                str(os.getuid()),
                "--keystone-group",
                str(os.getgid()),
            )
        )
    for proc, what in zip(setup, ("db_sync", "fernet_setup", "credential_setup"), strict=True):
        _finish(proc, what)
    _finish(
        _keystone_manage(
            conf,
            "bootstrap",
            "--bootstrap-password",
            ADMIN_PASSWORD,
            "--bootstrap-admin-url",
            url,
            "--bootstrap-public-url",
            url,
            "--bootstrap-internal-url",
            url,
            "--bootstrap-region-id",
            "RegionOne",
        ),
        "bootstrap",
    )
    servers = [_serve(directory, conf, port), _serve(directory, short_conf, short_port)]
    try:
        _wait_up(url, servers[0], directory / f"gunicorn-{port}.log")
        _wait_up(short_url, servers[1], directory / f"gunicorn-{short_port}.log")
        ks = Keystone(url, short_url)
        _populate(ks)
        yield ks
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


def _populate(ks: Keystone) -> None:
    """Projects alpha, beta and service; members alice and carol (alpha), bob (beta); the
    service user Annals validates tokens with; a system reader; admin of alpha too."""
    for role in ks.call("GET", "/roles")["roles"]:
        ks.roles[role["name"]] = role["id"]
    for name in ("reader", "member", "admin", "service"):
        if name not in ks.roles:
            ks.roles[name] = ks.call("POST", "/roles", {"role": {"name": name}})["role"]["id"]
    ks.users["admin"] = ks.call("GET", "/users?name=admin")["users"][0]["id"]
    for project in ("alpha", "beta", "service"):
        ks.projects[project] = ks.call(
            "POST", "/projects", {"project": {"name": project, "domain_id": "default"}}
        )["project"]["id"]
    for user, password in (
        ("alice", PASSWORD),
        ("bob", PASSWORD),
        ("carol", PASSWORD),
        ("auditor", PASSWORD),
        ("annals", SERVICE_PASSWORD),
    ):
        ks.users[user] = ks.call(
            "POST", "/users", {"user": {"name": user, "password": password, "domain_id": "default"}}
        )["user"]["id"]
    grants = [
        ("alpha", "alice", "member"),
        ("beta", "bob", "member"),
        ("alpha", "carol", "member"),
        ("service", "annals", "service"),
        ("alpha", "admin", "admin"),
    ]
    for project, user, role in grants:
        ks.call(
            "PUT", f"/projects/{ks.projects[project]}/users/{ks.users[user]}/roles/{ks.roles[role]}"
        )
    ks.call("PUT", f"/system/users/{ks.users['auditor']}/roles/{ks.roles['reader']}")
    ks.call("PUT", f"/domains/default/users/{ks.users['admin']}/roles/{ks.roles['admin']}")


def keystone_sections(ks: Keystone) -> dict[str, dict[str, object]]:
    """The Annals configuration for auth_mode = keystone against ``ks``."""
    return {
        "api": {"auth_mode": "keystone", "publisher_credentials": "ceilometer:publish-secret"},
        "keystone_authtoken": {
            "www_authenticate_uri": ks.url,
            "auth_url": ks.url,
            "auth_type": "password",
            "username": "annals",
            "password": SERVICE_PASSWORD,
            "project_name": "service",
            "user_domain_id": "default",
            "project_domain_id": "default",
            "interface": "public",
            # validate with Keystone on every request: a revoked token is refused at once
            "token_cache_time": -1,
            "service_token_roles_required": "true",
        },
    }
