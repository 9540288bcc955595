"""Models -> JSON and WSME-style XML. The only place response field names are spelled out.

Panko rendered XML with WSME: the document element is ``<result>``, list members are
``<item>``, dictionaries are ``<item><key/><value/></item>`` lists, and a raw payload is
the Python ``repr`` of the decoded JSON. Field order follows Panko's output.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from xml.etree import ElementTree as ET

import orjson

from annals import timeutil
from annals.models import Event, Trait, TraitDescription, TraitType, TraitValue


class Format(enum.Enum):
    JSON = "application/json"
    XML = "application/xml; charset=UTF-8"
    TEXT_XML = "text/xml; charset=UTF-8"

    @property
    def is_xml(self) -> bool:
        return self is not Format.JSON


def trait_value_text(trait_type: TraitType, value: TraitValue) -> str:
    """Trait values travel as strings: str() of numbers, ISO 8601 of datetimes."""
    if trait_type is TraitType.DATETIME and not isinstance(value, (str, int, float)):
        return timeutil.isoformat(value)
    return str(value)


def trait_doc(trait: Trait) -> dict[str, str]:
    return {
        "name": trait.name,
        "value": trait_value_text(trait.type, trait.value),
        "type": trait.type.api_name,
    }


def event_doc(event: Event) -> dict[str, Any]:
    return {
        "message_id": event.message_id,
        "event_type": event.event_type,
        "traits": [trait_doc(t) for t in event.traits],
        "generated": timeutil.isoformat(event.generated),
        "raw": event.raw,
    }


def trait_description_doc(desc: TraitDescription) -> dict[str, str]:
    return {"type": desc.type.api_name, "name": desc.name}


# --- XML ---------------------------------------------------------------------------------


class XmlDict(dict[str, Any]):
    """A mapping rendered as WSME renders ``dict`` types: ``<item><key/><value/></item>``."""


class XmlRepr:
    """A value rendered as its Python repr (WSME's rendering of a ``json`` attribute)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _xml_fill(element: ET.Element, value: Any) -> None:
    if value is None:
        element.set("nil", "true")
    elif isinstance(value, XmlRepr):
        element.text = repr(value.value)
    elif isinstance(value, XmlDict):
        for key, item in value.items():
            entry = ET.SubElement(element, "item")
            _xml_fill(ET.SubElement(entry, "key"), key)
            _xml_fill(ET.SubElement(entry, "value"), item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _xml_fill(ET.SubElement(element, key), item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _xml_fill(ET.SubElement(element, "item"), item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = str(value)


def to_xml(value: Any, root: str = "result") -> bytes:
    element = ET.Element(root)
    _xml_fill(element, value)
    return _ascii(element)


def _ascii(element: ET.Element) -> bytes:
    """One line of ASCII, other characters as references (``&#233;``), as WSME wrote it."""
    text: bytes = ET.tostring(element, encoding="us-ascii", xml_declaration=False)
    return text


def xml_event(event: Event) -> dict[str, Any]:
    doc = event_doc(event)
    doc["raw"] = XmlRepr(event.raw)
    return doc


# --- rendering ----------------------------------------------------------------------------


def render(value: Any, fmt: Format) -> bytes:
    if fmt.is_xml:
        return to_xml(value)
    return orjson.dumps(value)


def render_events(events: Sequence[Event], fmt: Format) -> bytes:
    if fmt.is_xml:
        return to_xml([xml_event(e) for e in events])
    return orjson.dumps([event_doc(e) for e in events])


def render_event(event: Event, fmt: Format) -> bytes:
    if fmt.is_xml:
        return to_xml(xml_event(event))
    return orjson.dumps(event_doc(event))


def render_traits(traits: Iterable[Trait], fmt: Format) -> bytes:
    return render([trait_doc(t) for t in traits], fmt)


def render_trait_descriptions(descs: Iterable[TraitDescription], fmt: Format) -> bytes:
    return render([trait_description_doc(d) for d in descs], fmt)


def render_capabilities(api: Mapping[str, bool], storage: Mapping[str, bool], fmt: Format) -> bytes:
    if fmt.is_xml:
        return to_xml({"api": XmlDict(api), "event_storage": XmlDict(storage)})
    return orjson.dumps({"api": dict(api), "event_storage": dict(storage)})


def error_body(status: int, message: str, fmt: Format) -> bytes:
    """Panko's error shape: faultcode Client (4xx) or Server (5xx), debuginfo null."""
    fault = {
        "faultcode": "Client" if status < 500 else "Server",
        "faultstring": message,
        "debuginfo": None,
    }
    if fmt.is_xml:
        element = ET.Element("error_message")
        error = ET.SubElement(element, "error")
        ET.SubElement(error, "faultcode").text = fault["faultcode"]
        ET.SubElement(error, "faultstring").text = message
        ET.SubElement(error, "debuginfo")
        return _ascii(element).replace(b"<debuginfo />", b"<debuginfo/>")
    return orjson.dumps({"error_message": fault})
