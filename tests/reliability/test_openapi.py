"""The OpenAPI document is valid and true: every response it documents (operation, status,
media type) is produced by a real request and matches its schema, and every request below
gets exactly the documented answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes
from xml.etree import ElementTree as ET

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi
from oslo_config import cfg

from annals import config
from annals.api.app import create_app
from annals.api.openapi import build_document
from annals.storage import get_driver
from annals.storage.base import StorageDriver
from tests.conftest import ADMIN, MEMBER_A
from tests.reliability.conftest import event

PUBLISHER = ("publisher", "publisher-secret")
BODY_LIMIT = 2048
XML_MEDIA = ("application/xml", "text/xml")


@dataclass(frozen=True)
class Call:
    """One request; ``client`` names the application that answers it."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    client: str = "ok"  # "ok": a working database; "down": an unreachable one


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


RAW_PATH = "X-Test-Raw-Path"
BAD_BASIC = {"Authorization": "Basic bm9ib2R5Om5vcGU="}  # nobody:nope
TOO_LARGE = b"x" * (BODY_LIMIT + 1)
JSON_TYPE = {"Content-Type": "application/json"}
# One exemplar per (operationId, status). Statuses every operation documents (401: bad
# publisher credentials; 413: a body over the limit) are added per operation below.
EXEMPLARS: dict[tuple[str, str], Call] = {
    ("healthcheck", "200"): Call("GET", "/healthcheck"),
    ("healthcheck", "503"): Call("GET", "/healthcheck", client="down"),
    ("metrics", "200"): Call("GET", "/metrics"),
    ("openapi", "200"): Call("GET", "/v2/openapi.json"),
    ("capabilities", "200"): Call("GET", "/v2/capabilities", ADMIN),
    ("capabilities", "400"): Call("GET", "/v2/capabilities?nope=1", ADMIN),
    ("capabilities", "406"): Call("GET", "/v2/capabilities", ADMIN),
    ("events_list", "200"): Call("GET", "/v2/events?q.field=seq&q.value=1", ADMIN),
    ("events_list", "400"): Call("GET", "/v2/events?q.field=seq&q.op=like&q.value=1", ADMIN),
    ("events_list", "403"): Call("GET", "/v2/events", {"X-User-Id": "u", "X-Roles": "member"}),
    ("events_list", "406"): Call("GET", "/v2/events", ADMIN),
    ("events_list", "415"): Call(
        "GET", "/v2/events", {**ADMIN, "Content-Type": "text/plain"}, b"q=1"
    ),
    ("events_list", "503"): Call("GET", "/v2/events", ADMIN, client="down"),
    ("events_create", "201"): Call(
        "POST", "/v2/events", {**ADMIN, **JSON_TYPE}, _json([event("new-1")])
    ),
    ("events_create", "400"): Call(
        "POST", "/v2/events", {**ADMIN, **JSON_TYPE}, _json([{"message_id": "x"}])
    ),
    ("events_create", "403"): Call(
        "POST", "/v2/events", {**MEMBER_A, **JSON_TYPE}, _json([event("new-2")])
    ),
    ("events_create", "406"): Call("POST", "/v2/events", {**ADMIN, **JSON_TYPE}, b"[]"),
    ("events_create", "415"): Call(
        "POST", "/v2/events", {**ADMIN, "Content-Type": "text/plain"}, b"[]"
    ),
    ("events_create", "503"): Call(
        "POST", "/v2/events", {**ADMIN, **JSON_TYPE}, _json([event("new-3")]), client="down"
    ),
    ("events_get", "200"): Call("GET", "/v2/events/seeded-1", ADMIN),
    ("events_get", "400"): Call("GET", "/v2/events/seeded-1?nope=1", ADMIN),
    ("events_get", "403"): Call("GET", "/v2/events/seeded-1", {"X-Roles": "member"}),
    ("events_get", "404"): Call("GET", "/v2/events/no-such-event", ADMIN),
    ("events_get", "406"): Call("GET", "/v2/events/seeded-1", ADMIN),
    ("events_get", "503"): Call("GET", "/v2/events/seeded-1", ADMIN, client="down"),
    ("event_types_list", "200"): Call("GET", "/v2/event_types", ADMIN),
    ("event_types_list", "400"): Call("GET", "/v2/event_types?nope=1", ADMIN),
    ("event_types_list", "406"): Call("GET", "/v2/event_types", ADMIN),
    ("event_types_list", "503"): Call("GET", "/v2/event_types", ADMIN, client="down"),
    # A path that is not UTF-8 once decoded (httpx decodes paths: see raw_path_client).
    ("event_types_get", "400"): Call(
        "GET", "/v2/event_types/x", {**ADMIN, RAW_PATH: "/v2/event_types/%FF"}
    ),
    ("event_types_get", "404"): Call("GET", "/v2/event_types/reliability.test", ADMIN),
    ("event_types_get", "406"): Call("GET", "/v2/event_types/reliability.test", ADMIN),
    ("traits_list", "200"): Call("GET", "/v2/event_types/reliability.test/traits", ADMIN),
    ("traits_list", "400"): Call("GET", "/v2/event_types/a%00b/traits", ADMIN),
    ("traits_list", "406"): Call("GET", "/v2/event_types/reliability.test/traits", ADMIN),
    ("traits_list", "503"): Call(
        "GET", "/v2/event_types/reliability.test/traits", ADMIN, client="down"
    ),
    ("trait_values", "200"): Call("GET", "/v2/event_types/reliability.test/traits/seq", ADMIN),
    ("trait_values", "400"): Call("GET", "/v2/event_types/reliability.test/traits/a%00", ADMIN),
    ("trait_values", "406"): Call("GET", "/v2/event_types/reliability.test/traits/seq", ADMIN),
    ("trait_values", "503"): Call(
        "GET", "/v2/event_types/reliability.test/traits/seq", ADMIN, client="down"
    ),
}
# Event types and traits: a caller the policy does not let in gets 401 (as in Panko).
for _op, _path in (
    ("event_types_list", "/v2/event_types"),
    ("event_types_get", "/v2/event_types/reliability.test"),
    ("traits_list", "/v2/event_types/reliability.test/traits"),
    ("trait_values", "/v2/event_types/reliability.test/traits/seq"),
):
    EXEMPLARS[(_op, "401")] = Call("GET", _path, MEMBER_A)
for _method in ("get", "head", "post", "put", "delete", "patch"):
    _op = "versions" if _method == "get" else f"versions_{_method}"
    EXEMPLARS[(_op, "200")] = Call(_method.upper(), "/")
    EXEMPLARS[(_op, "406")] = Call(_method.upper(), "/")
EXEMPLARS[("healthcheck_head", "200")] = Call("HEAD", "/healthcheck")
EXEMPLARS[("healthcheck_head", "503")] = Call("HEAD", "/healthcheck", client="down")


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(operationId, method, path template, operation) of every documented operation."""
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield operation["operationId"], method.upper(), path, operation


def example_path(template: str) -> str:
    return (
        template.replace("{message_id}", "seeded-1")
        .replace("{event_type}", "reliability.test")
        .replace("{trait_name}", "seq")
    )


def exemplar(op_id: str, method: str, template: str, status: str) -> Call:
    """The request that answers ``status``; 401 and 413 are the same for every operation."""
    if (op_id, status) in EXEMPLARS:
        return EXEMPLARS[(op_id, status)]
    path = example_path(template)
    if status == "401":
        return Call(method, path, {**ADMIN, **BAD_BASIC, **JSON_TYPE}, b"[]")
    if status == "413":
        return Call(method, path, {**ADMIN, **JSON_TYPE}, TOO_LARGE)
    raise AssertionError(f"no exemplar request for {method} {template} -> {status}")


def raw_path_client(conf: cfg.ConfigOpts, driver: StorageDriver) -> httpx.Client:
    """The WSGI stack, with PATH_INFO as a WSGI server sets it (PEP 3333: the percent-decoded
    bytes as latin-1), taken from the X-Test-Raw-Path header when there is one: httpx
    decodes paths itself, so it cannot send one that is not UTF-8."""
    app = create_app(conf, driver)

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        raw = environ.pop("HTTP_X_TEST_RAW_PATH", None)
        path = unquote_to_bytes(raw) if raw else environ["PATH_INFO"].encode("utf-8")
        environ["PATH_INFO"] = path.decode("latin-1")
        return app(environ, start_response)

    return httpx.Client(transport=httpx.WSGITransport(app=wsgi), base_url="http://localhost")


@pytest.fixture
def clients(
    driver: StorageDriver, conf_factory: Callable[..., Path], tmp_path: Path
) -> Iterator[dict[str, httpx.Client]]:
    sections: dict[str, dict[str, object]] = {
        "api": {
            "max_request_body_size": BODY_LIMIT,
            "publisher_credentials": ":".join(PUBLISHER),
        }
    }
    ok_conf = config.load([str(conf_factory({**sections, "database": {"connection": driver.url}}))])
    down_url = f"sqlite:///{tmp_path / 'missing-directory' / 'annals.sqlite'}"
    down_driver = get_driver(down_url)
    down_conf = config.load([str(conf_factory({**sections, "database": {"connection": down_url}}))])
    made = {
        "ok": raw_path_client(ok_conf, driver),
        "down": raw_path_client(down_conf, down_driver),
    }
    seeded = made["ok"].post(
        "/v2/events", json=[event("seeded-1", seq=1, host="h1")], headers=ADMIN
    )
    assert seeded.status_code == 201, seeded.text
    yield made
    for client in made.values():
        client.close()
    down_driver.close()


def response_validator(doc: dict[str, Any], pointer: str) -> jsonschema.Draft202012Validator:
    """A validator for the schema at ``pointer`` whose $refs resolve inside ``doc``."""
    root = {**doc, "$ref": pointer}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def check_response(
    doc: dict[str, Any], method: str, template: str, status: str, media: str | None, resp: Any
) -> None:
    where = f"{method} {template} -> {status} ({media})"
    assert str(resp.status_code) == status, f"{where}: got {resp.status_code} {resp.text[:300]}"
    documented = doc["paths"][template][method.lower()]["responses"][status]
    for header in documented.get("headers", {}):
        assert header in resp.headers, f"{where}: no {header} header"
    if media is None:
        assert resp.content == b"", f"{where}: a body where none is documented"
        return
    content_type = resp.headers.get("content-type", "").split(";")[0].strip()
    assert content_type == media, f"{where}: content type {content_type}"
    schema = documented["content"][media].get("schema")
    if media == "application/json" and schema is not None:
        pointer = "/".join(
            [
                "#/paths",
                _escape(template),
                method.lower(),
                "responses",
                status,
                "content",
                _escape(media),
                "schema",
            ]
        )
        errors = list(response_validator(doc, pointer).iter_errors(resp.json()))
        assert not errors, f"{where}: {errors[0].message} in {resp.text[:300]}"
    elif media in XML_MEDIA:
        root = ET.fromstring(resp.content)
        assert root.tag == ("result" if status.startswith("2") else "error_message"), where


@pytest.mark.db
@pytest.mark.backends("sqlite")
def test_every_documented_response_is_produced_and_matches(
    clients: dict[str, httpx.Client],
) -> None:
    doc = clients["ok"].get("/v2/openapi.json").json()
    validate_openapi(doc)
    exercised: set[tuple[str, str, str | None]] = set()
    for op_id, method, template, operation in operations(doc):
        for status, response in operation["responses"].items():
            call = exemplar(op_id, method, template, status)
            medias: list[str | None] = list(response.get("content", {})) or [None]
            for media in medias:
                headers = dict(call.headers)
                if status == "406":  # accepts neither JSON nor XML, or XML where only JSON is
                    headers["Accept"] = "image/png" if media == "application/json" else str(media)
                elif media == "application/openmetrics-text":
                    headers["Accept"] = "application/openmetrics-text; version=1.0.0"
                elif media is not None:
                    headers["Accept"] = media
                resp = clients[call.client].request(
                    call.method, call.path, headers=headers, content=call.content
                )
                check_response(doc, method, template, status, media, resp)
                exercised.add((op_id, status, media))
    documented = {
        (op_id, status, media)
        for op_id, _, _, operation in operations(doc)
        for status, response in operation["responses"].items()
        for media in (list(response.get("content", {})) or [None])
    }
    assert exercised == documented
    # No exemplar for something the document does not say.
    statuses = {(op_id, status) for op_id, status, _ in documented}
    assert set(EXEMPLARS) <= statuses, set(EXEMPLARS) - statuses


@pytest.mark.parametrize("auth_mode", ["noauth", "keystone"])
def test_document_is_valid_openapi_3_1(auth_mode: str) -> None:
    doc = build_document(auth_mode, "http://127.0.0.1:8977")
    validate_openapi(doc)
    assert doc["openapi"] == "3.1.0"
    schemes = doc["components"]["securitySchemes"]
    if auth_mode == "keystone":
        assert schemes["keystone"]["name"] == "X-Auth-Token"
        assert {} not in doc["security"]
    else:
        assert {s["name"] for s in schemes.values() if s["type"] == "apiKey"} == {
            "X-User-Id",
            "X-Project-Id",
            "X-Roles",
        }


@pytest.mark.db
@pytest.mark.backends("sqlite")
def test_served_document_names_this_server_and_follows_config(
    make_client: Callable[..., httpx.Client],
) -> None:
    doc = make_client().get("/v2/openapi.json").json()
    assert doc["servers"] == [{"url": "http://localhost"}]
    assert "/metrics" in doc["paths"]
    keystone = make_client({"api": {"auth_mode": "keystone", "enable_metrics": False}})
    # Public in keystone mode, like / and /healthcheck: no token needed to read it.
    resp = keystone.get("/v2/openapi.json")
    assert resp.status_code == 200
    assert "/metrics" not in resp.json()["paths"]
    assert "keystone" in resp.json()["components"]["securitySchemes"]
    assert keystone.get("/metrics").status_code == 404
