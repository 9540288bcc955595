"""Annals' default policy rules for oslo.policy, declared as data.

The names are Panko's (``context_is_admin``, ``segregation``, ``telemetry:events:index``,
``telemetry:events:show``) plus the rules of what Panko did not have or hard-coded
(``telemetry:events:create``, ``telemetry:event_types:index``, ``telemetry:traits:index``).
A ``policy.yaml`` (``[oslo_policy] policy_file``) overrides any of them; ``annals
policy-sample`` and ``oslopolicy-sample-generator --namespace annals`` print these defaults.

The defaults keep Panko 10's effective behaviour for project-scoped tokens (role ``admin``,
any case, is an administrator of its own project and, with ``all_tenants``, of all of them)
and also accept system-scoped tokens: a system-scoped admin or reader sees every project.
Current oslo.policy releases always check ``scope_types``; every rule here allows
``system`` and ``project`` scope, so a project-scoped admin keeps working. Domain-scoped
tokens match no rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from oslo_policy import policy

#: Token scopes every Annals rule accepts (domain-scoped tokens are refused).
SCOPE_TYPES: tuple[str, ...] = ("system", "project")


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One default rule. Rules without operations are building blocks for the others."""

    name: str
    check_str: str
    description: str
    operations: tuple[Operation, ...] = ()


EVENTS_LIST = Operation("GET", "/v2/events")
EVENTS_SHOW = Operation("GET", "/v2/events/{message_id}")

RULES: tuple[Rule, ...] = (
    Rule(
        "context_is_admin",
        "role:admin",
        "An administrator: role admin, in any case (Panko's default). A project-scoped "
        "admin sees its own project's events and, with all_tenants, every project's; a "
        "system-scoped admin sees every project's.",
    ),
    Rule(
        "system_reader",
        "role:reader and system_scope:all",
        "A reader of the whole deployment: a system-scoped token with the reader role (or a "
        "role implying it). It may read every project's events but not record any.",
    ),
    Rule(
        "segregation",
        "rule:context_is_admin or rule:system_reader",
        "Callers passing this rule are not limited to the events of their own user and "
        "project: a project-scoped caller sees its project's events and those without a "
        "project_id trait (every project's with all_tenants=True), a system-scoped caller "
        "every project's. Everyone else sees only the events whose project_id and user_id "
        "traits are their own. It also decides whether event types and traits are listed "
        "for the whole deployment or only for the caller's own events.",
        (EVENTS_LIST, EVENTS_SHOW),
    ),
    Rule(
        "telemetry:events:index",
        "",
        "List the events matching the query filters (Panko's default: any authenticated "
        "caller; what it sees is decided by 'segregation'). Refused: 403.",
        (EVENTS_LIST,),
    ),
    Rule(
        "telemetry:events:show",
        "",
        "Show one event by message id (Panko's default: any authenticated caller; what it "
        "sees is decided by 'segregation'). Refused: 403.",
        (EVENTS_SHOW,),
    ),
    Rule(
        "telemetry:events:create",
        "rule:context_is_admin or is_publisher:True",
        "Record events: administrators, and event publishers authenticated with the HTTP "
        "Basic credentials of [api] publisher_credentials. Refused: 403.",
        (Operation("POST", "/v2/events"),),
    ),
    Rule(
        "telemetry:event_types:index",
        "rule:segregation",
        "List the event types. Panko allowed only administrators (401 for others); if this "
        "rule lets other callers in, they see only the types of events they could list "
        "themselves. Refused: 401.",
        (Operation("GET", "/v2/event_types"), Operation("GET", "/v2/event_types/{event_type}")),
    ),
    Rule(
        "telemetry:traits:index",
        "rule:segregation",
        "List the trait names and types of an event type, and the values of one trait. Panko "
        "allowed only administrators (401 for others); if this rule lets other callers in, "
        "they see only the traits of events they could list themselves. Refused: 401.",
        (
            Operation("GET", "/v2/event_types/{event_type}/traits"),
            Operation("GET", "/v2/event_types/{event_type}/traits/{trait_name}"),
        ),
    ),
)


def _to_oslo(rule: Rule) -> policy.RuleDefault:
    if not rule.operations:
        return policy.RuleDefault(
            rule.name,
            rule.check_str,
            description=rule.description,
            scope_types=list(SCOPE_TYPES),
        )
    return policy.DocumentedRuleDefault(
        rule.name,
        rule.check_str,
        rule.description,
        [{"method": op.method, "path": op.path} for op in rule.operations],
        scope_types=list(SCOPE_TYPES),
    )


def list_rules() -> list[policy.RuleDefault]:
    """Entry point ``oslo.policy.policies`` (namespace ``annals``)."""
    return [_to_oslo(rule) for rule in RULES]
