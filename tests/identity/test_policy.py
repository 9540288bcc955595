"""The policy: Panko's rule names and defaults through oslo.policy, and policy.yaml overrides."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from oslo_policy import policy as oslo_policy

from annals import config, policy
from annals.cli import main
from annals.errors import Forbidden, Unauthorized
from annals.ingest.events import parse_event
from annals.policy import Credentials, Policy
from annals.storage.base import StorageDriver
from tests.conftest import ADMIN, MEMBER_A

ROOT = Path(__file__).parent.parent.parent
RULES = (
    "context_is_admin",
    "segregation",
    "telemetry:events:index",
    "telemetry:events:show",
    "telemetry:events:create",
    "telemetry:event_types:index",
    "telemetry:traits:index",
)

PROJECT_ADMIN = Credentials("u", "p", ("admin",))
PROJECT_ADMIN_CASE = Credentials("u", "p", ("member", "Admin"))
MEMBER = Credentials("u", "p", ("member", "reader"))
NO_ROLES = Credentials("u", "p", ())
SYSTEM_READER = Credentials("u", None, ("reader",), system_scope="all")
SYSTEM_ADMIN = Credentials("u", None, ("admin", "member", "reader"), system_scope="all")
SYSTEM_MEMBER = Credentials("u", None, ("member",), system_scope="all")
DOMAIN_ADMIN = Credentials("u", None, ("admin",), domain_id="default")
PUBLISHER = Credentials("ceilometer", is_publisher=True)
ANONYMOUS = Credentials()


@pytest.mark.parametrize(
    ("creds", "allowed"),
    [
        (PROJECT_ADMIN, set(RULES)),
        (PROJECT_ADMIN_CASE, set(RULES)),
        (MEMBER, {"telemetry:events:index", "telemetry:events:show"}),
        (NO_ROLES, {"telemetry:events:index", "telemetry:events:show"}),
        (SYSTEM_READER, set(RULES) - {"context_is_admin", "telemetry:events:create"}),
        (SYSTEM_ADMIN, set(RULES)),
        (SYSTEM_MEMBER, {"telemetry:events:index", "telemetry:events:show"}),
        (DOMAIN_ADMIN, set()),  # every rule is for system or project scope
        (PUBLISHER, {"telemetry:events:index", "telemetry:events:show", "telemetry:events:create"}),
        (ANONYMOUS, {"telemetry:events:index", "telemetry:events:show"}),
    ],
)
def test_default_rules(creds: Credentials, allowed: set[str]) -> None:
    rules = policy.default_policy()
    assert {name for name in RULES if rules.allows(name, creds)} == allowed


def test_default_rule_strings() -> None:
    """Panko 10's check strings where Panko had the rule (README lists them all)."""
    defaults = {rule.name: rule.check_str for rule in Policy().enforcer.registered_rules.values()}
    assert defaults == {
        "context_is_admin": "role:admin",
        "system_reader": "role:reader and system_scope:all",
        "segregation": "rule:context_is_admin or rule:system_reader",
        "telemetry:events:index": "",
        "telemetry:events:show": "",
        "telemetry:events:create": "rule:context_is_admin or is_publisher:True",
        "telemetry:event_types:index": "rule:segregation",
        "telemetry:traits:index": "rule:segregation",
    }


def test_scopes_by_default() -> None:
    assert policy.event_scope(SYSTEM_READER).kind.value == "all"
    assert policy.event_scope(PROJECT_ADMIN).kind.value == "admin_project"
    assert policy.event_scope(MEMBER).kind.value == "owner"
    for creds in (
        SYSTEM_MEMBER,
        DOMAIN_ADMIN,
        PUBLISHER,
        ANONYMOUS,
        Credentials(None, None, ("reader",), system_scope="all"),
    ):
        with pytest.raises(Forbidden):
            policy.event_scope(creds)
    assert policy.metadata_scope(policy.TRAITS_INDEX, SYSTEM_READER).kind.value == "all"
    assert policy.metadata_scope(policy.TRAITS_INDEX, PROJECT_ADMIN).kind.value == "all"
    with pytest.raises(Unauthorized):
        policy.metadata_scope(policy.EVENT_TYPES_INDEX, MEMBER)


def write_conf(
    tmp_path: Path, policy_text: str | None = None, policy_file: str | None = None
) -> Path:
    lines = []
    if policy_text is not None:
        (tmp_path / "policy.yaml").write_text(policy_text)
        lines = ["[oslo_policy]", f"policy_file = {tmp_path / 'policy.yaml'}"]
    elif policy_file is not None:
        lines = ["[oslo_policy]", f"policy_file = {policy_file}"]
    path = tmp_path / "annals.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_policy_yaml_next_to_the_config_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text('"telemetry:events:index": "!"\n')
    conf_path = tmp_path / "annals.conf"
    conf_path.write_text("[api]\n")
    rules = Policy(config.load([str(conf_path)]))
    assert not rules.allows(policy.EVENTS_INDEX, PROJECT_ADMIN)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('"telemetry:events:index": "rule:no_such_rule"\n', "not well defined"),
        ('"a": "rule:b"\n"b": "rule:a"\n', "not well defined"),
        ('"telemetry:events:index": [\n', "while parsing"),
    ],
)
def test_broken_policy_files_are_configuration_errors(
    tmp_path: Path, text: str, words: str
) -> None:
    conf = config.load([str(write_conf(tmp_path, text))])
    with pytest.raises(policy.PolicyError, match=words):
        Policy(conf)


def test_a_named_policy_file_must_exist(tmp_path: Path) -> None:
    conf = config.load([str(write_conf(tmp_path, policy_file=str(tmp_path / "nope.yaml")))])
    with pytest.raises(policy.PolicyFileNotFound, match=r"nope\.yaml does not exist"):
        Policy(conf)
    # the default name is optional, as everywhere in OpenStack
    assert Policy(config.load([str(write_conf(tmp_path))])).allows("segregation", PROJECT_ADMIN)


@pytest.mark.db
@pytest.mark.backends("sqlite")
def test_policy_file_overrides_and_is_reloaded(
    driver: StorageDriver, make_client: Callable[..., httpx.Client], tmp_path: Path
) -> None:
    mine = {
        "message_id": "mine",
        "event_type": "t",
        "generated": "2024-01-01T00:00:00",
        "traits": [["project_id", 1, "project-a"], ["user_id", 1, "user-a"]],
    }
    driver.record_events([parse_event(mine)])
    path = tmp_path / "policy.yaml"
    # Panko's example: events for admins only
    path.write_text('"telemetry:events:index": "rule:context_is_admin"\n')
    client = make_client({"oslo_policy": {"policy_file": path}})
    resp = client.get("/v2/events", headers=MEMBER_A)
    assert resp.status_code == 403
    assert resp.json()["error_message"]["faultstring"] == "RBAC Authorization Failed"
    assert client.get("/v2/events/mine", headers=MEMBER_A).status_code == 200
    assert client.get("/v2/events", headers=ADMIN).status_code == 200

    # a changed file counts from the next request on, no restart
    path.write_text(
        '"telemetry:events:show": "!"\n"segregation": "role:auditor"\n'
        '"telemetry:event_types:index": ""\n'
    )
    stat = path.stat()
    os.utime(path, (stat.st_atime + 2, stat.st_mtime + 2))
    assert client.get("/v2/events/mine", headers=MEMBER_A).status_code == 403
    assert [e["message_id"] for e in client.get("/v2/events", headers=MEMBER_A).json()] == ["mine"]
    # role admin is no longer unrestricted: the admin sees only its own user's events
    assert client.get("/v2/events", headers=ADMIN).json() == []
    auditor = {**MEMBER_A, "X-Project-Id": "project-b", "X-Roles": "auditor"}
    all_tenants = {"q.field": "all_tenants", "q.value": "True"}
    assert len(client.get("/v2/events", params=all_tenants, headers=auditor).json()) == 1
    # event types opened to members: they see the types of their own events only
    assert client.get("/v2/event_types", headers=MEMBER_A).json() == ["t"]
    other = {**MEMBER_A, "X-User-Id": "user-z"}
    assert client.get("/v2/event_types", headers=other).json() == []


def test_policy_sample_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy-sample"]) == 0
    out = capsys.readouterr().out
    for name in RULES:
        assert f'#"{name}": ' in out
    assert '#"context_is_admin": "role:admin"' in out


def test_shipped_policy_sample_is_current(tmp_path: Path) -> None:
    out = tmp_path / "policy.yaml.sample"
    subprocess.run(
        [sys.executable, "-m", "annals", "policy-sample", "--output-file", str(out)], check=True
    )
    assert out.read_text() == (ROOT / "etc" / "policy.yaml.sample").read_text(), (
        "etc/policy.yaml.sample is stale: run 'annals policy-sample --output-file "
        "etc/policy.yaml.sample'"
    )


def test_oslo_policy_entry_points() -> None:
    """oslopolicy-sample-generator / -policy-generator / -checker find Annals' rules."""
    (rules,) = [
        e
        for e in importlib.metadata.entry_points(group="oslo.policy.policies")
        if e.name == "annals"
    ]
    assert {r.name for r in rules.load()()} >= set(RULES)
    (enforcer,) = [
        e
        for e in importlib.metadata.entry_points(group="oslo.policy.enforcer")
        if e.name == "annals"
    ]
    loaded = enforcer.load()()
    assert isinstance(loaded, oslo_policy.Enforcer)
    assert set(loaded.registered_rules) >= set(RULES)
