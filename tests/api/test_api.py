"""API behaviour beyond the Panko replay: ingestion, limits, errors, middleware."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import ADMIN, MEMBER_A

pytestmark = pytest.mark.db


def doc(n: int, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "message_id": f"m-{n}",
        "event_type": "compute.instance.create.end",
        "generated": f"2024-05-01T12:00:{n:02d}.000001",
        "traits": [
            ["project_id", 1, "project-a"],
            ["user_id", 1, "user-a"],
            ["memory_mb", 2, 512 * n],
            ["load", 3, 0.5],
            ["at", 4, "2024-05-01T00:00:00"],
        ],
        "raw": {"payload": {"n": n}},
    }
    base.update(extra)
    return base


def post(client: httpx.Client, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    # stdlib json: it can write integers beyond 64 bits, which the tests send on purpose
    return client.post(
        "/v2/events",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", **(ADMIN if headers is None else headers)},
    )


def all_events(client: httpx.Client) -> list[dict[str, Any]]:
    resp = client.get(
        "/v2/events",
        params={"q.field": "all_tenants", "q.value": "True", "limit": "10000"},
        headers=ADMIN,
    )
    assert resp.status_code == 200
    result: list[dict[str, Any]] = resp.json()
    return result


def test_post_stores_and_reports_duplicates(client: httpx.Client) -> None:
    resp = post(client, [doc(1), doc(2)])
    assert resp.status_code == 201
    assert resp.json() == {"stored": 2, "duplicates": 0, "duplicate_message_ids": []}
    resp = post(client, doc(2))  # a single object is accepted too
    assert resp.status_code == 201
    assert resp.json() == {"stored": 0, "duplicates": 1, "duplicate_message_ids": ["m-2"]}
    events = all_events(client)
    assert [e["message_id"] for e in events] == ["m-1", "m-2"]
    assert events[0]["traits"] == [
        {"name": "at", "value": "2024-05-01T00:00:00", "type": "datetime"},
        {"name": "load", "value": "0.5", "type": "float"},
        {"name": "memory_mb", "value": "512", "type": "integer"},
        {"name": "project_id", "value": "project-a", "type": "string"},
        {"name": "user_id", "value": "user-a", "type": "string"},
    ]
    assert events[0]["generated"] == "2024-05-01T12:00:01.000001"
    assert events[0]["raw"] == {"payload": {"n": 1}}


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"message_id": "", "event_type": "x", "generated": "2024-01-01T00:00:00"}, "message_id"),
        ({"message_id": "a", "generated": "2024-01-01T00:00:00"}, "event_type"),
        ({"message_id": "a", "event_type": "x", "generated": "yesterday"}, "generated"),
        (
            {
                "message_id": "a",
                "event_type": "x",
                "generated": "2024-01-01T00:00:00",
                "traits": [["n", 2, "abc"]],
            },
            "64-bit integer",
        ),
        (
            {
                "message_id": "a",
                "event_type": "x",
                "generated": "2024-01-01T00:00:00",
                "traits": [["n", 2, 2**64]],
            },
            "64-bit integer",
        ),
        (
            {
                "message_id": "a",
                "event_type": "x",
                "generated": "2024-01-01T00:00:00",
                "traits": [["n", 9, "v"]],
            },
            "dtype",
        ),
        (
            {
                "message_id": "a",
                "event_type": "x",
                "generated": "2024-01-01T00:00:00",
                "traits": [["s", 1, "x" * 501]],
            },
            "longer than 500",
        ),
        ({"message_id": "a\x00b", "event_type": "x", "generated": "2024-01-01T00:00:00"}, "NUL"),
        ("not an object", "JSON object"),
    ],
)
def test_post_is_all_or_nothing(client: httpx.Client, bad: Any, words: str) -> None:
    resp = post(client, [doc(1), bad])
    assert resp.status_code == 400
    fault = resp.json()["error_message"]["faultstring"]
    assert fault.startswith("event 1:"), fault
    assert words in fault
    assert all_events(client) == []


@pytest.mark.parametrize("position", [0, 255, 999])
def test_post_is_all_or_nothing_in_large_batches(client: httpx.Client, position: int) -> None:
    """A bad event anywhere in a batch of 1,000 leaves nothing behind, event types
    included."""

    def doc(n: int) -> dict[str, Any]:
        stamp = f"2024-05-01T{n // 60:02d}:{n % 60:02d}:00"
        return {"message_id": f"m-{n}", "event_type": f"type.{n // 100}", "generated": stamp}

    batch = [doc(n) for n in range(1000)]
    batch[position] = {"message_id": "bad", "event_type": "x", "generated": "yesterday"}
    resp = post(client, batch)
    assert resp.status_code == 400
    assert resp.json()["error_message"]["faultstring"].startswith(f"event {position}:")
    assert all_events(client) == []
    assert client.get("/v2/event_types", headers=ADMIN).json() == []
    batch[position] = doc(position)
    assert post(client, batch).json()["stored"] == 1000


def test_post_needs_admin_json_and_a_sane_size(make_client: Callable[..., httpx.Client]) -> None:
    client = make_client({"api": {"max_request_body_size": 2048}})
    assert post(client, [doc(1)], MEMBER_A).status_code == 403
    assert post(client, [doc(1)], {}).status_code == 403
    resp = client.post("/v2/events", content=b"[]", headers={**ADMIN, "Content-Type": "text/plain"})
    assert resp.status_code == 415
    resp = client.post(
        "/v2/events", content=b"{nope", headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    resp = post(client, [doc(n) for n in range(40)])
    assert resp.status_code == 413
    assert "larger than 2048 bytes" in resp.json()["error_message"]["faultstring"]
    assert all_events(client) == []


def test_publisher_basic_auth(make_client: Callable[..., httpx.Client]) -> None:
    client = make_client({"api": {"publisher_credentials": "ceilometer:s3cret"}})

    def basic(user: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    assert post(client, [doc(1)], basic("ceilometer", "wrong")).status_code == 401
    assert post(client, [doc(1)], basic("nobody", "s3cret")).status_code == 401
    assert post(client, [doc(1)], basic("ceilometer", "s3cret")).status_code == 201
    # publisher credentials only record: they do not read
    resp = client.get("/v2/events", headers=basic("ceilometer", "s3cret"))
    assert resp.status_code == 403
    assert len(all_events(client)) == 1


def test_limit_is_capped(make_client: Callable[..., httpx.Client]) -> None:
    client = make_client({"api": {"max_api_return_limit": 3, "default_api_return_limit": 2}})
    post(client, [doc(n) for n in range(6)])
    params = {"q.field": "all_tenants", "q.value": "True"}
    assert len(client.get("/v2/events", params=params, headers=ADMIN).json()) == 2
    resp = client.get("/v2/events", params={**params, "limit": "1000000"}, headers=ADMIN)
    assert len(resp.json()) == 3


def test_member_sees_only_own_events(client: httpx.Client) -> None:
    post(
        client,
        [
            doc(1),
            doc(2, traits=[["project_id", 1, "project-b"], ["user_id", 1, "user-a"]]),
            doc(3, traits=[["project_id", 1, "project-a"], ["user_id", 1, "user-b"]]),
        ],
    )
    got = client.get("/v2/events", headers=MEMBER_A).json()
    assert [e["message_id"] for e in got] == ["m-1"]
    assert client.get("/v2/events/m-2", headers=MEMBER_A).status_code == 404
    assert client.get("/v2/events/m-1", headers=MEMBER_A).status_code == 200
    resp = client.get("/v2/events", params={"marker": "m-2"}, headers=MEMBER_A)
    assert resp.status_code == 400


def test_json_body_on_get(client: httpx.Client) -> None:
    post(client, [doc(1), doc(2)])
    body = {
        "q": [
            {"field": "all_tenants", "value": "True"},
            {"field": "memory_mb", "op": "ge", "type": "integer", "value": "1000"},
        ]
    }
    resp = client.request(
        "GET",
        "/v2/events",
        content=orjson.dumps(body),
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert [e["message_id"] for e in resp.json()] == ["m-2"]
    for bad in (b"[]", b'{"x": 1}', b"{}", b"nope", b'{"q": "state"}'):
        resp = client.request(
            "GET", "/v2/events", content=bad, headers={**ADMIN, "Content-Type": "application/json"}
        )
        assert resp.status_code == 400, bad
    resp = client.request(
        "GET",
        "/v2/events",
        content=orjson.dumps(body),
        headers={**ADMIN, "Content-Type": "text/plain"},
    )
    assert resp.status_code == 415


ERROR_REQUESTS: list[tuple[str, str, dict[str, str], int]] = [
    ("GET", "/v2/events", {}, 403),
    ("GET", "/v2/event_types", MEMBER_A, 401),
    ("GET", "/v2/events/none", ADMIN, 404),
    ("GET", "/v2/nothing/here", ADMIN, 404),
    ("DELETE", "/v2/events", ADMIN, 405),
    ("GET", "/v2/events?limit=-1", ADMIN, 400),
    ("GET", "/v2/events?bogus=1", ADMIN, 400),
    ("GET", "/v2/capabilities", {"Accept": "text/html"}, 406),
]


@pytest.mark.parametrize(("method", "path", "headers", "status"), ERROR_REQUESTS)
@pytest.mark.parametrize("accept", [None, "application/xml"])
def test_every_error_has_pankos_shape(
    client: httpx.Client,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    accept: str | None,
) -> None:
    if accept and "Accept" not in headers:
        headers = {**headers, "Accept": accept}
    resp = client.request(method, path, headers=headers)
    assert resp.status_code == status
    if resp.headers["content-type"].startswith("application/xml"):
        assert resp.text.startswith("<error_message><error><faultcode>Client</faultcode>")
        assert "<faultstring>" in resp.text and resp.text.endswith("</error></error_message>")
    else:
        body = resp.json()
        assert set(body) == {"error_message"}
        assert body["error_message"]["faultcode"] == "Client"
        assert body["error_message"]["debuginfo"] is None
        assert isinstance(body["error_message"]["faultstring"], str)
        assert body["error_message"]["faultstring"]


def test_trailing_slashes_and_request_id(client: httpx.Client) -> None:
    post(client, [doc(1)])
    for path in (
        "/v2/capabilities/",
        "/v2/event_types/",
        "/v2/events/",
        "/v2/event_types/compute.instance.create.end/traits/",
        "/v2/event_types/compute.instance.create.end/traits/memory_mb/",
    ):
        resp = client.get(path, headers=ADMIN)
        assert resp.status_code == 200, path
        assert resp.headers["x-openstack-request-id"].startswith("req-")


def test_healthcheck(client: httpx.Client) -> None:
    resp = client.get("/healthcheck")
    assert (resp.status_code, resp.text) == (200, "OK")
    assert client.head("/healthcheck").status_code == 200


def test_proxy_prefix_and_cors(make_client: Callable[..., httpx.Client]) -> None:
    client = make_client(
        {
            "oslo_middleware": {"enable_proxy_headers_parsing": True},
            "cors": {"allowed_origin": "https://dashboard.example.com"},
        }
    )
    resp = client.get(
        "/",
        headers={
            "X-Forwarded-Prefix": "/telemetry/events",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "cloud.example.com",
        },
    )
    link = resp.json()["versions"]["values"][0]["links"][0]["href"]
    assert link == "https://cloud.example.com/telemetry/events/v2"
    resp = client.options(
        "/v2/events",
        headers={
            "Origin": "https://dashboard.example.com",
            "Access-Control-Request-Method": "GET",
        },
    )
    assert resp.headers["access-control-allow-origin"] == "https://dashboard.example.com"
    resp = client.get("/v2/capabilities", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in resp.headers


def test_unicode_message_id_path(client: httpx.Client) -> None:
    post(client, [doc(1, message_id="événement ☃")])
    resp = client.get("/v2/events/événement ☃", headers=MEMBER_A)
    assert resp.status_code == 200
    assert resp.json()["message_id"] == "événement ☃"


def test_nul_bytes_are_client_errors(client: httpx.Client) -> None:
    post(client, [doc(1)])
    params = {"q.field": "state", "q.value": "a\x00b"}
    assert client.get("/v2/events", params=params, headers=ADMIN).status_code == 400
    params = {"q.field": "event_type", "q.value": "a\x00b"}
    assert client.get("/v2/events", params=params, headers=ADMIN).status_code == 400
    assert client.get("/v2/events", params={"marker": "m\x00"}, headers=ADMIN).status_code == 400
    assert client.get("/v2/events/m%00x", headers=ADMIN).status_code == 404
    assert len(all_events(client)) == 1


def test_raw_payload_is_stored_as_sent(client: httpx.Client) -> None:
    """A plain publisher body keeps its raw payload's text: spacing, and numbers beyond a
    double's range (valid JSON; Panko's json module read them as inf), which orjson refuses.
    JSON responses copy the text; XML ones decode it."""
    body = (
        b'[{"message_id": "m-raw", "event_type": "t", "generated": "2024-05-01T00:00:00", '
        b'"traits": [["project_id", 1, "project-admin"]], '
        b'"raw": {"big": 1e400, "n": 123456789012345678901234567890, "s": "\\u00e9"}}]'
    )
    resp = client.post(
        "/v2/events", content=body, headers={"Content-Type": "application/json", **ADMIN}
    )
    assert resp.status_code == 201, resp.text
    got = client.get("/v2/events/m-raw", headers=ADMIN)
    assert got.status_code == 200
    assert b'"raw":{"big": 1e400, "n": 123456789012345678901234567890, "s": "\\u00e9"}' in (
        got.content
    )
    raw = json.loads(got.content)["raw"]
    assert raw["big"] == float("inf") and raw["n"] == 123456789012345678901234567890
    xml = client.get("/v2/events/m-raw", headers={**ADMIN, "Accept": "application/xml"})
    assert xml.status_code == 200
    assert b"{'big': inf, 'n': 123456789012345678901234567890" in xml.content  # Panko's repr
