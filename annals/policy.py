"""Who may do what, and which events a caller may see.

Visibility is applied by rewriting the query (:func:`scope_query`) before it reaches storage,
never by filtering results afterwards. The rules are Panko 10's as it effectively behaved:

* a caller without both a user and a project gets 403 on ``/v2/events*``;
* an admin (role ``admin``, case-insensitive) sees the events of its own project and the
  events that carry no ``project_id`` trait; with ``all_tenants=True`` it sees everything;
* anyone else sees only events whose ``project_id`` and ``user_id`` string traits are its
  own project and user; an ``all_tenants`` condition from them is an ordinary trait filter
  (so it matches nothing), exactly as in Panko;
* event types, trait descriptions and trait values are admin-only (401).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from annals import query as q
from annals.errors import Forbidden, Unauthorized

#: The role given to an event publisher authenticated by ``[api] publisher_credentials``.
PUBLISHER_ROLE = "annals:publisher"


@dataclass(frozen=True, slots=True)
class Credentials:
    user_id: str | None = None
    project_id: str | None = None
    roles: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return any(role.lower() == "admin" for role in self.roles)

    @classmethod
    def from_headers(cls, user: str | None, project: str | None, roles: str | None) -> Credentials:
        return cls(
            user_id=user or None,
            project_id=project or None,
            roles=tuple(r.strip() for r in (roles or "").split(",") if r.strip()),
        )


def require_context(creds: Credentials) -> None:
    """Panko's ``requires_context``: events need both a user and a project."""
    if not creds.user_id or not creds.project_id:
        raise Forbidden("RBAC Authorization Failed")


def require_admin(creds: Credentials) -> None:
    """Panko's ``requires_admin`` for event types and traits (401 for non-admins).

    Panko let a caller with no identity headers through here; Annals does not.
    """
    if not creds.is_admin:
        if creds.project_id:
            raise Unauthorized(f"Not Authorized to access project {creds.project_id}")
        raise Unauthorized("Not Authorized: event types and traits are for admins only")


def require_writer(creds: Credentials) -> None:
    """Recording events is for admins and configured publishers."""
    if PUBLISHER_ROLE in creds.roles:
        return
    require_context(creds)
    if not creds.is_admin:
        raise Forbidden("RBAC Authorization Failed: recording events requires the admin role")


def event_scope(creds: Credentials) -> q.Scope:
    """The scope of a caller before any all_tenants request."""
    require_context(creds)
    if creds.is_admin:
        return q.Scope(q.ScopeKind.ADMIN_PROJECT, project_id=creds.project_id)
    return q.Scope(q.ScopeKind.OWNER, project_id=creds.project_id, user_id=creds.user_id)


def scope_query(parsed: q.ParsedConditions, creds: Credentials) -> q.EventQuery:
    """Apply the caller's visibility to a validated query."""
    scope = event_scope(creds)
    extra: list[q.TraitFilter] = []
    for cond in parsed.all_tenants_conditions:
        if creds.is_admin and scope.kind is q.ScopeKind.ADMIN_PROJECT:
            if q.parse_bool(cond.value):
                scope = q.Scope.everything()
        else:
            # A non-admin's all_tenants is not special, nor an admin's once it has widened
            # the scope: it filters on a trait of that name (usually matching nothing).
            extra.append(q.trait_filter(cond))
    return replace(parsed.query, traits=parsed.query.traits + tuple(extra), scope=scope)
