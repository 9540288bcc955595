"""The OpenAPI 3.1 description of the API, served at ``GET /v2/openapi.json``.

Written by hand, as data, next to the code it describes; ``tests/reliability/test_openapi.py``
produces every response documented here and validates it against its schema, and a
schemathesis run fuzzes a live server with it. The document depends on ``[api] auth_mode``:
only the way callers identify themselves differs (identity headers or Keystone tokens).

Some rules cannot be written in JSON Schema, and the descriptions say so: the n-th ``q.field``
pairs with the n-th ``q.op``, ``q.type`` and ``q.value`` and each value must convert to its
type, a ``marker`` must name a visible event, and the traits of one event must not repeat a
(name, type) pair. Requests that the schemas accept but that break one of these get a 400.
"""

from __future__ import annotations

import copy
from typing import Any, Final

import falcon
import orjson

from annals import __version__
from annals.api.metrics import LATENCY_BUCKETS
from annals.query import INT64_MAX, INT64_MIN, OPERATORS, SORT_DIRS, SORT_KEYS, SUPPORTED_TYPES

JSON: Final = "application/json"
XML_TYPES: Final = ("application/xml", "text/xml")
Schema = dict[str, Any]

NO_NUL: Final = "^[^\\u0000]*$"
#: How Annals renders timestamps: ISO 8601, UTC, no offset, microseconds when non-zero.
TIMESTAMP_OUT: Final = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{6})?$"
OWNER_TRAITS: Final = ("project_id", "user_id")


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _name(max_length: int = 255) -> Schema:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": NO_NUL}


def _trait_tuple(name: Schema, dtype: int, value: Schema) -> Schema:
    return {
        "type": "array",
        "prefixItems": [name, {"const": dtype}, value],
        "minItems": 3,
        "maxItems": 3,
    }


def _trait_in() -> Schema:
    """``[name, dtype, value]``: one branch per dtype, owner traits held to 255 characters."""
    other_name = {**_name(), "not": {"enum": list(OWNER_TRAITS)}}
    owner_name = {"enum": list(OWNER_TRAITS)}
    text = {"type": "string", "maxLength": 500, "pattern": NO_NUL}
    owner_text = {"type": "string", "maxLength": 255, "pattern": NO_NUL}
    untyped = {
        "not": {"type": "null"},
        "description": "Any value but null, stored as the string str(value): at most 500 "
        "characters (255 for project_id and user_id), no NUL.",
    }
    return {
        "description": "A trait as Ceilometer's publisher sends it: [name, dtype, value]. "
        "dtype 1 string, 2 integer (or a string holding one), 3 float (or a string "
        "holding one), 4 datetime (ISO 8601); 0 means no type and stores str(value) as a "
        "string. project_id and user_id string values are at most 255 characters.",
        "oneOf": [
            _trait_tuple(_name(), 0, untyped),
            _trait_tuple(other_name, 1, text),
            _trait_tuple(owner_name, 1, owner_text),
            _trait_tuple(
                _name(),
                2,
                {"anyOf": [_ref("Int64"), {"type": "string", "pattern": "^[+-]?[0-9]{1,18}$"}]},
            ),
            _trait_tuple(
                _name(),
                3,
                {
                    "anyOf": [
                        _ref("FiniteNumber"),
                        {"type": "string", "pattern": "^[+-]?[0-9]{1,15}(\\.[0-9]{1,15})?$"},
                    ]
                },
            ),
            _trait_tuple(_name(), 4, {"type": "string", "format": "date-time"}),
        ],
    }


def _schemas() -> dict[str, Schema]:
    return {
        "Error": {
            "description": "Every error, as Panko shaped them (faultcode Client for 4xx, "
            "Server for 5xx). In XML: <error_message><error><faultcode/><faultstring/>"
            "<debuginfo/></error></error_message>.",
            "type": "object",
            "required": ["error_message"],
            "additionalProperties": False,
            "properties": {
                "error_message": {
                    "type": "object",
                    "required": ["faultcode", "faultstring", "debuginfo"],
                    "additionalProperties": False,
                    "properties": {
                        "faultcode": {"enum": ["Client", "Server"]},
                        "faultstring": {"type": "string"},
                        "debuginfo": {"type": "null"},
                    },
                }
            },
        },
        "Trait": {
            "type": "object",
            "required": ["name", "value", "type"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "value": {
                    "type": "string",
                    "description": "Numbers as text; datetimes in ISO 8601 (UTC, no offset).",
                },
                "type": {"enum": list(SUPPORTED_TYPES)},
            },
        },
        "Event": {
            "type": "object",
            "required": ["message_id", "event_type", "traits", "generated", "raw"],
            "additionalProperties": False,
            "properties": {
                "message_id": {"type": "string"},
                "event_type": {"type": "string"},
                "traits": {"type": "array", "items": _ref("Trait")},
                "generated": {"type": "string", "pattern": TIMESTAMP_OUT},
                "raw": {"description": "The raw notification as posted (any JSON value)."},
            },
        },
        "TraitDescription": {
            "type": "object",
            "required": ["type", "name"],
            "additionalProperties": False,
            "properties": {"type": {"enum": list(SUPPORTED_TYPES)}, "name": {"type": "string"}},
        },
        "Capabilities": {
            "type": "object",
            "required": ["api", "event_storage"],
            "additionalProperties": False,
            "properties": {
                "api": {"type": "object", "additionalProperties": {"type": "boolean"}},
                "event_storage": {"type": "object", "additionalProperties": {"type": "boolean"}},
            },
        },
        "Versions": {
            "type": "object",
            "required": ["versions"],
            "properties": {
                "versions": {
                    "type": "object",
                    "required": ["values"],
                    "properties": {
                        "values": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "links", "media-types", "status", "updated"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "status": {"type": "string"},
                                    "updated": {"type": "string"},
                                    "links": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["href", "rel"],
                                            "properties": {
                                                "href": {"type": "string"},
                                                "rel": {"type": "string"},
                                                "type": {"type": "string"},
                                            },
                                        },
                                    },
                                    "media-types": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["base", "type"],
                                            "properties": {
                                                "base": {"type": "string"},
                                                "type": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        }
                    },
                }
            },
        },
        "Int64": {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
        "FiniteNumber": {"type": "number", "description": "Any finite JSON number."},
        "TraitIn": _trait_in(),
        "EventIn": {
            "description": "One event, in the format of Ceilometer's http:// event publisher. "
            "Other members are ignored.",
            "type": "object",
            "required": ["message_id", "event_type", "generated"],
            "properties": {
                "message_id": {
                    **_name(),
                    "description": "Unique id; an event whose message_id is already stored is "
                    "a duplicate, skipped and reported.",
                },
                "event_type": _name(),
                "generated": {
                    "type": "string",
                    "format": "date-time",
                    "description": "ISO 8601; an offset is converted to UTC, none means UTC.",
                },
                "traits": {
                    "description": "No two traits of one event may share name and type.",
                    "oneOf": [{"type": "array", "items": _ref("TraitIn")}, {"type": "null"}],
                },
                "raw": {"description": "Stored and returned as given (any JSON value)."},
            },
        },
        "RecordResult": {
            "type": "object",
            "required": ["stored", "duplicates", "duplicate_message_ids"],
            "additionalProperties": False,
            "properties": {
                "stored": {"type": "integer", "minimum": 0},
                "duplicates": {"type": "integer", "minimum": 0},
                "duplicate_message_ids": {"type": "array", "items": {"type": "string"}},
            },
        },
        "StringList": {"type": "array", "items": {"type": "string"}},
    }


def _media(schema: Schema, xml: bool) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if xml:
        for media in XML_TYPES:
            content[media] = {
                "schema": {
                    "type": "string",
                    "description": "Panko's WSME-style XML: a <result> document whose list "
                    "members are <item> elements.",
                }
            }
    return content


def _error(description: str, xml: bool = True) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": _ref("Error")}}
    if xml:
        for media in XML_TYPES:
            content[media] = {"schema": {"type": "string", "description": "<error_message>"}}
    return {"description": description, "content": content}


RESPONSES: Final[dict[str, str]] = {
    "400": "The request is invalid: an unknown parameter, a bad filter, operator, type, "
    "value, sort, limit or marker, or an invalid event (the message names it). "
    "Nothing was stored.",
    "401": "Not authenticated: publisher Basic credentials that match no "
    "[api] publisher_credentials pair, a missing or invalid Keystone token (auth_mode = "
    "keystone), or (event types and traits) a caller the policy does not let in.",
    "403": "Identified, but the policy refuses: a caller that sees only its own events needs "
    "a user and a project; recording events needs the admin role or publisher credentials.",
    "404": "No such event, or not one the caller may see.",
    "406": "The Accept header allows none of the media types of the response (JSON, or XML "
    "on /v2).",
    "413": "The request body is larger than [api] max_request_body_size.",
    "415": "The request body is not JSON (Content-Type).",
    "503": "The database cannot be reached or refuses the operation (read-only, disk full). "
    "Nothing was stored; retry later (Retry-After).",
}


def _responses(ok: dict[str, Any], *errors: str, xml_406: bool = False) -> dict[str, Any]:
    """``ok`` plus the listed error statuses; 401 and 413 can answer any request.

    Errors follow the Accept header (JSON or XML). A 406 is in JSON, as the client accepts
    neither, except on ``/``, which serves only JSON: a client asking for XML gets its 406
    in XML (``xml_406``).
    """
    out = dict(ok)
    for status in sorted({"401", "413", *errors}):
        response = _error(RESPONSES[status], xml=status != "406" or xml_406)
        if status == "503":
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds after which to retry.",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                }
            }
        out[status] = response
    return out


def _head(operation: dict[str, Any], operation_id: str) -> dict[str, Any]:
    """The HEAD twin of a GET: the same statuses and headers, no body."""
    responses = {
        status: {key: value for key, value in response.items() if key != "content"}
        for status, response in operation["responses"].items()
    }
    return {**operation, "operationId": operation_id, "responses": responses}


def _ok(description: str, schema: Schema, xml: bool = True, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": _media(schema, xml)}}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


def _q(attr: str, items: Schema, description: str) -> dict[str, Any]:
    return {
        "name": f"q.{attr}",
        "in": "query",
        "style": "form",
        "explode": True,
        "description": description,
        "schema": {"type": "array", "items": items},
    }


EVENT_LIST_PARAMETERS: Final[list[dict[str, Any]]] = [
    _q(
        "field",
        {"type": "string", "pattern": NO_NUL},
        "Filter field: a trait name, or event_type, message_id, start_timestamp, "
        "end_timestamp, all_tenants. The n-th q.field pairs with the n-th q.op, q.type and "
        "q.value; once one filter names an op or a type, every filter must.",
    ),
    _q(
        "op",
        {"enum": list(OPERATORS)},
        "Operator (default eq); event fields take only eq (start_timestamp: ge, "
        "end_timestamp: le).",
    ),
    _q("type", {"enum": list(SUPPORTED_TYPES)}, "Type of the value (default string)."),
    _q(
        "value",
        {"type": "string", "pattern": NO_NUL},
        "Value; must convert to the filter's type.",
    ),
    {
        "name": "limit",
        "in": "query",
        "description": "Page size; 0 or absent: [api] default_api_return_limit; capped at "
        "[api] max_api_return_limit.",
        "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
    },
    {
        "name": "sort",
        "in": "query",
        "style": "form",
        "explode": True,
        "description": "key[:dir]; default generated:asc then message_id:asc.",
        "schema": {
            "type": "array",
            "items": {
                "type": "string",
                "pattern": f"^({'|'.join(SORT_KEYS)})(:({'|'.join(SORT_DIRS)}))?$",
            },
        },
    },
    {
        "name": "marker",
        "in": "query",
        "description": "message_id of the last event of the previous page; it must name an "
        "event the caller can see.",
        "schema": {"type": "string", "pattern": NO_NUL},
    },
]

EVENT_LIST_BODY: Final[dict[str, Any]] = {
    "required": False,
    "description": "The filters as a JSON object instead of the query string (as Panko "
    "accepted them).",
    "content": {
        JSON: {
            "schema": {
                "type": "object",
                "required": ["q"],
                "additionalProperties": False,
                "properties": {
                    "q": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "field": {"type": "string", "pattern": NO_NUL},
                                "op": {"enum": list(OPERATORS)},
                                "type": {"enum": list(SUPPORTED_TYPES)},
                                "value": {"type": "string", "pattern": NO_NUL},
                            },
                            "required": ["field", "value"],
                        },
                    },
                    "limit": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
                    "sort": {"type": "array", "items": {"type": "string"}},
                    "marker": {"type": "string", "pattern": NO_NUL},
                },
            }
        }
    },
}


def _paths() -> dict[str, Any]:
    versions = {
        "summary": "The version document (Panko answered it to any method).",
        "operationId": "versions",
        "tags": ["meta"],
        "security": [],
        "responses": _responses(
            _ok("API versions.", _ref("Versions"), xml=False), "406", xml_406=True
        ),
    }
    health = {
        "summary": "Health check for load balancers: 200 OK when the database answers.",
        "operationId": "healthcheck",
        "tags": ["meta"],
        "security": [],
        "responses": {
            "200": {"description": "The database answers.", "content": {"text/plain": {}}},
            "503": {
                "description": "The database does not answer.",
                "content": {"text/plain": {}},
            },
            **_responses({}),
        },
    }
    return {
        "/": {
            "get": versions,
            "head": _head(versions, "versions_head"),
            **{
                method: {**versions, "operationId": f"versions_{method}"}
                for method in ("post", "put", "delete", "patch")
            },
        },
        "/healthcheck": {"get": health, "head": _head(health, "healthcheck_head")},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of every API worker.",
                "description": "Metrics: annals_http_requests_total{method,route,status}, "
                "annals_http_request_duration_seconds{method,route} (buckets "
                f"{', '.join(str(b) for b in LATENCY_BUCKETS)} s), "
                "annals_http_requests_in_progress, annals_events_ingested_total, "
                "annals_events_duplicates_total, annals_events_rejected_total, "
                "annals_event_batches_rejected_total, "
                "annals_storage_errors_total{operation,kind}.",
                "operationId": "metrics",
                "tags": ["meta"],
                "security": [],
                "responses": _responses(
                    {
                        "200": {
                            "description": "Prometheus text format (OpenMetrics when asked).",
                            "content": {"text/plain": {}, "application/openmetrics-text": {}},
                        }
                    },
                ),
            }
        },
        "/v2/openapi.json": {
            "get": {
                "summary": "This document.",
                "operationId": "openapi",
                "tags": ["meta"],
                "security": [],
                "responses": _responses(
                    {"200": {"description": "OpenAPI 3.1.", "content": {JSON: {}}}}
                ),
            }
        },
        "/v2/capabilities": {
            "get": {
                "summary": "What the API and the storage engine support.",
                "operationId": "capabilities",
                "tags": ["v2"],
                "responses": _responses(_ok("Capabilities.", _ref("Capabilities")), "400", "406"),
            }
        },
        "/v2/events": {
            "get": {
                "summary": "List events (one page), filtered and scoped to what the caller may "
                "see.",
                "operationId": "events_list",
                "tags": ["v2"],
                "parameters": EVENT_LIST_PARAMETERS,
                "requestBody": EVENT_LIST_BODY,
                "responses": _responses(
                    _ok("Events.", {"type": "array", "items": _ref("Event")}),
                    "400",
                    "403",
                    "406",
                    "415",
                    "503",
                ),
            },
            "post": {
                "summary": "Record events (admins, or publishers with Basic credentials). "
                "All or nothing: an invalid event refuses the whole batch.",
                "operationId": "events_create",
                "tags": ["v2"],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "oneOf": [
                                    _ref("EventIn"),
                                    {"type": "array", "items": _ref("EventIn")},
                                ]
                            }
                        }
                    },
                },
                "responses": _responses(
                    _ok(
                        "Stored: how many, and the duplicates skipped.",
                        _ref("RecordResult"),
                        status="201",
                    ),
                    "400",
                    "403",
                    "406",
                    "415",
                    "503",
                ),
            },
        },
        "/v2/events/{message_id}": {
            "get": {
                "summary": "One event.",
                "operationId": "events_get",
                "tags": ["v2"],
                "parameters": [_path_param("message_id", "The event's message_id.")],
                "responses": _responses(
                    _ok("The event.", _ref("Event")), "400", "403", "404", "406", "503"
                ),
            }
        },
        "/v2/event_types": {
            "get": {
                "summary": "Names of the event types that have events (admins by default).",
                "operationId": "event_types_list",
                "tags": ["v2"],
                "responses": _responses(
                    _ok("Event type names, sorted.", _ref("StringList")), "400", "406", "503"
                ),
            }
        },
        "/v2/event_types/{event_type}": {
            "get": {
                "summary": "Unused (as in Panko): always 404.",
                "operationId": "event_types_get",
                "tags": ["v2"],
                "parameters": [_path_param("event_type", "An event type.")],
                "responses": _responses({}, "400", "404", "406"),
            }
        },
        "/v2/event_types/{event_type}/traits": {
            "get": {
                "summary": "Names and types of the traits seen on an event type.",
                "operationId": "traits_list",
                "tags": ["v2"],
                "parameters": [_path_param("event_type", "An event type.")],
                "responses": _responses(
                    _ok(
                        "Trait descriptions (by type, then name).",
                        {"type": "array", "items": _ref("TraitDescription")},
                    ),
                    "400",
                    "406",
                    "503",
                ),
            }
        },
        "/v2/event_types/{event_type}/traits/{trait_name}": {
            "get": {
                "summary": "Every value of one trait on an event type.",
                "operationId": "trait_values",
                "tags": ["v2"],
                "parameters": [
                    _path_param("event_type", "An event type."),
                    _path_param("trait_name", "A trait name."),
                ],
                "responses": _responses(
                    _ok("Trait values.", {"type": "array", "items": _ref("Trait")}),
                    "400",
                    "406",
                    "503",
                ),
            }
        },
    }


def _security(auth_mode: str) -> tuple[dict[str, Any], list[dict[str, list[str]]]]:
    """Security schemes and the default requirement for ``auth_mode``."""
    publisher = {
        "type": "http",
        "scheme": "basic",
        "description": "A user:password pair of [api] publisher_credentials (Ceilometer's "
        "http:// publisher). Only for POST /v2/events by default.",
    }
    if auth_mode == "keystone":
        schemes = {
            "keystone": {
                "type": "apiKey",
                "in": "header",
                "name": "X-Auth-Token",
                "description": "A Keystone token, validated by keystonemiddleware.",
            },
            "publisher": publisher,
        }
        return schemes, [{"keystone": []}, {"publisher": []}]
    headers = {
        "noauthUser": ("X-User-Id", "The caller's user id."),
        "noauthProject": ("X-Project-Id", "The caller's project id."),
        "noauthRoles": ("X-Roles", "Comma-separated roles; 'admin' passes the admin rules."),
    }
    schemes = {
        key: {
            "type": "apiKey",
            "in": "header",
            "name": name,
            "description": f"{text} auth_mode = noauth trusts these headers (loopback or a "
            "trusted proxy only); OpenStack-System-Scope: all stands for a system-scoped "
            "token. Without them a caller is anonymous, and the policy decides.",
        }
        for key, (name, text) in headers.items()
    }
    schemes["publisher"] = publisher
    # Identity is optional in noauth mode (the policy answers anonymous callers): {} says so.
    return schemes, [{key: [] for key in headers}, {"publisher": []}, {}]


def build_document(
    auth_mode: str = "noauth", server_url: str = "", metrics: bool = True
) -> dict[str, Any]:
    """The OpenAPI document for a server in ``auth_mode`` reached at ``server_url``, with
    ``/metrics`` when it is served."""
    schemes, requirement = _security(auth_mode)
    paths = _paths()
    if not metrics:
        del paths["/metrics"]
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Annals: Panko V2 event API",
            "version": __version__,
            "description": __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": server_url or "/"}],
        "security": requirement,
        "tags": [
            {"name": "v2", "description": "The Panko V2 API (JSON, or XML on Accept)."},
            {"name": "meta", "description": "Versions, health, metrics and this document."},
        ],
        "paths": paths,
        "components": {"schemas": _schemas(), "securitySchemes": schemes},
    }
    return doc


class OpenAPIResource:
    """``GET /v2/openapi.json``."""

    def __init__(self, auth_mode: str, metrics: bool) -> None:
        self.template = build_document(auth_mode, metrics=metrics)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        doc = copy.copy(self.template)
        doc["servers"] = [{"url": req.prefix.rstrip("/") or "/"}]
        resp.content_type = JSON
        resp.data = orjson.dumps(doc)
