"""Models -> JSON and WSME-style XML. The only place response field names are spelled out.

Panko rendered XML with WSME: the document element is ``<result>``, list members are
``<item>``, dictionaries are ``<item><key/><value/></item>`` lists, and a raw payload is
the Python ``repr`` of the decoded JSON. Field order follows Panko's output.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from xml.etree import ElementTree as ET

import orjson

from annals import timeutil
from annals.models import (
    Event,
    RawJSON,
    StoredTraits,
    Trait,
    TraitDescription,
    decode_raw,
    trait_doc,
)

#: Events per piece of a streamed event list: ~1.7 KB of JSON each for a typical
#: notification (13 traits, a 1 KB payload), so pieces of ~400 KB.
EVENTS_PER_CHUNK = 250
#: Trait values per piece of a streamed answer (an unpaginated endpoint: 180,000 values for
#: one trait of 1M events, 40 MB of documents if rendered at once).
TRAITS_PER_CHUNK = 2000
_Item = TypeVar("_Item")


class Format(enum.Enum):
    JSON = "application/json"
    XML = "application/xml; charset=UTF-8"
    TEXT_XML = "text/xml; charset=UTF-8"

    @property
    def is_xml(self) -> bool:
        return self is not Format.JSON


def event_doc(event: Event) -> dict[str, Any]:
    return {
        "message_id": event.message_id,
        "event_type": event.event_type,
        # Traits read from storage are copied as the JSON text stored with the event.
        "traits": orjson.Fragment(traits.text)
        if isinstance(traits := event.traits, StoredTraits)
        else [trait_doc(t) for t in traits],
        "generated": timeutil.isoformat(event.generated),
        # Stored payloads are copied as the JSON text they are (orjson wrote it), not decoded
        # and encoded again.
        "raw": orjson.Fragment(event.raw.text) if isinstance(event.raw, RawJSON) else event.raw,
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
    doc["traits"] = [trait_doc(t) for t in event.traits]
    doc["raw"] = XmlRepr(decode_raw(event.raw))
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


def stream_events(
    events: list[Event], fmt: Format, per_chunk: int = EVENTS_PER_CHUNK
) -> Iterator[bytes]:
    """The bytes of ``render_events(events, fmt)``, in pieces of ``per_chunk`` events.

    Only one piece exists at a time, never the whole document nor the documents of every
    event, and nothing is rendered before the first ``next()``. The list is taken over:
    events leave it as they are rendered, so that their memory is given back while the
    rest of the response is still being sent.
    """
    return _stream(
        events, fmt, per_chunk, doc=event_doc, xml_doc=xml_event, render_all=render_events
    )


def stream_traits(
    traits: list[Trait], fmt: Format, per_chunk: int = TRAITS_PER_CHUNK
) -> Iterator[bytes]:
    """The bytes of ``render_traits(traits, fmt)``, in pieces, as :func:`stream_events`."""
    return _stream(
        traits, fmt, per_chunk, doc=trait_doc, xml_doc=trait_doc, render_all=render_traits
    )


def _stream(
    items: list[_Item],
    fmt: Format,
    per_chunk: int,
    *,
    doc: Callable[[_Item], Any],
    xml_doc: Callable[[_Item], Any],
    render_all: Callable[[list[_Item], Format], bytes],
) -> Iterator[bytes]:
    if not items:
        yield render_all(items, fmt)
        return
    if fmt.is_xml:
        yield b"<result>"
        for batch in _batches(items, per_chunk):
            yield b"".join(_ascii(_xml_item(xml_doc(item))) for item in batch)
        yield b"</result>"
        return
    separator = b"["
    for batch in _batches(items, per_chunk):
        # orjson writes "[a,b]": the members go out as "[a,b", then ",c,d", ..., then "]".
        yield separator + orjson.dumps([doc(item) for item in batch])[1:-1]
        separator = b","
    yield b"]"


def _batches(items: list[_Item], size: int) -> Iterator[list[_Item]]:
    """``items``, ``size`` at a time, each batch removed from the list as it is handed out."""
    while items:
        batch = items[:size]
        del items[:size]
        yield batch


def _xml_item(doc: Any) -> ET.Element:
    """One member of an XML list, as ``to_xml`` builds it inside ``<result>``."""
    item = ET.Element("item")
    _xml_fill(item, doc)
    return item


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
