"""Real-shaped OpenStack notifications, as the services put them on RabbitMQ.

Payload shapes follow what each service sends (nova's legacy instance usage info, cinder's
volume usage, neutron's resource bodies, keystone's CADF events, heat's stack payload); ids
and names are made up. ``oslo_message`` builds the inner message, with the request context
flattened into ``_context_*`` keys; ``envelope`` wraps it as oslo.messaging's messagingv2
driver does.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

PROJECT = "5d5f1a3c9b7e4b0fa7a2d4c8e1f00001"
OTHER_PROJECT = "5d5f1a3c9b7e4b0fa7a2d4c8e1f00002"
USER = "0b8c2e4a6f1d4e3c9a7b5d3f1e2c0001"
REQUEST = "req-6f1c3e9a-2b4d-4c8e-9f0a-1b2c3d4e5f60"
INSTANCE = "a3e2f1b0-7c6d-4e5f-8a9b-0c1d2e3f4a5b"
VOLUME = "c0ffee00-1234-4abc-9def-0123456789ab"
PORT = "d1d2d3d4-aaaa-4bbb-8ccc-0123456789ef"
NETWORK = "e5e6e7e8-1111-4222-8333-444455556666"
IMAGE = "f00dbabe-9876-4543-8210-fedcba987654"


def context(**overrides: Any) -> dict[str, Any]:
    ctxt: dict[str, Any] = {
        "user_id": USER,
        "project_id": PROJECT,
        "user_name": "alice",
        "project_name": "web",
        "domain": None,
        "roles": ["member", "reader"],
        "is_admin": False,
        "request_id": REQUEST,
        "global_request_id": None,
        "auth_token": "gAAAAABsecret-token",
        "read_deleted": "no",
        "remote_address": "192.0.2.10",
    }
    ctxt.update(overrides)
    return ctxt


def oslo_message(
    event_type: str,
    payload: Any,
    publisher_id: str,
    *,
    message_id: str | None = None,
    priority: str = "INFO",
    timestamp: str = "2026-11-24 10:00:00.123456",
    ctxt: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The message oslo.messaging's Notifier builds (priority in upper case)."""
    message: dict[str, Any] = {
        "message_id": message_id or str(uuid.uuid4()),
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": priority,
        "payload": payload,
        "timestamp": timestamp,
        "_unique_id": uuid.uuid4().hex,
    }
    for key, value in (context() if ctxt is None else ctxt).items():
        message[f"_context_{key}"] = value
    return message


def envelope(message: dict[str, Any]) -> dict[str, Any]:
    return {"oslo.version": "2.0", "oslo.message": json.dumps(message)}


def nova_instance_payload(state: str = "active", **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "tenant_id": PROJECT,
        "user_id": USER,
        "instance_id": INSTANCE,
        "instance_type": "m1.small",
        "instance_type_id": 5,
        "instance_flavor_id": "2",
        "display_name": "web-01",
        "reservation_id": "r-3kd9x0aa",
        "hostname": "web-01",
        "host": "compute-3",
        "node": "compute-3.example.org",
        "availability_zone": "nova",
        "cell_name": "",
        "memory_mb": 2048,
        "disk_gb": 20,
        "root_gb": 20,
        "ephemeral_gb": 0,
        "vcpus": 1,
        "state": state,
        "state_description": "",
        "progress": "",
        "created_at": "2026-11-24 09:59:40+00:00",
        "launched_at": "2026-11-24T09:59:58.000000",
        "terminated_at": "",
        "deleted_at": "",
        "image_ref_url": f"http://glance.example.org:9292/images/{IMAGE}",
        "image_meta": {"base_image_ref": IMAGE, "min_disk": "20", "min_ram": "0"},
        "os_type": None,
        "architecture": "x86_64",
        "kernel_id": "",
        "ramdisk_id": "",
        "metadata": {},
        "fixed_ips": [
            {
                "address": "10.0.0.5",
                "type": "fixed",
                "version": 4,
                "floating_ips": [],
                "meta": {},
                "label": "private",
                "vif_mac": "fa:16:3e:00:00:01",
            }
        ],
        "audit_period_beginning": "2026-11-24 09:00:00",
        "audit_period_ending": "2026-11-24 10:00:00",
        "bandwidth": {},
    }
    payload.update(overrides)
    return payload


def instance_create_end(**kw: Any) -> dict[str, Any]:
    return oslo_message(
        "compute.instance.create.end",
        nova_instance_payload(),
        "compute.compute-3.example.org",
        **kw,
    )


def instance_delete_end(**kw: Any) -> dict[str, Any]:
    payload = nova_instance_payload(
        state="deleted",
        terminated_at="2026-11-24 18:30:00.500000",
        deleted_at="2026-11-24T18:30:01.000000",
    )
    return oslo_message(
        "compute.instance.delete.end",
        payload,
        "compute.compute-3.example.org",
        timestamp="2026-11-24 18:30:01.250000",
        **kw,
    )


def volume_create_end(**kw: Any) -> dict[str, Any]:
    payload = {
        "tenant_id": PROJECT,
        "user_id": USER,
        "host": "block1@lvm#LVM",
        "availability_zone": "nova",
        "volume_id": VOLUME,
        "volume_type": "8a1b2c3d-0000-4000-8000-00000000aaaa",
        "display_name": "data-01",
        "created_at": "2026-11-24T10:05:00+00:00",
        "launched_at": "2026-11-24T10:05:03+00:00",
        "status": "available",
        "snapshot_id": None,
        "size": 10,
        "replication_status": None,
        "replication_extended_status": None,
        "replication_driver_data": None,
        "metadata": [],
        "volume_attachment": [],
        "glance_metadata": [
            {"key": "image_id", "value": IMAGE},
            {"key": "image_name", "value": "ubuntu-24.04"},
        ],
    }
    return oslo_message(
        "volume.create.end",
        payload,
        "volume.block1@lvm",
        timestamp="2026-11-24 10:05:03.000001",
        **kw,
    )


def port_create_end(**kw: Any) -> dict[str, Any]:
    payload = {
        "port": {
            "id": PORT,
            "name": "web-01-eth0",
            "network_id": NETWORK,
            "tenant_id": OTHER_PROJECT,
            "project_id": OTHER_PROJECT,
            "mac_address": "fa:16:3e:00:00:01",
            "admin_state_up": True,
            "status": "DOWN",
            "device_id": INSTANCE,
            "device_owner": "compute:nova",
            "fixed_ips": [
                {"subnet_id": "9a9b9c9d-0000-4000-8000-000000000001", "ip_address": "10.0.0.5"}
            ],
            "allowed_address_pairs": [],
            "extra_dhcp_opts": [],
            "security_groups": ["0f0e0d0c-0000-4000-8000-000000000001"],
            "binding:host_id": "compute-3",
            "binding:vnic_type": "normal",
            "binding:vif_type": "unbound",
            "description": "",
            "tags": [],
            "created_at": "2026-11-24T10:01:00Z",
            "updated_at": "2026-11-24T10:01:00Z",
            "revision_number": 1,
        }
    }
    # An admin creates the port for another project: the owner is the port's project.
    ctxt = context(
        user_id="admin-user",
        project_id="admin-project",
        roles=["admin"],
        is_admin=True,
        tenant_id="admin-project",
    )
    return oslo_message(
        "port.create.end",
        payload,
        "network.controller-1",
        ctxt=ctxt,
        timestamp="2026-11-24 10:01:00.400000",
        **kw,
    )


def identity_authenticate(outcome: str = "success", **kw: Any) -> dict[str, Any]:
    payload = {
        "typeURI": "http://schemas.dmtf.org/cloud/audit/1.0/event",
        "eventType": "activity",
        "id": "b5f7b3f6-3c3e-5d53-9a0e-4b0b6b6d2b01",
        "eventTime": "2026-11-24T10:00:30.123456+0000",
        "action": "authenticate",
        "outcome": outcome,
        "initiator": {
            "typeURI": "service/security/account/user",
            "id": USER,
            "name": "alice",
            "domain_id": "default",
            "host": {"agent": "openstacksdk/4.1.0 keystoneauth1/5.8.0", "address": "192.0.2.10"},
            "credential": {"type": "token", "token": "***", "identity_provider": "keystone"},
        },
        "target": {"typeURI": "service/security/account/user", "id": "a1b2c3"},
        "observer": {"typeURI": "service/security", "id": "openstack:keystone-01"},
    }
    return oslo_message(
        "identity.authenticate",
        payload,
        "identity.keystone-01",
        ctxt={},
        timestamp="2026-11-24 10:00:30.200000",
        **kw,
    )


def stack_create_end(**kw: Any) -> dict[str, Any]:
    stack_arn = f"arn:openstack:heat::{PROJECT}:stacks/web/7b5e2d1c-0000-4000-8000-000000000001"
    payload = {
        "tenant_id": PROJECT,
        "user_id": "alice",
        "stack_identity": stack_arn,
        "stack_name": "web",
        "state": "CREATE_COMPLETE",
        "state_reason": "Stack CREATE completed successfully",
        "create_at": "2026-11-24T10:02:00Z",
        "description": "web tier",
        "tags": None,
        "updated_time": None,
    }
    ctxt = context(trustor_user_id="trustor-42", tenant_id=PROJECT)
    return oslo_message(
        "orchestration.stack.create.end",
        payload,
        "orchestration.heat-01",
        ctxt=ctxt,
        timestamp="2026-11-24 10:02:00.250000",
        **kw,
    )


def image_upload(**kw: Any) -> dict[str, Any]:
    payload = {
        "id": IMAGE,
        "name": "ubuntu-24.04",
        "status": "active",
        "owner": PROJECT,
        "size": 629145600,
        "virtual_size": None,
        "disk_format": "qcow2",
        "container_format": "bare",
        "visibility": "private",
        "protected": False,
        "checksum": "0123456789abcdef0123456789abcdef",
        "min_disk": 0,
        "min_ram": 0,
        "created_at": "2026-11-24T09:00:00Z",
        "updated_at": "2026-11-24T09:05:00Z",
        "deleted_at": None,
        "deleted": False,
        "properties": {},
        "tags": [],
        "os_hidden": False,
    }
    return oslo_message("image.upload", payload, "image.glance-01", **kw)


def all_samples() -> list[dict[str, Any]]:
    return [
        instance_create_end(),
        instance_delete_end(),
        volume_create_end(),
        port_create_end(),
        identity_authenticate(),
        stack_create_end(),
        image_upload(),
    ]
