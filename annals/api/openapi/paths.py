"""The operations of the OpenAPI document (``paths``): parameters, bodies and responses."""

from __future__ import annotations

from typing import Any, Final

from annals.api.metrics import LATENCY_BUCKETS
from annals.api.openapi.schemas import (
    JSON,
    NO_NUL,
    XML_TYPES,
    Schema,
    ref,
)
from annals.query import INT64_MAX, OPERATORS, SORT_DIRS, SORT_KEYS, SUPPORTED_TYPES


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
    content: dict[str, Any] = {JSON: {"schema": ref("Error")}}
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
    "503": "The database cannot be reached or refuses the operation (read-only, disk full); "
    "retry later (Retry-After). A batch answered 503 is stored whole or not at all (almost "
    "always not): posting it again is safe, stored events come back as duplicates.",
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


def paths_of() -> dict[str, Any]:
    """Every operation of the API."""
    versions = {
        "summary": "The version document (Panko answered it to any method).",
        "operationId": "versions",
        "tags": ["meta"],
        "security": [],
        "responses": _responses(
            _ok("API versions.", ref("Versions"), xml=False), "406", xml_406=True
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
                "responses": _responses(_ok("Capabilities.", ref("Capabilities")), "400", "406"),
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
                    _ok("Events.", {"type": "array", "items": ref("Event")}),
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
                                    ref("EventIn"),
                                    {"type": "array", "items": ref("EventIn")},
                                ]
                            }
                        }
                    },
                },
                "responses": _responses(
                    _ok(
                        "Stored: how many, and the duplicates skipped.",
                        ref("RecordResult"),
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
                    _ok("The event.", ref("Event")), "400", "403", "404", "406", "503"
                ),
            }
        },
        "/v2/event_types": {
            "get": {
                "summary": "Names of the event types that have events (admins by default).",
                "operationId": "event_types_list",
                "tags": ["v2"],
                "responses": _responses(
                    _ok("Event type names, sorted.", ref("StringList")), "400", "406", "503"
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
                        {"type": "array", "items": ref("TraitDescription")},
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
                    _ok("Trait values.", {"type": "array", "items": ref("Trait")}),
                    "400",
                    "406",
                    "503",
                ),
            }
        },
    }
