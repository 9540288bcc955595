"""Policy.allows remembers its decisions: always oslo.policy's, never one of replaced rules.

The reference is oslo.policy itself, uncached: ``Enforcer.enforce`` of another Policy on the
same configuration, which reloads the files on every call.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from annals import config, policies
from annals.policy import EVENTS_INDEX, SEGREGATION, Credentials, Policy
from tests.identity.test_policy import (
    ANONYMOUS,
    DOMAIN_ADMIN,
    MEMBER,
    NO_ROLES,
    PROJECT_ADMIN,
    PROJECT_ADMIN_CASE,
    PUBLISHER,
    SYSTEM_ADMIN,
    SYSTEM_MEMBER,
    SYSTEM_READER,
    write_conf,
)

RULE_NAMES = [rule.name for rule in policies.list_rules()]
CREDENTIALS = (
    PROJECT_ADMIN,
    PROJECT_ADMIN_CASE,
    MEMBER,
    NO_ROLES,
    Credentials("u", None, ("member",)),  # no project
    Credentials("u", None, ("admin",)),
    Credentials(None, "p", ("admin",)),
    SYSTEM_READER,
    SYSTEM_ADMIN,
    SYSTEM_MEMBER,
    DOMAIN_ADMIN,
    PUBLISHER,
    Credentials("ceilometer", "p", ("admin",), is_publisher=True),
    ANONYMOUS,
)
CUSTOM = (
    '"segregation": "role:auditor or rule:context_is_admin"\n'
    '"telemetry:events:index": "role:member or rule:segregation"\n'
    '"telemetry:events:show": "project_id:%(project_id)s or rule:system_reader"\n'
    '"telemetry:events:create": "is_publisher:True"\n'
)
OPEN = '"telemetry:events:index": ""\n'
CLOSED = '"telemetry:events:index": "!"\n'


def uncached(reference: Policy, rule: str, creds: Credentials) -> bool:
    return bool(reference.enforcer.enforce(rule, {}, creds.policy_values()))


def stamp(at_ns: int, *paths: Path) -> None:
    """Explicit, increasing mtimes: oslo.policy reloads only a file (or directory) whose
    mtime is greater than the one it read."""
    for path in paths:
        os.utime(path, ns=(at_ns, at_ns))


def conf_for(tmp_path: Path, kind: str) -> cfg.ConfigOpts | None:
    if kind == "defaults":
        return None
    return config.load([str(write_conf(tmp_path, CUSTOM if kind == "file" else None))])


@pytest.mark.parametrize("kind", ["defaults", "no file", "file"])
def test_decisions_are_oslo_policys(tmp_path: Path, kind: str) -> None:
    conf = conf_for(tmp_path, kind)
    rules, reference = Policy(conf), Policy(conf)
    expected = {
        (name, creds): uncached(reference, name, creds)
        for name in RULE_NAMES
        for creds in CREDENTIALS
    }
    assert len(set(expected.values())) == 2
    for _ in range(2):  # decided, then remembered
        assert {key: rules.allows(*key) for key in expected} == expected
        assert len(rules._loaded.memo) == len(expected)


def test_an_edited_or_removed_policy_file_counts_from_the_next_call(tmp_path: Path) -> None:
    conf = config.load([str(write_conf(tmp_path, '"telemetry:events:index": "role:admin"\n'))])
    path = tmp_path / "policy.yaml"
    rules, reference = Policy(conf), Policy(conf)
    rules.reload_interval = 3600  # the files' signature, not the timer
    start = path.stat().st_mtime_ns

    def check(index_for_member: bool, index_for_admin: bool) -> None:
        for creds, allowed in ((MEMBER, index_for_member), (PROJECT_ADMIN, index_for_admin)):
            assert rules.allows(EVENTS_INDEX, creds) is allowed
            assert uncached(reference, EVENTS_INDEX, creds) is allowed

    check(False, True)
    path.write_text(CLOSED)
    stamp(start + 2 * 10**9, path)
    check(False, False)
    path.write_text(CLOSED.replace("!", "@"))  # same size, later mtime
    stamp(start + 4 * 10**9, path)
    check(True, True)
    path.write_text(CLOSED)
    stamp(start + 6 * 10**9, path)
    check(False, False)
    path.unlink()  # oslo.policy then reads no rules: the defaults again
    check(True, True)
    path.write_text(CLOSED)
    stamp(start + 8 * 10**9, path)
    check(False, False)


def test_policy_dirs_count_from_the_next_call(tmp_path: Path) -> None:
    policy_d = tmp_path / "policy.d"
    policy_d.mkdir()
    conf_path = tmp_path / "annals.conf"
    conf_path.write_text(f"[oslo_policy]\npolicy_dirs = {policy_d}\n")
    conf = config.load([str(conf_path)])
    start = time.time_ns()
    stamp(start, policy_d)
    rules, reference = Policy(conf), Policy(conf)
    rules.reload_interval = 3600

    def check(member: bool) -> None:
        assert rules.allows(EVENTS_INDEX, MEMBER) is member
        assert uncached(reference, EVENTS_INDEX, MEMBER) is member
        assert rules.allows(EVENTS_INDEX, PROJECT_ADMIN)

    check(True)
    (policy_d / "10-admins.yaml").write_text('"telemetry:events:index": "role:admin"\n')
    stamp(start + 2 * 10**9, policy_d, policy_d / "10-admins.yaml")
    check(False)
    (policy_d / "10-admins.yaml").write_text(
        '"telemetry:events:index": "role:member or role:admin"\n'
    )
    stamp(start + 4 * 10**9, policy_d / "10-admins.yaml")
    check(True)
    (policy_d / "20-admins.yaml").write_text('"telemetry:events:index": "role:admin"\n')
    stamp(start + 6 * 10**9, policy_d, policy_d / "20-admins.yaml")
    check(False)
    (policy_d / "20-admins.yaml").unlink()
    stamp(start + 8 * 10**9, policy_d)
    check(True)


def test_a_new_policy_file_counts_within_the_reload_interval(tmp_path: Path) -> None:
    conf = config.load([str(write_conf(tmp_path))])  # the default policy.yaml: none yet
    rules = Policy(conf)
    assert rules.reload_interval == 1.0
    rules.reload_interval = 3600
    assert rules.allows(EVENTS_INDEX, MEMBER)
    (tmp_path / "policy.yaml").write_text(CLOSED)
    # only oslo.policy's search finds a new file, and allows() searches once an interval
    assert rules.allows(EVENTS_INDEX, MEMBER)
    rules.reload_interval = 0.05
    time.sleep(0.06)
    assert not rules.allows(EVENTS_INDEX, MEMBER)
    assert rules.enforcer.policy_path == str(tmp_path / "policy.yaml")
    # found, it is watched: an edit counts from the next call
    rules.reload_interval = 3600
    (tmp_path / "policy.yaml").write_text(OPEN)
    stamp(time.time_ns() + 2 * 10**9, tmp_path / "policy.yaml")
    assert rules.allows(EVENTS_INDEX, MEMBER)


def test_a_full_memo_starts_over(tmp_path: Path) -> None:
    conf = conf_for(tmp_path, "file")
    rules, reference = Policy(conf), Policy(conf)
    rules.memo_limit = 5
    callers = [
        Credentials(f"u{i}", f"p{i % 3}", ("admin",) if i % 4 == 0 else ("member",))
        for i in range(12)
    ] + [SYSTEM_READER, PUBLISHER, ANONYMOUS]
    sizes = set()
    for _ in range(2):
        for creds in callers:
            for name in (EVENTS_INDEX, SEGREGATION, "telemetry:events:create"):
                assert rules.allows(name, creds) is uncached(reference, name, creds)
                sizes.add(len(rules._loaded.memo))
    assert sizes == {1, 2, 3, 4, 5}


def test_concurrent_callers_keep_no_decision_of_replaced_rules(tmp_path: Path) -> None:
    conf = config.load([str(write_conf(tmp_path, OPEN))])
    path = tmp_path / "policy.yaml"
    rules = Policy(conf)
    rules.reload_interval = 3600
    callers = [Credentials(f"u{i}", "p", ("member",)) for i in range(8)]
    final = threading.Event()
    stop = threading.Event()
    after_final: list[bool] = []

    def call() -> None:
        while not stop.is_set():
            settled = final.is_set()
            for creds in callers:
                allowed = rules.allows(EVENTS_INDEX, creds)
                rules.allows(SEGREGATION, creds)
                if settled:
                    after_final.append(allowed)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        start = path.stat().st_mtime_ns
        for i in range(1, 42):  # ends closed
            path.write_text(CLOSED if i % 2 else OPEN)
            stamp(start + i * 10**9, path)
            time.sleep(0.002)
        final.set()
        time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert after_final
    assert not any(after_final)


def test_rules_a_miss_has_loaded_count_for_every_caller(tmp_path: Path) -> None:
    """oslo.policy's enforce() loads too: what it finds replaces the remembered decisions."""
    rules = Policy(config.load([str(write_conf(tmp_path))]))  # policy_dirs: policy.d
    rules.reload_interval = 3600
    assert rules.allows(EVENTS_INDEX, MEMBER)
    (tmp_path / "policy.d").mkdir()
    (tmp_path / "policy.d" / "closed.yaml").write_text(CLOSED)
    assert not rules.allows(EVENTS_INDEX, NO_ROLES)  # not remembered: found by enforce()
    assert not rules.allows(EVENTS_INDEX, MEMBER)


def test_rules_set_through_the_enforcer_count() -> None:
    rules = Policy()
    assert rules.allows(EVENTS_INDEX, MEMBER)
    rules.enforcer.set_rules(oslo_policy.Rules.from_dict({EVENTS_INDEX: "role:admin"}))
    assert not rules.allows(EVENTS_INDEX, MEMBER)
