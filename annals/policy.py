"""Who may do what, and which events a caller may see.

Decisions go through oslo.policy with the rules of :mod:`annals.policies` (Panko's names; a
``policy.yaml`` named by ``[oslo_policy] policy_file`` overrides them). Visibility is then
applied by rewriting the query (:func:`scope_query`, :func:`metadata_scope`) before it
reaches storage, never by filtering results afterwards:

* ``telemetry:events:index`` / ``telemetry:events:show`` refused: 403;
* a caller passing ``segregation`` (by default: role admin, or a system-scoped reader) is
  unrestricted. Project-scoped, it sees the events of its own project and those carrying
  no ``project_id`` trait; with ``all_tenants=True`` everything (Panko's quirks kept: only
  the first true ``all_tenants`` widens, a later one is an ordinary trait filter).
  System-scoped, it sees everything, and ``all_tenants`` changes nothing;
* anyone else needs a user and a project (403 otherwise) and sees only the events whose
  ``project_id`` and ``user_id`` string traits are its own; its ``all_tenants`` is an
  ordinary trait filter, exactly as in Panko;
* event types, trait descriptions and trait values need ``telemetry:event_types:index`` /
  ``telemetry:traits:index`` (401 otherwise; by default only ``segregation`` passes, as
  in Panko). An unrestricted caller sees those of every event; a caller let in by a custom
  policy only those of the events it could list itself.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from annals import config, policies
from annals import query as q
from annals.errors import Forbidden, Unauthorized

CONTEXT_IS_ADMIN = "context_is_admin"
SEGREGATION = "segregation"
EVENTS_INDEX = "telemetry:events:index"
EVENTS_SHOW = "telemetry:events:show"
EVENTS_CREATE = "telemetry:events:create"
EVENT_TYPES_INDEX = "telemetry:event_types:index"
TRAITS_INDEX = "telemetry:traits:index"

#: The only system scope Keystone issues.
SYSTEM_ALL = "all"
#: oslo.policy's default ``[oslo_policy] policy_file``: looked up next to the config files.
DEFAULT_POLICY_FILE = "policy.yaml"


@dataclass(frozen=True, slots=True)
class Credentials:
    """The caller, from a validated Keystone token or (noauth) from identity headers."""

    user_id: str | None = None
    project_id: str | None = None
    roles: tuple[str, ...] = ()
    system_scope: str | None = None
    domain_id: str | None = None
    #: Authenticated by ``[api] publisher_credentials`` (HTTP Basic), not by Keystone.
    is_publisher: bool = False

    @property
    def is_admin(self) -> bool:
        """Has the role admin (case-insensitive). Decisions use the policy, not this."""
        return any(role.lower() == "admin" for role in self.roles)

    @property
    def is_system_scoped(self) -> bool:
        return self.system_scope == SYSTEM_ALL

    @classmethod
    def from_headers(
        cls,
        user: str | None,
        project: str | None,
        roles: str | None,
        system_scope: str | None = None,
    ) -> Credentials:
        return cls(
            user_id=user or None,
            project_id=project or None,
            roles=tuple(r.strip() for r in (roles or "").split(",") if r.strip()),
            system_scope=(system_scope or "").strip() or None,
        )

    def policy_values(self) -> dict[str, Any]:
        """The credentials as oslo.policy reads them (oslo.context's key names)."""
        return {
            "user_id": self.user_id,
            "project_id": self.project_id,
            "roles": list(self.roles),
            "system_scope": self.system_scope,
            "domain_id": self.domain_id,
            "is_publisher": self.is_publisher,
        }


class PolicyError(cfg.Error):
    """A policy file that cannot be parsed, or rules naming undefined or cyclic rules."""


class PolicyFileNotFound(PolicyError):
    """An explicitly configured ``[oslo_policy] policy_file`` that does not exist."""


class Policy:
    """An oslo.policy enforcer with Annals' defaults registered.

    With a ConfigOpts, ``[oslo_policy] policy_file`` (and ``policy_dirs``) override the
    defaults and are re-read when they change; without one, the defaults alone apply.

    Decisions are remembered per (rule, credentials): the target is always empty, so
    nothing else enters them. oslo.policy's own ``enforce`` re-resolves and stats its
    files on every call; :meth:`allows` instead compares a signature of the files the
    last load read (the policy file and the files of the ``policy_dirs`` found, by
    mtime, size and inode; a missing one counts too) and reloads as soon as it changes:
    an edited, replaced or removed file counts from the next call on. A file oslo.policy
    has not found yet (the default ``policy.yaml`` is optional, and so is a ``policy.d``
    directory) can only be discovered by its search next to the configuration files,
    which :meth:`allows` repeats at most every :attr:`reload_interval` seconds: a newly
    created file counts within that delay. The decisions are forgotten whenever a load
    replaces the enforcer's rules (oslo.policy builds new ``Rules`` for every change it
    reads from a file, and so does ``enforcer.set_rules``; changing the rules in place,
    with ``set_rules(..., overwrite=False)``, is not noticed). A remembered decision costs a
    few ``os.stat`` calls; loads and evaluations take turns under a lock, remembered
    decisions are read without one (gunicorn's gthread workers share a Policy).
    """

    #: Seconds after which :meth:`allows` reloads even though no file it watches changed,
    #: to discover policy files created since the last load (decisions are kept if the
    #: load changes nothing).
    reload_interval: float = 1.0
    #: Decisions remembered before the memo starts over (users and projects vary).
    memo_limit: int = 4096

    def __init__(self, conf: cfg.ConfigOpts | None = None) -> None:
        defaults = policies.list_rules()
        self.enforcer = oslo_policy.Enforcer(conf or cfg.ConfigOpts(), use_conf=conf is not None)
        self.enforcer.register_defaults(defaults)
        self._watching = conf is not None
        self._lock = threading.Lock()
        if conf is None:
            self.enforcer.set_rules({rule.name: rule.check for rule in defaults}, use_conf=False)
        else:
            _check_policy_file(conf)
        try:
            self._loaded = self._load(None)
            self.enforcer.check_rules(raise_on_violation=True)
        except (ValueError, oslo_policy.InvalidDefinitionError) as exc:
            where = self.enforcer.policy_path or "the policy rules"
            raise PolicyError(f"{where}: {exc}") from None

    def allows(self, rule: str, creds: Credentials) -> bool:
        """Whether ``rule`` passes for ``creds`` (False for a scope the rule refuses)."""
        key = (rule, creds)
        loaded = self._loaded
        if not self._stale(loaded):
            decision = loaded.memo.get(key)
            if decision is not None:
                return decision
        # Loads and evaluations take turns (oslo.policy fills new rules in several steps,
        # and an evaluation amid them could be remembered): so a decision is always made
        # under complete rules, and stays in the memo of the rules it was made under.
        with self._lock:
            loaded = self._loaded
            if self._stale(loaded):
                loaded = self._loaded = self._load(loaded)
            decision = loaded.memo.get(key)
            if decision is None:
                # enforce() loads too: if it replaces the rules (a policy file found), the
                # next call sees them replaced, and this memo is dropped with the old ones
                decision = bool(self.enforcer.enforce(rule, {}, creds.policy_values()))
                if len(loaded.memo) >= self.memo_limit:
                    loaded.memo.clear()
                loaded.memo[key] = decision
            return decision

    def _stale(self, loaded: _Loaded) -> bool:
        """Whether the rules may differ from those ``loaded`` decided under: replaced by
        oslo.policy or a caller of the enforcer, or files changed, or time to look."""
        if loaded.rules is not self.enforcer.rules:
            return True
        return self._watching and (
            self.enforcer.policy_path != loaded.policy_path
            or time.monotonic() - loaded.at >= self.reload_interval
            or _signature(loaded.watched) != loaded.signature
        )

    def _load(self, previous: _Loaded | None) -> _Loaded:
        """``load_rules()``, with what it read as of before (a change during the load is
        then seen by the next call). Any reload oslo.policy makes replaces its ``rules``
        object (``overwrite`` is left True): the same object, the same decisions."""
        at = time.monotonic()
        policy_path = self.enforcer.policy_path
        watched = self._watched(policy_path) if self._watching else ()
        signature = _signature(watched)
        self.enforcer.load_rules()
        rules = self.enforcer.rules
        memo = previous.memo if previous is not None and previous.rules is rules else {}
        return _Loaded(rules, policy_path, watched, signature, at, memo)

    def _watched(self, policy_path: str | None) -> tuple[str, ...]:
        """The files ``load_rules()`` reads: the policy file once found, and each
        ``policy_dirs`` directory found with its entries (its mtime changes with them)."""
        paths = [policy_path] if policy_path else []
        conf = self.enforcer.conf
        for name in conf.oslo_policy.policy_dirs:
            found = conf.find_file(name)
            if not found:
                continue
            paths.append(found)
            try:
                entries = sorted(os.listdir(found))
            except OSError:
                continue
            paths.extend(os.path.join(found, entry) for entry in entries)
        return tuple(paths)


_Stat = tuple[int, int, int] | None


@dataclass(frozen=True, slots=True, eq=False)
class _Loaded:
    """One load of the rules: the decisions made under it and what it read."""

    rules: oslo_policy.Rules
    #: ``enforcer.policy_path`` before the load (None: not found yet).
    policy_path: str | None
    watched: tuple[str, ...]
    signature: tuple[_Stat, ...]
    #: ``time.monotonic()`` at the load.
    at: float
    memo: dict[tuple[str, Credentials], bool] = field(default_factory=dict)


def _signature(paths: tuple[str, ...]) -> tuple[_Stat, ...]:
    stats: list[_Stat] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stats.append(None)
        else:
            stats.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stats)


def _check_policy_file(conf: cfg.ConfigOpts) -> None:
    """oslo.policy silently falls back to the defaults when the policy file is missing:
    right for the default name (no file is the normal case), wrong for a file the operator
    named."""
    configured: str = conf.oslo_policy.policy_file
    if configured != DEFAULT_POLICY_FILE and not conf.find_file(configured):
        raise PolicyFileNotFound(
            f"[oslo_policy] policy_file {configured} does not exist (nor next to the "
            "configuration files)"
        )


@functools.cache
def default_policy() -> Policy:
    """The built-in defaults, for callers that have no configuration (tests, tools)."""
    return Policy()


def get_enforcer() -> oslo_policy.Enforcer:
    """Entry point ``oslo.policy.enforcer`` for the oslopolicy-* tools.

    Reads the usual configuration files (``/etc/annals/annals.conf``, ...) so that
    ``oslopolicy-policy-generator --namespace annals`` shows the effective policy.
    """
    return Policy(config.load(cfg.find_config_files(project="annals"))).enforcer


# --- decisions ---------------------------------------------------------------------------


def _rules(rules: Policy | None) -> Policy:
    return rules if rules is not None else default_policy()


def require_context(creds: Credentials) -> None:
    """Panko's ``requires_context``: project-scoped event access needs a user and a project."""
    if not creds.user_id or not creds.project_id:
        raise Forbidden("RBAC Authorization Failed")


def authorize(rule: str, creds: Credentials, rules: Policy | None = None) -> None:
    """Enforce one of the API rules, with Panko's status for each (403, or 401)."""
    if _rules(rules).allows(rule, creds):
        return
    if rule in (EVENT_TYPES_INDEX, TRAITS_INDEX):
        raise _not_authorized(creds)
    if rule == EVENTS_CREATE:
        raise Forbidden("RBAC Authorization Failed: recording events requires the admin role")
    raise Forbidden("RBAC Authorization Failed")


def _not_authorized(creds: Credentials) -> Unauthorized:
    if creds.project_id:
        return Unauthorized(f"Not Authorized to access project {creds.project_id}")
    return Unauthorized("Not Authorized: event types and traits are for admins only")


def require_admin(creds: Credentials, rules: Policy | None = None) -> None:
    """Panko's ``requires_admin`` for event types and traits (401 when refused)."""
    authorize(EVENT_TYPES_INDEX, creds, rules)


def event_scope(creds: Credentials, rules: Policy | None = None) -> q.Scope:
    """The events a caller may see before any all_tenants request."""
    unrestricted = _rules(rules).allows(SEGREGATION, creds)
    if unrestricted and creds.is_system_scoped:
        if not creds.user_id:
            raise Forbidden("RBAC Authorization Failed")
        return q.Scope.everything()
    require_context(creds)
    if unrestricted:
        return q.Scope(q.ScopeKind.ADMIN_PROJECT, project_id=creds.project_id)
    return q.Scope(q.ScopeKind.OWNER, project_id=creds.project_id, user_id=creds.user_id)


def scope_query(
    parsed: q.ParsedConditions,
    creds: Credentials,
    rules: Policy | None = None,
    scope: q.Scope | None = None,
) -> q.EventQuery:
    """Apply the caller's visibility to a validated query; ``scope`` is
    :func:`event_scope` of the same caller when the request has computed it already."""
    if scope is None:
        scope = event_scope(creds, rules)
    system_wide = scope.kind is q.ScopeKind.ALL
    extra: list[q.TraitFilter] = []
    for cond in parsed.all_tenants_conditions:
        if system_wide:
            continue  # a system-scoped caller already sees every project
        if scope.kind is q.ScopeKind.ADMIN_PROJECT:
            if q.parse_bool(cond.value):
                scope = q.Scope.everything()
        else:
            # A restricted caller's all_tenants is not special, nor an admin's once it has
            # widened the scope: it filters on a trait of that name (usually matching nothing).
            extra.append(q.trait_filter(cond))
    if parsed.error_after_all_tenants is not None:
        raise parsed.error_after_all_tenants
    return replace(parsed.query, traits=parsed.query.traits + tuple(extra), scope=scope)


def metadata_scope(rule: str, creds: Credentials, rules: Policy | None = None) -> q.Scope:
    """Scope of event types, trait descriptions and trait values for a caller.

    ``rule`` (``telemetry:event_types:index`` or ``telemetry:traits:index``) must pass
    (401 otherwise). Callers passing ``segregation`` see the whole deployment, as in Panko;
    a caller let in by a custom policy sees what its own events show, nothing more.
    """
    policy = _rules(rules)
    authorize(rule, creds, policy)
    if policy.allows(SEGREGATION, creds):
        return q.Scope.everything()
    if not creds.user_id or not creds.project_id:
        raise _not_authorized(creds)
    return q.Scope(q.ScopeKind.OWNER, project_id=creds.project_id, user_id=creds.user_id)
