"""The schemas of the OpenAPI document (``components.schemas``) and their building blocks."""

from __future__ import annotations

from typing import Any, Final

from annals.models import OWNER_TRAITS
from annals.query import INT64_MAX, INT64_MIN, SUPPORTED_TYPES

JSON: Final = "application/json"
XML_TYPES: Final = ("application/xml", "text/xml")
Schema = dict[str, Any]

NO_NUL: Final = "^[^\\u0000]*$"
#: How Annals renders timestamps: ISO 8601, UTC, no offset, microseconds when non-zero.
TIMESTAMP_OUT: Final = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{6})?$"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def name_schema(max_length: int = 255) -> Schema:
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
    other_name = {**name_schema(), "not": {"enum": list(OWNER_TRAITS)}}
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
            _trait_tuple(name_schema(), 0, untyped),
            _trait_tuple(other_name, 1, text),
            _trait_tuple(owner_name, 1, owner_text),
            _trait_tuple(
                name_schema(),
                2,
                {"anyOf": [ref("Int64"), {"type": "string", "pattern": "^[+-]?[0-9]{1,18}$"}]},
            ),
            _trait_tuple(
                name_schema(),
                3,
                {
                    "anyOf": [
                        ref("FiniteNumber"),
                        {"type": "string", "pattern": "^[+-]?[0-9]{1,15}(\\.[0-9]{1,15})?$"},
                    ]
                },
            ),
            _trait_tuple(name_schema(), 4, {"type": "string", "format": "date-time"}),
        ],
    }


STRING: Final[Schema] = {"type": "string"}


def obj(properties: dict[str, Schema], *required: str, closed: bool = True) -> Schema:
    """An object with these properties, all required unless ``required`` names some."""
    doc: Schema = {
        "type": "object",
        "required": list(required or properties),
        "properties": properties,
    }
    if closed:
        doc["additionalProperties"] = False
    return doc


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def component_schemas() -> dict[str, Schema]:
    types = {"enum": list(SUPPORTED_TYPES)}
    link = obj({"href": STRING, "rel": STRING, "type": STRING}, "href", "rel", closed=False)
    media_type = obj({"base": STRING, "type": STRING}, closed=False)
    version = obj(
        {
            "id": STRING,
            "status": STRING,
            "updated": STRING,
            "links": array(link),
            "media-types": array(media_type),
        },
        closed=False,
    )
    flags = {"type": "object", "additionalProperties": {"type": "boolean"}}
    count = {"type": "integer", "minimum": 0}
    return {
        "Error": {
            **obj(
                {
                    "error_message": obj(
                        {
                            "faultcode": {"enum": ["Client", "Server"]},
                            "faultstring": STRING,
                            "debuginfo": {"type": "null"},
                        }
                    )
                }
            ),
            "description": "Every error, as Panko shaped them (faultcode Client for 4xx, "
            "Server for 5xx). In XML: <error_message><error><faultcode/><faultstring/>"
            "<debuginfo/></error></error_message>.",
        },
        "Trait": obj(
            {
                "name": STRING,
                "value": {
                    "type": "string",
                    "description": "Numbers as text; datetimes in ISO 8601 (UTC, no offset).",
                },
                "type": types,
            }
        ),
        "Event": obj(
            {
                "message_id": STRING,
                "event_type": STRING,
                "traits": array(ref("Trait")),
                "generated": {"type": "string", "pattern": TIMESTAMP_OUT},
                "raw": {"description": "The raw notification as posted (any JSON value)."},
            }
        ),
        "TraitDescription": obj({"type": types, "name": STRING}),
        "Capabilities": obj({"api": flags, "event_storage": flags}),
        "Versions": obj({"versions": obj({"values": array(version)}, closed=False)}, closed=False),
        "Int64": {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
        "FiniteNumber": {"type": "number", "description": "Any finite JSON number."},
        "TraitIn": _trait_in(),
        "EventIn": {
            **obj(
                {
                    "message_id": {
                        **name_schema(),
                        "description": "Unique id; an event whose message_id is already "
                        "stored is a duplicate, skipped and reported.",
                    },
                    "event_type": name_schema(),
                    "generated": {
                        "type": "string",
                        "format": "date-time",
                        "description": "ISO 8601; an offset is converted to UTC, none means UTC.",
                    },
                    "traits": {
                        "description": "No two traits of one event may share name and type.",
                        "oneOf": [array(ref("TraitIn")), {"type": "null"}],
                    },
                    "raw": {"description": "Stored and returned as given (any JSON value)."},
                },
                "message_id",
                "event_type",
                "generated",
                closed=False,
            ),
            "description": "One event, in the format of Ceilometer's http:// event publisher. "
            "Other members are ignored.",
        },
        "RecordResult": obj(
            {"stored": count, "duplicates": count, "duplicate_message_ids": array(STRING)}
        ),
        "StringList": array(STRING),
    }
