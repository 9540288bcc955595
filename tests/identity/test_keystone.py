"""Annals behind a real Keystone: ``[api] auth_mode = keystone`` with real tokens.

One ``annals serve`` (gunicorn, SQLite) validates tokens with keystonemiddleware against the
session's Keystone (see conftest.py), its token cache off so that revocations count at once.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from annals.storage import get_driver
from tests.conftest import LiveServer, _start_server
from tests.identity.conftest import SHORT_EXPIRATION, Keystone, keystone_sections

pytestmark = [pytest.mark.db, pytest.mark.slow]


def event(message_id: str, project: str | None, user: str | None) -> dict[str, Any]:
    traits: list[list[Any]] = [["instance_id", 1, f"vm-{message_id}"]]
    if project is not None:
        traits.append(["project_id", 1, project])
    if user is not None:
        traits.append(["user_id", 1, user])
    return {
        "message_id": message_id,
        "event_type": "compute.instance.create.end",
        "generated": f"2024-05-01T12:00:{len(message_id):02d}",
        "traits": traits,
    }


@pytest.fixture(scope="module")
def annals(keystone: Keystone, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("annals-keystone")
    driver = get_driver(f"sqlite:///{directory / 'annals.sqlite'}")
    driver.upgrade()

    def write(sections: dict[str, dict[str, object]]) -> Path:
        path = directory / "annals.conf"
        lines = []
        for group, options in sections.items():
            lines.append(f"[{group}]")
            lines.extend(f"{k} = {v}" for k, v in options.items())
        path.write_text("\n".join(lines) + "\n")
        return path

    server = _start_server(driver, write, directory, keystone_sections(keystone))
    # the events, posted with a system admin's token (telemetry:events:create)
    p, u = keystone.projects, keystone.users
    docs = [
        event("alice-1", p["alpha"], u["alice"]),
        event("alice-2", p["alpha"], u["alice"]),
        event("carol-1", p["alpha"], u["carol"]),
        event("bob-1", p["beta"], u["bob"]),
        event("nobody-1", None, None),
    ]
    resp = httpx.post(
        f"{server.url}/v2/events", json=docs, headers={"X-Auth-Token": keystone.admin_token()}
    )
    assert resp.status_code == 201, resp.text
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(timeout=20)
        driver.close()


ALL_TENANTS = {"q.field": "all_tenants", "q.op": "eq", "q.type": "string", "q.value": "True"}


def ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return sorted(e["message_id"] for e in resp.json())


def getter(server: LiveServer, token: str, **extra: str) -> Callable[..., httpx.Response]:
    def get(path: str, params: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(
            f"{server.url}{path}",
            params=params,
            headers={"X-Auth-Token": token, **extra},
            timeout=30,
        )

    return get


def test_requests_without_a_valid_token_get_401(annals: LiveServer) -> None:
    for headers in (
        {},
        {"X-Auth-Token": "not-a-token"},
        {"X-Auth-Token": "gAAAAABnot-a-real-fernet-token-" + "x" * 150},
        # identity headers alone are nothing in keystone mode
        {"X-User-Id": "admin", "X-Project-Id": "alpha", "X-Roles": "admin"},
    ):
        for path in (
            "/v2/events",
            "/v2/events/alice-1",
            "/v2/event_types",
            "/v2/capabilities",
            "/v2/no-such-path",
        ):
            resp = httpx.get(f"{annals.url}{path}", headers=headers)
            assert resp.status_code == 401, (path, headers, resp.text)
            assert resp.json()["error_message"]["faultcode"] == "Client"
            assert "Keystone uri=" in resp.headers["WWW-Authenticate"]
    # what Panko served without a token
    assert httpx.get(f"{annals.url}/").status_code == 200
    assert httpx.get(f"{annals.url}/healthcheck").status_code == 200


def test_expired_token_gets_401(keystone: Keystone, annals: LiveServer) -> None:
    token = keystone.token("alice", project="alpha", short=True)
    issued = time.monotonic()
    first = httpx.get(f"{annals.url}/v2/events", headers={"X-Auth-Token": token})
    assert time.monotonic() - issued < SHORT_EXPIRATION - 1, "too slow to see it valid"
    assert first.status_code == 200, first.text  # a real token, valid while it lasts
    time.sleep(max(0.0, SHORT_EXPIRATION + 0.2 - (time.monotonic() - issued)))
    resp = httpx.get(f"{annals.url}/v2/events", headers={"X-Auth-Token": token})
    assert resp.status_code == 401, resp.text


def test_member_sees_only_its_own_events(keystone: Keystone, annals: LiveServer) -> None:
    p, u = keystone.projects, keystone.users
    # identity headers sent along with the token are ignored (auth_token strips them)
    forged = {
        "X-User-Id": u["bob"],
        "X-Project-Id": p["beta"],
        "X-Roles": "admin",
        "OpenStack-System-Scope": "all",
        "X-Identity-Status": "Confirmed",
    }
    get = getter(annals, keystone.token("alice", project="alpha"), **forged)
    assert ids(get("/v2/events")) == ["alice-1", "alice-2"]
    assert ids(get("/v2/events", ALL_TENANTS)) == []  # an ordinary trait filter for members
    assert get("/v2/events/alice-1").status_code == 200
    for other in ("carol-1", "bob-1", "nobody-1"):
        assert get(f"/v2/events/{other}").status_code == 404
    assert get("/v2/events", {"marker": "bob-1"}).status_code == 400  # not even as a marker
    resp = get("/v2/event_types")
    assert resp.status_code == 401
    assert resp.json()["error_message"]["faultstring"] == (
        f"Not Authorized to access project {p['alpha']}"
    )
    assert get("/v2/event_types/compute.instance.create.end/traits").status_code == 401
    assert get("/v2/event_types/compute.instance.create.end/traits/user_id").status_code == 401
    resp = httpx.post(
        f"{annals.url}/v2/events",
        json=[event("x", p["alpha"], u["alice"])],
        headers={"X-Auth-Token": keystone.token("alice", project="alpha")},
    )
    assert resp.status_code == 403
    bob = getter(annals, keystone.token("bob", project="beta"))
    assert ids(bob("/v2/events")) == ["bob-1"]


def test_project_admin_sees_its_project_and_with_all_tenants_everything(
    keystone: Keystone, annals: LiveServer
) -> None:
    get = getter(annals, keystone.token("admin", "admin-secret", project="alpha"))
    assert ids(get("/v2/events")) == ["alice-1", "alice-2", "carol-1", "nobody-1"]
    assert ids(get("/v2/events", ALL_TENANTS)) == [
        "alice-1",
        "alice-2",
        "bob-1",
        "carol-1",
        "nobody-1",
    ]
    assert get("/v2/events/bob-1").status_code == 404  # no all_tenants on a single event
    assert get("/v2/event_types").json() == ["compute.instance.create.end"]
    names = {
        t["value"] for t in get("/v2/event_types/compute.instance.create.end/traits/user_id").json()
    }
    assert names == {keystone.users[n] for n in ("alice", "carol", "bob")}


def test_system_scoped_reader_and_admin(keystone: Keystone, annals: LiveServer) -> None:
    everything = ["alice-1", "alice-2", "bob-1", "carol-1", "nobody-1"]
    reader = getter(annals, keystone.token("auditor", system=True))
    assert ids(reader("/v2/events")) == everything
    assert ids(reader("/v2/events", ALL_TENANTS)) == everything
    assert reader("/v2/events/bob-1").status_code == 200
    assert reader("/v2/event_types").status_code == 200
    resp = httpx.post(
        f"{annals.url}/v2/events",
        json=[event("audit", None, None)],
        headers={"X-Auth-Token": keystone.token("auditor", system=True)},
    )
    assert resp.status_code == 403  # readers do not write
    admin = getter(annals, keystone.admin_token())
    assert ids(admin("/v2/events")) == everything


def test_domain_scoped_token_matches_no_rule(keystone: Keystone, annals: LiveServer) -> None:
    get = getter(annals, keystone.token("admin", "admin-secret", domain="default"))
    assert get("/v2/events").status_code == 403
    assert get("/v2/event_types").status_code == 401


def test_token_of_a_user_removed_from_the_project_is_refused(
    keystone: Keystone, annals: LiveServer
) -> None:
    token = keystone.token("carol", project="alpha")
    get = getter(annals, token)
    assert ids(get("/v2/events")) == ["carol-1"]
    grant = (
        f"/projects/{keystone.projects['alpha']}/users/{keystone.users['carol']}/roles/"
        f"{keystone.roles['member']}"
    )
    keystone.call("DELETE", grant)
    try:
        resp = get("/v2/events")
        assert resp.status_code == 401, resp.text
        assert get("/v2/events/carol-1").status_code == 401
    finally:
        keystone.call("PUT", grant)


def test_publisher_basic_credentials_still_post(keystone: Keystone, annals: LiveServer) -> None:
    basic = "Basic " + base64.b64encode(b"ceilometer:publish-secret").decode()
    resp = httpx.post(f"{annals.url}/v2/events", json=[], headers={"Authorization": basic})
    assert resp.status_code == 201, resp.text
    # a publisher may record, not read
    assert httpx.get(f"{annals.url}/v2/events", headers={"Authorization": basic}).status_code == 403
    wrong = "Basic " + base64.b64encode(b"ceilometer:wrong").decode()
    assert (
        httpx.post(f"{annals.url}/v2/events", json=[], headers={"Authorization": wrong}).status_code
        == 401
    )
