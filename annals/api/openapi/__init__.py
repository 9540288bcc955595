"""The OpenAPI 3.1 description of the API, served at ``GET /v2/openapi.json``.

Written by hand, as data, next to the code it describes (schemas.py: the schemas; paths.py:
the operations); ``tests/reliability/test_openapi.py`` produces every response documented
here and validates it against its schema, and a schemathesis run fuzzes a live server with
it. The document depends on ``[api] auth_mode``: only the way callers identify themselves
differs (identity headers or Keystone tokens).
"""

from __future__ import annotations

import copy
from typing import Any, Final

import falcon
import orjson

from annals import __version__
from annals.api.openapi.paths import paths_of
from annals.api.openapi.schemas import JSON, component_schemas

DESCRIPTION: Final = """\
The Panko V2 event API of Annals, in JSON or (on `Accept: application/xml`) Panko's XML.

Errors have one shape: `{"error_message": {"faultcode": "Client"|"Server", "faultstring": \
"...", "debuginfo": null}}`. A 503 (database unavailable, read-only or full) carries \
`Retry-After`. A batch is stored whole or not at all; one that got no 201 can be posted \
again (events already stored come back as duplicates).

Some rules cannot be written in JSON Schema, and requests that the schemas accept but that \
break one of them get a 400: the n-th `q.field` pairs with the n-th `q.op`, `q.type` and \
`q.value`, and each value must convert to its type; a `marker` must name an event the caller \
can see; filters come from the query string or a JSON body, not both; two traits of one \
event may not share name and type; untyped (dtype 0) trait values are stored as text of at \
most 500 characters.
"""


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
    paths = paths_of()
    if not metrics:
        del paths["/metrics"]
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Annals: Panko V2 event API",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": server_url or "/"}],
        "security": requirement,
        "tags": [
            {"name": "v2", "description": "The Panko V2 API (JSON, or XML on Accept)."},
            {"name": "meta", "description": "Versions, health, metrics and this document."},
        ],
        "paths": paths,
        "components": {"schemas": component_schemas(), "securitySchemes": schemes},
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
