"""Same definitions, same notifications: Annals' converter and Ceilometer's give the same event.

Ceilometer 27 (a test dependency) is the reference implementation of the definitions format.
Both converters read Ceilometer's own shipped ``event_definitions.yaml`` (what operators
carry over) and Annals' default file, and convert the same real-shaped notifications.
Ceilometer loads a definitions file in about 10 s (its JSONPath parser rebuilds its tables for
every path), hence the marker.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from annals.ingest.definitions import Definitions, load_definitions
from annals.ingest.notifications import Converter, parse_notification
from tests.ingest import samples
from tests.ingest.helpers import DEFINITIONS_FILE

pytestmark = pytest.mark.slow


def ceilometer_file() -> Path:
    spec = importlib.util.find_spec("ceilometer")
    if spec is None or spec.origin is None:
        pytest.fail("ceilometer (a test dependency) is not installed")
    return Path(spec.origin).parent / "pipeline" / "data" / "event_definitions.yaml"


def notifications() -> list[dict[str, Any]]:
    extra = [
        samples.oslo_message(
            "compute.instance.update",
            samples.nova_instance_payload(
                old_state="building", old_task_state="spawning", new_task_state=None
            ),
            "compute.h1",
        ),
        samples.oslo_message(
            "compute.instance.exists", samples.nova_instance_payload(), "compute.h1"
        ),
        samples.oslo_message(
            "network.create.end",
            {
                "network": {
                    "id": samples.NETWORK,
                    "name": "private",
                    "tenant_id": samples.PROJECT,
                    "status": "ACTIVE",
                    "shared": False,
                    "mtu": 1450,
                    "provider:network_type": "vxlan",
                    "provider:segmentation_id": 42,
                }
            },
            "network.controller-1",
        ),
        samples.oslo_message(
            "volume.attach.end",
            {
                "volume_id": samples.VOLUME,
                "tenant_id": samples.PROJECT,
                "size": 1,
                "volume_attachment": [{"server_id": None, "instance_uuid": samples.INSTANCE}],
                "glance_metadata": [{"key": "image_id", "value": samples.IMAGE}],
            },
            "volume.h",
        ),
        samples.oslo_message("full.sample", [{"counter_name": "x"}], "ceilometer.api"),
        samples.oslo_message(
            "objectstore.http.request",
            {
                "typeURI": "http://schemas.dmtf.org/cloud/audit/1.0/event",
                "action": "read",
                "eventTime": "2026-11-24T10:00:00.000001+00:00",
                "outcome": "success",
                "initiator": {
                    "id": samples.USER,
                    "project_id": None,
                    "typeURI": "service/security/account/user",
                },
                "target": {
                    "id": "account",
                    "typeURI": "service/storage/object",
                    "action": "public",
                    "metadata": {"path": "/v1/a"},
                },
                "observer": {"id": "target"},
            },
            "ceilometermiddleware",
            ctxt={},
        ),
        samples.oslo_message(
            "dns.domain.create",
            {"id": "z1", "name": "example.org.", "parent_domain_id": "p"},
            "central.h",
            timestamp="2026-11-24T10:00:00+02:00",
        ),
        samples.oslo_message("test.no.dot.publisher", {"x": 1}, "nodot"),
    ]
    return samples.all_samples() + extra


@pytest.fixture(scope="module")
def ceilometer_converters() -> dict[str, Any]:
    from ceilometer.event import converter as ceilometer_converter  # type: ignore[import-untyped]
    from stevedore import extension

    plugins: Any = extension.ExtensionManager(namespace="ceilometer.event.trait_plugin")
    conf = mock.Mock()
    conf.event.store_raw = ["info"]
    conf.event.drop_unmatched_notifications = False
    return {
        name: ceilometer_converter.NotificationEventsConverter(
            conf, yaml.safe_load(path.read_text()), plugins
        )
        for name, path in (("ceilometer", ceilometer_file()), ("annals", DEFINITIONS_FILE))
    }


@pytest.mark.parametrize("which", ["ceilometer", "annals"])
def test_same_events_as_ceilometer(which: str, ceilometer_converters: dict[str, Any]) -> None:
    path = ceilometer_file() if which == "ceilometer" else DEFINITIONS_FILE
    ours = Converter(Definitions(load_definitions(path), False), ["info"])
    theirs = ceilometer_converters[which]
    for message in notifications():
        notification = parse_notification(copy.deepcopy(message))
        event = ours.to_event(notification)
        reference = theirs.to_event(notification.priority, copy.deepcopy(notification.body))
        assert event is not None, message["event_type"]
        assert (event.message_id, event.event_type, event.generated) == (
            reference.message_id,
            reference.event_type,
            reference.generated,
        )
        assert sorted((t.name, int(t.type), t.value) for t in event.traits) == sorted(
            (t.name, t.dtype, t.value) for t in reference.traits
        ), message["event_type"]
        assert event.raw == reference.raw
