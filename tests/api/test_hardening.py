"""Hostile input against a real ``annals serve`` (gunicorn), on every engine.

SQL injection strings in every parameter, NUL bytes, invalid UTF-8 (percent-encoded, and raw
bytes on the wire), 10,000 filters, a 100 MB body (announced and chunked), deeply nested
JSON, bad and huge limits, datetimes out of range. Each request gets a clear answer: a 4xx
in Annals' error shape where the input is invalid, and the right (empty) result where a
hostile string is merely a value nobody stored. Afterwards the server is still up and the
stored data is byte for byte what it was.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.conftest import ADMIN, MEMBER_A, LiveServer

pytestmark = [pytest.mark.db, pytest.mark.slow]

INJECTIONS = (
    "' OR '1'='1",
    "'; DROP TABLE event; --",
    '" OR ""="',
    "1) OR (1=1",
    "x' UNION SELECT message_id FROM event --",
    "%' OR 1=1 -- ",
    "\\'; DELETE FROM trait_string; --",
    "1; SELECT pg_sleep(10); --",
    "Robert'); DROP TABLE event_type;--",
)

ALL_TENANTS = [
    ("q.field", "all_tenants"),
    ("q.op", "eq"),
    ("q.type", "string"),
    ("q.value", "True"),
]


def seed_docs() -> list[dict[str, Any]]:
    return [
        {
            "message_id": f"seed-{n}",
            "event_type": f"compute.instance.{kind}",
            "generated": f"2024-05-01T12:00:0{n}",
            "traits": [
                ["project_id", 1, project],
                ["user_id", 1, user],
                ["memory_mb", 2, 512 * n],
                ["launched_at", 4, "2024-05-01T00:00:00"],
            ],
            "raw": {"n": n},
        }
        for n, (kind, project, user) in enumerate(
            [
                ("create.end", "project-a", "user-a"),
                ("delete.end", "project-b", "user-b"),
                ("create.end", "project-admin", "admin-user"),
            ],
            start=1,
        )
    ]


def q(
    field_name: str, value: str, op: str = "eq", type_name: str = "string"
) -> list[tuple[str, str]]:
    return [("q.field", field_name), ("q.op", op), ("q.type", type_name), ("q.value", value)]


@dataclass
class Case:
    name: str
    status: int
    path: str = "/v2/events"
    params: list[tuple[str, str]] = field(default_factory=list)
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=lambda: dict(ADMIN))
    body: bytes | None = None
    #: for 200s: the exact JSON expected
    result: Any = None


def json_headers(base: dict[str, str] | None = None) -> dict[str, str]:
    return {**(ADMIN if base is None else base), "Content-Type": "application/json"}


def body_q(*filters: dict[str, str]) -> bytes:
    return json.dumps({"q": list(filters)}).encode()


def cases() -> list[Case]:
    out: list[Case] = []
    for i, inj in enumerate(INJECTIONS):
        quoted = quote(inj, safe="")
        out += [
            Case(f"sqli {i} in a field name", 200, params=ALL_TENANTS + q(inj, "x"), result=[]),
            Case(
                f"sqli {i} in a string value",
                200,
                params=ALL_TENANTS + q("project_id", inj),
                result=[],
            ),
            Case(
                f"sqli {i} in event_type", 200, params=ALL_TENANTS + q("event_type", inj), result=[]
            ),
            Case(f"sqli {i} in an integer value", 400, params=q("memory_mb", inj, "eq", "integer")),
            Case(
                f"sqli {i} in a datetime value", 400, params=q("launched_at", inj, "eq", "datetime")
            ),
            Case(f"sqli {i} in start_timestamp", 400, params=q("start_timestamp", inj, "ge")),
            Case(f"sqli {i} in op", 400, params=q("project_id", "x", inj)),
            Case(f"sqli {i} in type", 400, params=q("project_id", "x", "eq", inj)),
            Case(f"sqli {i} in sort", 400, params=[("sort", inj)]),
            Case(f"sqli {i} in sort direction", 400, params=[("sort", f"generated:{inj}")]),
            Case(f"sqli {i} in marker", 400, params=[("marker", inj)]),
            Case(f"sqli {i} in limit", 400, params=[("limit", inj)]),
            Case(f"sqli {i} in the message_id path", 404, path=f"/v2/events/{quoted}"),
            Case(
                f"sqli {i} in the event type path",
                200,
                path=f"/v2/event_types/{quoted}/traits",
                result=[],
            ),
            Case(
                f"sqli {i} in the trait name path",
                200,
                path=f"/v2/event_types/compute.instance.create.end/traits/{quoted}",
                result=[],
            ),
            Case(
                f"sqli {i} in X-Project-Id",
                200,
                headers={**MEMBER_A, "X-Project-Id": inj.strip()},
                result=[],
            ),
            Case(
                f"sqli {i} in X-User-Id",
                200,
                headers={**MEMBER_A, "X-User-Id": inj.strip()},
                result=[],
            ),
            Case(
                f"sqli {i} in a JSON body filter",
                200,
                headers=json_headers(MEMBER_A),
                body=body_q({"field": inj, "value": inj}),
                result=[],
            ),
            Case(
                f"sqli {i} in a posted event",
                400,
                method="POST",
                headers=json_headers(),
                body=json.dumps({"message_id": inj, "event_type": inj, "generated": inj}).encode(),
            ),
        ]
    out += [
        # NUL bytes
        Case("NUL in a value", 400, params=q("project_id", "project-a\x00")),
        Case("NUL in a field name", 400, params=q("project\x00_id", "project-a")),
        Case("NUL in op", 400, params=q("project_id", "x", "eq\x00")),
        Case("NUL in type", 400, params=q("project_id", "x", "eq", "string\x00")),
        Case("NUL in event_type", 400, params=q("event_type", "compute\x00")),
        Case("NUL in start_timestamp", 400, params=q("start_timestamp", "2024-01-01\x00", "ge")),
        Case("NUL in marker", 400, params=[("marker", "seed-1\x00")]),
        Case("NUL in sort", 400, params=[("sort", "generated\x00")]),
        Case("NUL in limit", 400, params=[("limit", "1\x00")]),
        Case("NUL in the message_id path", 404, path="/v2/events/seed-1%00"),
        Case("NUL in the event type path", 400, path="/v2/event_types/compute%00/traits"),
        Case(
            "NUL in the trait name path",
            400,
            path="/v2/event_types/compute.instance.create.end/traits/memory_mb%00",
        ),
        Case(
            "NUL in a JSON body filter",
            400,
            headers=json_headers(),
            body=body_q({"field": "project_id", "value": "a\u0000"}),
        ),
        Case(
            "NUL in a posted event",
            400,
            method="POST",
            headers=json_headers(),
            body=json.dumps([{**seed_docs()[0], "message_id": "new\u0000"}]).encode(),
        ),
        # invalid UTF-8, percent-encoded (raw bytes on the wire are in the test below)
        Case("invalid UTF-8 in a field name", 400, path="/v2/events?q.field=%FF&q.value=x"),
        Case("invalid UTF-8 in a value", 400, path="/v2/events?q.field=a&q.value=%C3%28"),
        Case("invalid UTF-8 in marker", 400, path="/v2/events?marker=%FE%FF"),
        Case("invalid UTF-8 in sort", 400, path="/v2/events?sort=%80"),
        Case("invalid UTF-8 in the message_id path", 400, path="/v2/events/%FF%FE"),
        Case("invalid UTF-8 in the event type path", 400, path="/v2/event_types/%C0%AF/traits"),
        Case(
            "invalid UTF-8 in a JSON body",
            400,
            headers=json_headers(),
            body=b'{"q": [{"field": "a", "value": "\xff"}]}',
        ),
        Case(
            "invalid UTF-8 in a posted event",
            400,
            method="POST",
            headers=json_headers(),
            body=b'{"message_id": "\xc3\x28", "event_type": "x", "generated": "2024-01-01"}',
        ),
        # many filters
        Case(
            "10,000 filters in a JSON body",
            400,
            headers=json_headers(),
            body=body_q(*({"field": f"f{n}", "value": "x"} for n in range(10_000))),
        ),
        Case(
            "100 filters is still fine",
            200,
            headers=json_headers(),
            body=body_q(*({"field": f"f{n}", "value": "x"} for n in range(100))),
            result=[],
        ),
        # deeply nested JSON
        Case(
            "deeply nested JSON body on GET",
            400,
            headers=json_headers(),
            body=b'{"q": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        ),
        Case(
            "deeply nested JSON body on POST",
            400,
            method="POST",
            headers=json_headers(),
            body=b"[" * 100_000 + b"]" * 100_000,
        ),
        Case(
            "deeply nested raw in a posted event",
            400,
            method="POST",
            headers=json_headers(),
            body=(
                b'{"message_id": "deep", "event_type": "x", "generated": "2024-01-01", '
                b'"raw": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
            ),
        ),
        # limits
        Case("non-numeric limit", 400, params=[("limit", "ten")]),
        Case("float limit", 400, params=[("limit", "1e3")]),
        Case("hex limit", 400, params=[("limit", "0x10")]),
        Case("empty limit", 400, params=[("limit", "")]),
        Case("negative limit", 400, params=[("limit", "-1")]),
        Case("limit given twice", 400, params=[("limit", "1"), ("limit", "2")]),
        Case("huge limit is capped", 200, params=[*ALL_TENANTS, ("limit", "9" * 400)]),
        Case(
            "huge limit in a JSON body",
            200,
            headers=json_headers(),
            body=json.dumps({"q": [], "limit": 10**18}).encode(),
        ),
        Case(
            "limit beyond 64 bits in a JSON body",
            400,
            headers=json_headers(),
            body=json.dumps({"q": [], "limit": 10**100}).encode(),
        ),
        # datetimes out of range
        Case("year 10000", 400, params=q("start_timestamp", "10000-01-01T00:00:00", "ge")),
        Case("year 0", 400, params=q("start_timestamp", "0000-01-01T00:00:00", "ge")),
        Case(
            "past year 9999 once in UTC",
            400,
            params=q("end_timestamp", "9999-12-31T23:00:00-05:00", "le"),
        ),
        Case(
            "before year 1 once in UTC",
            400,
            params=q("start_timestamp", "0001-01-01T00:00:00+05:00", "ge"),
        ),
        Case("February 30th", 400, params=q("start_timestamp", "2024-02-30", "ge")),
        Case(
            "offset of 99 hours",
            400,
            params=q("start_timestamp", "2024-01-01T00:00:00+99:00", "ge"),
        ),
        Case(
            "datetime trait beyond year 9999",
            400,
            params=q("launched_at", "99999-01-01T00:00:00", "eq", "datetime"),
        ),
        Case(
            "datetime trait overflowing in UTC",
            400,
            params=q("launched_at", "9999-12-31T23:59:59-01:00", "ge", "datetime"),
        ),
        Case(
            "the largest datetime is fine",
            200,
            params=q("end_timestamp", "9999-12-31T23:59:59.999999", "le"),
        ),
        Case("integer beyond 64 bits", 400, params=q("memory_mb", str(2**63), "ge", "integer")),
        Case("float overflow", 400, params=q("memory_mb", "1e999", "ge", "float")),
        Case(
            "posted event from year 10000",
            400,
            method="POST",
            headers=json_headers(),
            body=json.dumps(
                [{**seed_docs()[0], "message_id": "future", "generated": "10000-01-01T00:00:00"}]
            ).encode(),
        ),
        Case(
            "posted datetime trait out of range",
            400,
            method="POST",
            headers=json_headers(),
            body=json.dumps(
                [
                    {
                        **seed_docs()[0],
                        "message_id": "bad-trait",
                        "traits": [["at", 4, "0000-00-00T00:00:00"]],
                    }
                ]
            ).encode(),
        ),
    ]
    return out


# --- talking to the server ----------------------------------------------------------------


def raw_request(server: LiveServer, data: bytes, chunks: int = 0, chunk: bytes = b"") -> int:
    """Send bytes as they are (and then ``chunks`` chunked-encoded pieces); the status."""
    port = urlsplit(server.url).port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(data)
            for _ in range(chunks):
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (and closed) before reading everything: fine
        head = b""
        while b"\r\n" not in head:
            got = sock.recv(4096)
            if not got:
                break
            head += got
    assert head.startswith(b"HTTP/1."), head[:200]
    return int(head.split(b" ", 2)[1])


def snapshot(client: httpx.Client) -> tuple[bytes, ...]:
    parts = [
        client.get("/v2/events", params=[*ALL_TENANTS, ("limit", "10000")], headers=ADMIN).content,
        client.get("/v2/event_types", headers=ADMIN).content,
    ]
    parts += [
        client.get(f"/v2/event_types/{t}/traits", headers=ADMIN).content
        for t in client.get("/v2/event_types", headers=ADMIN).json()
    ]
    return tuple(parts)


def check_answer(case: Case, resp: httpx.Response) -> None:
    assert resp.status_code == case.status, f"{case.name}: {resp.status_code} {resp.text[:300]}"
    if resp.status_code >= 400:
        fault = resp.json()["error_message"]
        assert fault["faultcode"] == "Client"
        assert fault["faultstring"]
    elif case.result is not None:
        assert resp.json() == case.result


@pytest.fixture
def seeded(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    server = live_server_factory()
    resp = httpx.post(f"{server.url}/v2/events", json=seed_docs(), headers=ADMIN)
    assert resp.status_code == 201
    return server


def test_hostile_parameters(seeded: LiveServer, subtests: pytest.Subtests) -> None:
    with httpx.Client(base_url=seeded.url, timeout=60) as client:
        before = snapshot(client)
        for case in cases():
            with subtests.test(msg=case.name):
                resp = client.request(
                    case.method,
                    case.path,
                    params=tuple(case.params) or None,
                    headers=case.headers,
                    content=case.body,
                )
                check_answer(case, resp)
        assert seeded.process.poll() is None
        assert client.get("/healthcheck").status_code == 200
        assert snapshot(client) == before


def test_hostile_bytes_on_the_wire(seeded: LiveServer, subtests: pytest.Subtests) -> None:
    admin = b"".join(f"{k}: {v}\r\n".encode() for k, v in ADMIN.items())
    member = b"".join(f"{k}: {v}\r\n".encode() for k, v in MEMBER_A.items())
    many = "&".join(f"q.field=f{n}&q.value=x" for n in range(10_000)).encode()
    wire: list[tuple[str, bytes, int]] = [
        (
            "raw invalid UTF-8 in the query string",
            b"GET /v2/events?q.field=\xff\xfe&q.value=x HTTP/1.1\r\nHost: t\r\n" + admin + b"\r\n",
            400,
        ),
        (
            "raw invalid UTF-8 in the path",
            b"GET /v2/events/\xc3\x28 HTTP/1.1\r\nHost: t\r\n" + admin + b"\r\n",
            400,
        ),
        (
            "raw invalid UTF-8 in an identity header",
            b"GET /v2/events HTTP/1.1\r\nHost: t\r\n"
            b"X-User-Id: \xff\xfe\r\nX-Project-Id: project-a\r\nX-Roles: member\r\n\r\n",
            200,
        ),
        # gunicorn refuses a request line over 4094 bytes itself (414 URI Too Long)
        (
            "10,000 filters in the query string",
            b"GET /v2/events?" + many + b" HTTP/1.1\r\nHost: t\r\n" + admin + b"\r\n",
            414,
        ),
        (
            "100 MB body announced on POST",
            b"POST /v2/events HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 104857600\r\n"
            + admin
            + b"\r\n"
            + b"[" * 65536,
            413,
        ),
        (
            "100 MB body announced on GET",
            b"GET /v2/events HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 104857600\r\n"
            + member
            + b"\r\n"
            + b"{" * 65536,
            413,
        ),
    ]
    with httpx.Client(base_url=seeded.url, timeout=60) as client:
        before = snapshot(client)
        for name, data, status in wire:
            with subtests.test(msg=name):
                assert raw_request(seeded, data) == status
        with subtests.test(msg="a chunked body past the limit"):
            head = (
                b"POST /v2/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n" + admin + b"\r\n"
            )
            assert raw_request(seeded, head, chunks=12, chunk=b" " * (1 << 20)) == 413
        with subtests.test(msg="a chunked body within the limit is read"):
            resp = client.post("/v2/events", content=iter([b"[", b"]"]), headers=json_headers())
            assert resp.status_code == 201, resp.text
            assert resp.json()["stored"] == 0
        assert seeded.process.poll() is None
        assert client.get("/healthcheck").status_code == 200
        assert snapshot(client) == before
