"""The wire format: oslo.messaging envelopes, context, priorities, what is rejected. No broker."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from annals.ingest.definitions import Definitions, load_definitions
from annals.ingest.notifications import (
    Converter,
    Rejected,
    decode,
    parse_notification,
    parse_time,
)
from annals.ingest.transport import TransportURLError, parse_transport_url
from tests.ingest import samples
from tests.ingest.helpers import DEFINITIONS_FILE


@pytest.fixture(scope="module")
def converter() -> Converter:
    return Converter(Definitions(load_definitions(DEFINITIONS_FILE), False), ["error"])


def test_v2_envelope_and_unwrapped_form_are_the_same(converter: Converter) -> None:
    message = samples.instance_create_end()
    wrapped = converter.to_event(decode(json.dumps(samples.envelope(message))))
    unwrapped = converter.to_event(decode(json.dumps(message).encode()))
    assert wrapped is not None and wrapped == unwrapped
    assert wrapped.message_id == message["message_id"]
    assert wrapped.raw == {}  # store_raw is "error" here


def test_what_the_converter_sees() -> None:
    message = samples.instance_create_end()
    message.update({"_msg_id": "x", "_reply_q": "y", "_timeout": 3})
    notification = parse_notification(samples.envelope(message))
    assert notification.priority == "info"  # from the body, lowercased
    assert set(notification.body) == {"ctxt", "publisher_id", "event_type", "payload", "metadata"}
    assert notification.body["metadata"] == {
        "message_id": message["message_id"],
        "timestamp": "2026-11-24 10:00:00.123456",
    }
    ctxt = notification.body["ctxt"]
    assert ctxt["request_id"] == samples.REQUEST
    assert "auth_token" not in ctxt
    assert not {"_unique_id", "_msg_id", "unique_id"} & (set(ctxt) | set(notification.body))


def test_credentials_are_scrubbed_from_the_context() -> None:
    ctxt = samples.context(
        password="hunter2",
        service_token="t",
        auth_token_info={"a": 1},
        client_secret="s",
        application_credential_id="x",
    )
    notification = parse_notification(samples.oslo_message("a.b", {}, "p", ctxt=ctxt))
    assert {
        "password",
        "service_token",
        "auth_token",
        "auth_token_info",
        "client_secret",
        "application_credential_id",
    }.isdisjoint(notification.body["ctxt"])
    assert notification.body["ctxt"]["user_name"] == "alice"


def test_error_priority_is_stored_raw(converter: Converter) -> None:
    message = samples.oslo_message(
        "compute.instance.create.error",
        samples.nova_instance_payload(),
        "compute.h",
        priority="ERROR",
    )
    event = converter.to_event(parse_notification(message))
    assert event is not None
    assert event.raw["payload"]["instance_id"] == samples.INSTANCE
    assert event.raw["event_type"] == "compute.instance.create.error"
    assert "priority" not in event.raw


@pytest.mark.parametrize("priority", ["WARN", "debug", "AUDIT", "critical", "sample"])
def test_other_priorities_make_no_event(converter: Converter, priority: str) -> None:
    message = samples.oslo_message("compute.instance.create.end", {}, "c.h", priority=priority)
    assert converter.to_event(parse_notification(message)) is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "a notification must be a JSON object, not list"),
        (
            json.dumps({"oslo.version": "3.0", "oslo.message": "{}"}).encode(),
            "unsupported oslo.messaging envelope version '3.0'",
        ),
        (
            json.dumps({"oslo.version": "2.0", "oslo.message": {"a": 1}}).encode(),
            "the oslo.message field of the envelope is not a JSON string",
        ),
        (json.dumps({"oslo.version": "2.0", "oslo.message": "{bad"}).encode(), "not valid JSON"),
        (json.dumps({"event_type": "a"}).encode(), "unknown notification priority None"),
        (
            json.dumps({"event_type": "a", "priority": "LOUD"}).encode(),
            "unknown notification priority 'LOUD'",
        ),
    ],
)
def test_undecodable_messages_are_rejected(body: bytes, reason: str) -> None:
    with pytest.raises(Rejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode(body)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"message_id": None}, "message_id is missing"),
        ({"message_id": 17}, "message_id is missing or not a string"),
        ({"message_id": "m" * 256}, "message_id is longer than 255"),
        ({"event_type": ""}, "event_type is missing"),
        ({"event_type": "a\x00b"}, "event_type contains a NUL"),
        ({"timestamp": "yesterday"}, "timestamp is not an ISO 8601 time"),
        ({"timestamp": None}, "timestamp is not an ISO 8601 time"),
    ],
)
def test_unconvertible_notifications_are_rejected(
    converter: Converter, change: dict[str, Any], reason: str
) -> None:
    message = samples.instance_create_end()
    message.update(change)
    with pytest.raises(Rejected, match=reason):
        converter.to_event(parse_notification(message))


def test_python_json_extensions_are_accepted(converter: Converter) -> None:
    """Python services can send NaN and integers beyond 64 bits; the event still goes in."""
    message = samples.instance_create_end()
    text = (
        json.dumps(message)
        .replace('"memory_mb": 2048', '"memory_mb": NaN')
        .replace('"disk_gb": 20', '"disk_gb": 123456789012345678901234567890')
    )
    event = Converter(converter.definitions, ["info"]).to_event(decode(text.encode()))
    assert event is not None
    names = {t.name for t in event.traits}
    assert "memory_mb" not in names and "disk_gb" not in names
    assert event.raw == {}  # the raw body does not fit in JSON text; the event does


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2012-05-08 20:23:48.028195", dt.datetime(2012, 5, 8, 20, 23, 48, 28195)),
        ("2012-05-08 20:23:48", dt.datetime(2012, 5, 8, 20, 23, 48)),
        ("2012-05-08T20:23:48.123+02:00", dt.datetime(2012, 5, 8, 18, 23, 48, 123000)),
        ("2012-05-08T20:23:48Z", dt.datetime(2012, 5, 8, 20, 23, 48)),
        ("2012-05-08", dt.datetime(2012, 5, 8)),
        ("20120508T202348", dt.datetime(2012, 5, 8, 20, 23, 48)),
        ("2012-05-08 20:23", dt.datetime(2012, 5, 8, 20, 23)),
        ("2012-05-08T20:23:48.1234567", dt.datetime(2012, 5, 8, 20, 23, 48, 123456)),
    ],
)
def test_timestamps_parse_as_oslo_utils_does(text: str, expected: dt.datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("url", "urls", "ssl", "display"),
    [
        (
            "rabbit://guest:guest@127.0.0.1:5672/",
            ["amqp://guest:guest@127.0.0.1:5672/%2F"],
            False,
            "rabbit://guest@127.0.0.1:5672/",
        ),
        (
            "rabbit://u:p%40ss@h1:5673,u:p%40ss@h2/openstack?ssl=1",
            ["amqp://u:p%40ss@h1:5673/openstack", "amqp://u:p%40ss@h2:5672/openstack"],
            True,
            "rabbit://u@h1:5673,u@h2:5672/openstack",
        ),
        ("amqps://[::1]:5671/", ["amqp://[::1]:5671/%2F"], True, "amqps://[::1]:5671/"),
    ],
)
def test_transport_urls(url: str, urls: list[str], ssl: bool, display: str) -> None:
    broker = parse_transport_url(url)
    assert list(broker.urls) == urls
    assert broker.ssl is ssl
    assert broker.display == display
    assert "p@ss" not in broker.display


@pytest.mark.parametrize("url", ["kafka://h:9092/", "rabbit://h:notaport/", "rabbit://h:0/"])
def test_bad_transport_urls(url: str) -> None:
    with pytest.raises(TransportURLError):
        parse_transport_url(url)
