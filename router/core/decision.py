"""Routing decision with its SLA: rules pick queue, priority and tags; the SLA policy sets due."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from router.core.calendar import BusinessCalendar
from router.core.domain import Category
from router.core.rules import ContactAttributes, Decision, RuleSet
from router.core.sla import SlaClock, SlaPolicy, start_clock

NO_SLA = "none"


@dataclass(frozen=True)
class RoutingOutcome:
    """Where a contact goes, at what priority, under which SLA, and why."""

    decision: Decision
    sla_policy: str
    clock: SlaClock | None

    @property
    def due_at(self) -> datetime | None:
        """Return the first-response due time, or None without an SLA."""
        return self.clock.due_at if self.clock else None

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON-ready data (stored with the contact, shown by explain)."""
        data = self.decision.to_dict()
        data["sla_policy"] = self.sla_policy
        data["rule_sla_policy"] = self.decision.sla_policy
        data["sla"] = (
            {
                "policy": self.sla_policy,
                "severity": self.clock.severity.value,
                "started_at": self.clock.started_at.isoformat(),
                "warning_at": self.clock.warning_at.isoformat(),
                "due_at": self.clock.due_at.isoformat(),
            }
            if self.clock
            else None
        )
        return data


def sla_policy_name(
    rule_policy: str | None,
    tier_policy: str,
    category: Category,
    sla_categories: Collection[Category],
) -> str:
    """Return the SLA policy in force: the rule's override, else the tier's for SLA-bound work."""
    if rule_policy is not None:
        return rule_policy
    return tier_policy if category in sla_categories else NO_SLA


def decide(
    *,
    rules: RuleSet,
    attrs: ContactAttributes,
    base_priority: int,
    tier_sla_policy: str,
    sla_categories: Collection[Category],
    sla_policies: Mapping[str, SlaPolicy],
    calendar: BusinessCalendar,
) -> RoutingOutcome:
    """Route ``attrs`` through ``rules`` and start the SLA clock from its receipt time."""
    decision = rules.route(attrs, base_priority=base_priority)
    name = sla_policy_name(decision.sla_policy, tier_sla_policy, attrs.category, sla_categories)
    clock = start_clock(sla_policies[name], attrs.severity, attrs.received_at, calendar)
    return RoutingOutcome(decision=decision, sla_policy=name, clock=clock)
