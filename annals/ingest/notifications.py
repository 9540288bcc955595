"""OpenStack notifications (oslo.messaging's rabbit wire format) -> Annals events.

A message body is either the v2 envelope ``{"oslo.version": "2.0", "oslo.message": "<JSON>"}``
or, from the old ``messaging`` driver, the message itself. The message carries
``message_id, publisher_id, event_type, priority, payload, timestamp`` and one
``_context_<key>`` per request-context field. It becomes what Ceilometer's converter sees,
``{ctxt, publisher_id, event_type, payload, metadata: {message_id, timestamp}}``, then an
event by its definition.

Where Annals differs from Ceilometer, on purpose:

* A trait value that cannot be converted (``memory_mb: "abc"`` as int, a malformed datetime,
  an integer beyond 64 bits, a non-finite float, text with NUL characters) drops **that
  trait**, with a warning; Ceilometer dropped the whole notification.
* Credentials in the context (``auth_token``, passwords, secrets) are removed before anything
  else, so neither a trait nor ``raw`` can ever hold them.
* A notification without a usable message_id, event_type, timestamp or priority cannot be
  stored: it is rejected and dead-lettered (Ceilometer logged and dropped it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import iso8601
import orjson

from annals.ingest.definitions import Definitions, TraitDefinition
from annals.models import NAME_LENGTH, Event, Trait, TraitType, TraitValue
from annals.query import INT64_MAX, INT64_MIN

LOG = logging.getLogger(__name__)

#: Priorities oslo.messaging knows; only EVENT_PRIORITIES become events, as in Ceilometer.
PRIORITIES = frozenset({"audit", "debug", "info", "warn", "error", "critical", "sample"})
EVENT_PRIORITIES = frozenset({"info", "error"})
#: Transport keys oslo.messaging strips before dispatching a notification.
TRANSPORT_KEYS = ("_msg_id", "_reply_q", "_timeout", "_unique_id")
#: Context keys containing one of these words are credentials and are removed.
SECRET_WORDS = ("token", "password", "secret", "credential")
#: Ceilometer cuts text traits to 255 characters (Panko's column size); so does Annals.
TEXT_TRAIT_LENGTH = 255


class Rejected(Exception):
    """The message cannot become an event; it is dead-lettered with this reason."""


@dataclass(frozen=True, slots=True)
class Notification:
    """A decoded notification, as oslo's dispatcher hands it to Ceilometer."""

    priority: str
    body: dict[str, Any]  # {ctxt, publisher_id, event_type, payload, metadata}

    @property
    def event_type(self) -> Any:
        return self.body["event_type"]

    @property
    def message_id(self) -> Any:
        return self.body["metadata"]["message_id"]


def load_json(data: bytes | str) -> Any:
    """JSON as Python services write it: orjson, else the standard library, which also takes
    integers beyond 64 bits, NaN and Infinity."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data)
    except (ValueError, TypeError) as exc:
        raise Rejected(f"not valid JSON: {exc}") from None


def unwrap(document: Any) -> dict[str, Any]:
    """The message inside an oslo.messaging v2 envelope, or the unwrapped message itself."""
    if isinstance(document, dict) and "oslo.version" in document and "oslo.message" in document:
        version = str(document["oslo.version"])
        if version.split(".", maxsplit=1)[0] != "2":
            raise Rejected(f"unsupported oslo.messaging envelope version {version!r}")
        inner = document["oslo.message"]
        if not isinstance(inner, (str, bytes)):
            raise Rejected("the oslo.message field of the envelope is not a JSON string")
        document = load_json(inner)
    if not isinstance(document, dict):
        raise Rejected(f"a notification must be a JSON object, not {type(document).__name__}")
    return document


def scrub(context: dict[str, Any]) -> dict[str, Any]:
    """The request context without its credentials."""
    return {
        key: value
        for key, value in context.items()
        if not any(word in key.lower() for word in SECRET_WORDS)
    }


def parse_notification(document: Any) -> Notification:
    """A decoded message body -> Notification; Rejected when it is not a notification."""
    message = unwrap(document)
    context: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for key, value in message.items():
        if key.startswith("_context_"):
            context[key[len("_context_") :]] = value
        elif key not in TRANSPORT_KEYS:
            fields[key] = value
    priority = fields.get("priority")
    if not isinstance(priority, str) or priority.lower() not in PRIORITIES:
        raise Rejected(f"unknown notification priority {priority!r}")
    body = {
        "ctxt": scrub(context),
        "publisher_id": fields.get("publisher_id"),
        "event_type": fields.get("event_type"),
        "payload": fields.get("payload"),
        "metadata": {"message_id": fields.get("message_id"), "timestamp": fields.get("timestamp")},
    }
    return Notification(priority.lower(), body)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise Rejected(f"{what} is missing or not a string")
    if len(value) > NAME_LENGTH:
        raise Rejected(f"{what} is longer than {NAME_LENGTH} characters")
    if not _storable_text(value):
        raise Rejected(f"{what} contains a NUL character or invalid Unicode")
    return value


def _storable_text(value: str) -> bool:
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, which the JSON fallback lets through
        return False
    return True


def parse_time(value: Any) -> dt.datetime:
    """oslo.utils' parse_isotime + normalize_time: ISO 8601 -> naive UTC; no zone means UTC."""
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp string: {value!r}")
    parsed = iso8601.parse_date(value)
    offset = parsed.utcoffset()
    return parsed.replace(tzinfo=None) - offset if offset else parsed.replace(tzinfo=None)


def convert_value(trait_type: TraitType, value: Any) -> TraitValue:
    """A matched value as a storable trait value, with Ceilometer's Python semantics
    (``str()`` for text, ``int()``, ``float()``); ValueError when it is not storable."""
    if trait_type is TraitType.STRING:
        text = str(value)[:TEXT_TRAIT_LENGTH]
        if not _storable_text(text):
            raise ValueError("text contains a NUL character or invalid Unicode")
        return text
    if trait_type is TraitType.INTEGER:
        try:
            number = int(value)
        except (TypeError, OverflowError) as exc:
            raise ValueError(str(exc)) from None
        if not INT64_MIN <= number <= INT64_MAX:
            raise ValueError("integer out of the 64-bit range")
        return number
    if trait_type is TraitType.FLOAT:
        try:
            real = float(value)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        if math.isnan(real) or math.isinf(real):
            raise ValueError("not a finite number")
        return real
    try:
        return parse_time(value)
    except OverflowError as exc:
        raise ValueError(str(exc)) from None


class Converter:
    """Notifications -> events, by the event definitions."""

    def __init__(self, definitions: Definitions, store_raw: Collection[str] = ()) -> None:
        self.definitions = definitions
        self.raw_priorities = frozenset(p.lower() for p in store_raw)

    def to_event(self, notification: Notification) -> Event | None:
        """The event of a notification; None when it is not meant to become one (priority
        other than info/error, or no definition with drop_unmatched_notifications)."""
        if notification.priority not in EVENT_PRIORITIES:
            return None
        body = notification.body
        message_id = _name(notification.message_id, "message_id")
        event_type = _name(notification.event_type, "event_type")
        try:
            generated = parse_time(body["metadata"]["timestamp"])
        except (ValueError, OverflowError) as exc:
            raise Rejected(f"timestamp is not an ISO 8601 time: {exc}") from None
        definition = self.definitions.match(event_type)
        if definition is None:
            LOG.debug("dropping %s (%s): no event definition matches", event_type, message_id)
            return None
        traits = tuple(
            trait
            for trait_def in definition.traits.values()
            if (trait := self._trait(trait_def, body, event_type, message_id)) is not None
        )
        return Event(message_id, event_type, generated, traits, self._raw(notification))

    @staticmethod
    def _trait(
        trait_def: TraitDefinition, body: Mapping[str, Any], event_type: str, message_id: str
    ) -> Trait | None:
        try:
            value = trait_def.extract(body)
            if value is None or (value == "" and trait_def.type is not TraitType.STRING):
                return None  # nova sends '' for unset dates
            return Trait(trait_def.name, trait_def.type, convert_value(trait_def.type, value))
        except Exception as exc:  # a plugin or a conversion: never more than this trait
            LOG.warning(
                "%s (%s): trait %s dropped: %s", event_type, message_id, trait_def.name, exc
            )
            return None

    def _raw(self, notification: Notification) -> Any:
        if notification.priority not in self.raw_priorities:
            return {}
        try:
            orjson.dumps(notification.body)
        except TypeError:  # an integer beyond 64 bits: the database column takes JSON text
            LOG.warning(
                "%s (%s): raw notification not stored: it does not fit in JSON text",
                notification.event_type,
                notification.message_id,
            )
            return {}
        return notification.body


def decode(body: bytes | str) -> Notification:
    """A message body off the wire -> Notification, or Rejected with the reason."""
    return parse_notification(load_json(body))
