"""python-pankoclient (the official Panko client library) against ``annals serve``.

The client runs in this process over real HTTP: a keystoneauth session with the ``noauth``
plugin pointed at Annals, and the noauth identity headers (X-User-Id, X-Project-Id,
X-Roles) as the session's additional headers, as a trusted proxy in front of Annals
would set them.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.clients.conftest import require
from tests.clients.events_data import (
    AUTHENTICATE,
    BY_ID,
    CREATE_END,
    CREATE_START,
    EVENTS,
    VOLUME_END,
    assert_same_event,
    expected_ids,
    mid,
)
from tests.conftest import ADMIN, MEMBER_A, LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.db]


def load_events(url: str) -> None:
    resp = httpx.post(
        f"{url}/v2/events",
        content=json.dumps(EVENTS),
        headers={**ADMIN, "Content-Type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["stored"] == len(EVENTS)


Panko = Callable[[dict[str, str]], Any]


@pytest.fixture
def panko(annals_server: LiveServer) -> Iterator[Panko]:
    """Make ``pankoclient.v2.client.Client`` objects for an identity, each over a
    keystoneauth session with the ``noauth`` plugin pointed at the server."""
    session_mod = require("keystoneauth1.session")
    noauth = require("keystoneauth1.noauth")
    client_mod = require("pankoclient.v2.client")
    sessions: list[Any] = []

    def make(identity: dict[str, str]) -> Any:
        url = annals_server.url
        session = session_mod.Session(
            auth=noauth.NoAuth(endpoint=url), additional_headers=dict(identity)
        )
        sessions.append(session)
        return client_mod.Client(session=session, endpoint_override=url)

    yield make
    # Idle keep-alive connections hold up the server's graceful stop. Responses kept alive
    # by the tracebacks of expected errors (reference cycles) pin theirs, hence the collect.
    for session in sessions:
        session.session.close()
    gc.collect()


def dicts(resources: Any) -> list[dict[str, Any]]:
    return [r.to_dict() for r in resources]


def ids(resources: Any) -> list[str]:
    return [r.message_id for r in resources]


def typed_filter(client: Any, *conds: tuple[str, str, str, str]) -> list[str]:
    """A typed trait query. pankoclient's ``filters`` dict can only send
    ``q.field/q.op=eq/q.value`` (no ``q.type``, no other op), so typed filters go through
    the client's own HTTP layer (keystoneauth adapter + pankoclient's error mapping) and
    the results are built into its Event resources."""
    events_mod = require("pankoclient.v2.events")
    params: list[tuple[str, str]] = []
    for field, op, type_, value in conds:
        params += [("q.field", field), ("q.op", op), ("q.type", type_), ("q.value", value)]
    _resp, body = client.http_client.get("v2/events", params=params)
    return [events_mod.Event(client.event, doc, loaded=True).message_id for doc in body]


def test_pankoclient_events(annals_server: LiveServer, panko: Panko) -> None:
    client = panko(ADMIN)
    load_events(annals_server.url)
    exceptions = require("pankoclient.exceptions")

    # list: admin of project-admin sees its own project's events, oldest first
    listed = client.event.list()
    assert ids(listed) == expected_ids(1, 2, 3, 4)
    for got in dicts(listed):
        assert_same_event(got, BY_ID[got["message_id"]])

    # filters: event_type, string traits (pankoclient sends q.op=eq and no q.type)
    assert ids(client.event.list(filters={"event_type": CREATE_END})) == expected_ids(2, 3)
    assert ids(client.event.list(filters={"state": "active"})) == expected_ids(2, 3)
    assert ids(
        client.event.list(filters={"event_type": CREATE_START, "state": "building"})
    ) == expected_ids(1)
    assert ids(client.event.list(filters={"state": "gone"})) == []
    # untyped means string: an integer trait is not matched by its text (as in Panko)
    assert ids(client.event.list(filters={"memory_mb": "2048"})) == []
    # all_tenants as a filter, the way `openstack event list --filter all_tenants=True` sends it
    everything = client.event.list(filters={"all_tenants": "True"})
    assert ids(everything) == expected_ids(1, 2, 3, 4, 5, 6)
    for got in dicts(everything):
        assert_same_event(got, BY_ID[got["message_id"]])
    # pankoclient puts the value into the URL unquoted; requests percent-encodes the space
    # and the UTF-8 bytes, and Annals must decode them back
    outcome = {"all_tenants": "True", "outcome": "Zo\u00eb \u2603 success"}
    assert ids(client.event.list(filters=outcome)) == expected_ids(5)

    # typed trait filters
    assert typed_filter(client, ("memory_mb", "ge", "integer", "2048")) == expected_ids(2, 3)
    assert typed_filter(client, ("memory_mb", "eq", "integer", "2048")) == expected_ids(2)
    assert typed_filter(client, ("load", "lt", "float", "1.0")) == expected_ids(1)
    assert typed_filter(
        client, ("launched_at", "gt", "datetime", "2024-05-01T10:00:05")
    ) == expected_ids(3)
    assert typed_filter(client, ("state", "ne", "string", "active")) == expected_ids(1)
    assert typed_filter(
        client, ("size", "eq", "float", "20.5"), ("size", "eq", "integer", "10")
    ) == expected_ids(4)
    with pytest.raises(exceptions.BadRequest) as bad:
        typed_filter(client, ("memory_mb", "eq", "integer", "abc"))
    assert "Unable to convert the value abc to the expected data type integer." in str(bad.value)

    # limit, sort, marker
    assert ids(client.event.list(limit=2)) == expected_ids(1, 2)
    assert ids(client.event.list(sorts=["generated:desc"])) == expected_ids(4, 3, 2, 1)
    assert ids(client.event.list(sorts=["message_id:desc"], limit=3)) == expected_ids(4, 3, 2)
    assert ids(client.event.list(marker=mid(2))) == expected_ids(3, 4)
    assert ids(client.event.list(marker=mid(3), sorts=["generated:desc"])) == expected_ids(2, 1)
    pages: list[str] = []
    marker = None
    while True:
        page = client.event.list(filters={"all_tenants": "True"}, limit=4, marker=marker)
        pages += ids(page)
        if len(page) < 4:
            break
        marker = page[-1].message_id
    assert pages == expected_ids(1, 2, 3, 4, 5, 6)

    # show
    for n in (1, 4):
        shown = client.event.get(mid(n))
        assert_same_event(shown.to_dict(), BY_ID[mid(n)])
    with pytest.raises(exceptions.NotFound) as missing:
        client.event.get("no-such-event")
    assert missing.value.message == "Event no-such-event Not Found"
    with pytest.raises(exceptions.NotFound):
        client.event.get(mid(5))  # another project's event, and no all_tenants on show

    # event types, trait descriptions, trait values
    assert list(client.event_type.list()) == sorted(
        [AUTHENTICATE, CREATE_END, CREATE_START, VOLUME_END]
    )
    assert dicts(client.event_trait_description.list(CREATE_END)) == [
        {"type": "string", "name": "project_id"},
        {"type": "string", "name": "state"},
        {"type": "string", "name": "user_id"},
        {"type": "integer", "name": "memory_mb"},
        {"type": "float", "name": "load"},
        {"type": "datetime", "name": "launched_at"},
    ]
    assert dicts(client.event_trait_description.list(VOLUME_END)) == [
        {"type": "string", "name": "project_id"},
        {"type": "string", "name": "user_id"},
        {"type": "integer", "name": "size"},
        {"type": "float", "name": "size"},
    ]
    assert dicts(client.event_trait_description.list("no.such.type")) == []
    assert dicts(client.event_trait.list(CREATE_END, "memory_mb")) == [
        {"name": "memory_mb", "value": v, "type": "integer"} for v in ("2048", "4096", "1024")
    ]
    assert dicts(client.event_trait.list(CREATE_END, "launched_at")) == [
        {"name": "launched_at", "value": v, "type": "datetime"}
        for v in ("2024-05-01T10:00:05", "2024-05-01T10:04:59.000001", "2024-05-01T10:19:00")
    ]
    assert dicts(client.event_trait.list(VOLUME_END, "size")) == [
        {"name": "size", "value": "10", "type": "integer"},
        {"name": "size", "value": "20.5", "type": "float"},
    ]
    assert dicts(client.event_trait.list(AUTHENTICATE, "outcome")) == [
        {"name": "outcome", "value": "Zo\u00eb \u2603 success", "type": "string"},
    ]

    # capabilities: what the HTTP API says
    caps = client.capabilities.list().to_dict()
    assert caps == httpx.get(f"{annals_server.url}/v2/capabilities").json()
    assert caps["api"] == {"events:query:simple": True}


def test_pankoclient_member(annals_server: LiveServer, panko: Panko) -> None:
    load_events(annals_server.url)
    exceptions = require("pankoclient.exceptions")
    member = panko(MEMBER_A)

    listed = member.event.list()
    assert ids(listed) == expected_ids(6)
    assert_same_event(listed[0].to_dict(), BY_ID[mid(6)])
    # all_tenants is an ordinary trait filter for a member: nothing matches
    assert ids(member.event.list(filters={"all_tenants": "True"})) == []
    assert_same_event(member.event.get(mid(6)).to_dict(), BY_ID[mid(6)])
    with pytest.raises(exceptions.NotFound):
        member.event.get(mid(2))
    with pytest.raises(exceptions.Unauthorized) as denied:
        member.event_type.list()
    assert denied.value.message == "Not Authorized to access project project-a"

    nobody = panko({})
    with pytest.raises(exceptions.Forbidden) as forbidden:
        nobody.event.list()
    assert forbidden.value.http_status == 403
