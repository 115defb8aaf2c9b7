"""Load and validate the support policy files (SPEC 2) into frozen objects.

Every problem names the file and the key, so a bad policy stops start-up with a message an
operator can act on. Each section is read in ``config.policy_sections`` (tiers, SLA, queues,
categories) or ``config.policy_regions``, through ``config.policy_toml``'s key-tracking reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from config.policy_regions import Region, load_regions, normalise_number
from config.policy_sections import (
    CHANNEL_MODES,
    NOTIFY_TARGETS,
    QUEUE_KINDS,
    AgentLogHints,
    Classifier,
    EscalationPolicy,
    QueuePolicy,
    SeverityPolicy,
    TierPolicy,
    load_categories,
    load_queues,
    load_severities,
    load_sla_policies,
    load_tiers,
)
from config.policy_toml import PolicyError, Table, enum_value, read_policy_file
from router.core.domain import Category, Severity, Tier, Topic
from router.core.rules import RuleSet, RuleValidationError, compile_rules
from router.core.sla import SlaPolicy

__all__ = [
    "CHANNEL_MODES",
    "NOTIFY_TARGETS",
    "POLICY_FILES",
    "QUEUE_KINDS",
    "AgentLogHints",
    "Classifier",
    "EscalationPolicy",
    "Policy",
    "PolicyError",
    "QueuePolicy",
    "Region",
    "SeverityPolicy",
    "TierPolicy",
    "load_policy",
    "normalise_number",
]

POLICY_FILES = ("tiers", "sla", "categories", "regions", "queues", "routing")


@dataclass(frozen=True)
class Policy:
    """The whole validated support policy."""

    trial_days: int
    tiers: Mapping[Tier, TierPolicy]
    warning_fraction: float
    sla_categories: frozenset[Category]
    sla_policies: Mapping[str, SlaPolicy]
    severities: Mapping[Severity, SeverityPolicy]
    categories: Mapping[Category, Classifier]
    topics: Mapping[Topic, Classifier]
    agent_log: AgentLogHints
    default_region: str
    regions: Mapping[str, Region]
    queues: Mapping[str, QueuePolicy]
    rule_documents: tuple[Mapping[str, Any], ...]
    rules: RuleSet
    escalations: Mapping[str, EscalationPolicy] = field(default_factory=dict)

    def region_for_number(self, number: str) -> Region | None:
        """Return the region whose number (E.164 or an alias) was dialled, if any."""
        return self._numbers.get(normalise_number(number))

    @cached_property
    def _numbers(self) -> dict[str, Region]:
        table: dict[str, Region] = {}
        for region in self.regions.values():
            for form in (region.e164, *region.aliases):
                if form:
                    table[normalise_number(form)] = region
        return table


def load_policy(directory: Path) -> Policy:
    """Read every policy file in ``directory`` and validate it as a whole."""
    files = {name: read_policy_file(directory, name) for name in POLICY_FILES}
    queues = load_queues(*files["queues"])
    sla_file = Table(files["sla"][0], "", files["sla"][1])
    warning_fraction = sla_file.get("warning_fraction", float, 0.75)
    if not 0 < warning_fraction < 1:
        raise sla_file.error("warning_fraction", "must be between 0 and 1")
    sla_categories = frozenset(
        enum_value(sla_file, "sla_categories", raw, Category)
        for raw in sla_file.strings("sla_categories")
    )
    sla_policies, escalations = load_sla_policies(sla_file, warning_fraction, queues)
    severities = load_severities(sla_file)
    sla_file.done()

    trial_days, tiers = load_tiers(*files["tiers"], sla_policies)
    categories, topics, agent_log = load_categories(*files["categories"])
    default_region, regions = load_regions(*files["regions"])
    _check_premium_first(files["tiers"][0], tiers, severities, escalations)
    rule_file, rule_data = files["routing"]
    rule_table = Table(rule_file, "", rule_data)
    documents = rule_table.get("rules", list)
    rule_table.done()
    try:
        rules = compile_rules(documents, queues=set(queues), sla_policies=set(sla_policies))
    except RuleValidationError as exc:
        first, *others = exc.errors
        also = "".join(f"; {error.path}: {error.message}" for error in others)
        raise PolicyError(rule_file, first.path, first.message + also) from None
    return Policy(
        trial_days=trial_days,
        tiers=tiers,
        warning_fraction=warning_fraction,
        sla_categories=sla_categories,
        sla_policies=sla_policies,
        severities=severities,
        categories=categories,
        topics=topics,
        agent_log=agent_log,
        default_region=default_region,
        regions=regions,
        queues=queues,
        rule_documents=tuple(documents),
        rules=rules,
        escalations=escalations,
    )


def _check_premium_first(
    file: str,
    tiers: Mapping[Tier, TierPolicy],
    severities: Mapping[Severity, SeverityPolicy],
    escalations: Mapping[str, EscalationPolicy],
) -> None:
    """Refuse priorities under which another tier could be served before premium (SPEC 2.1)."""
    boosts = [severity.priority_boost for severity in severities.values()]
    premium = tiers[Tier.PREMIUM]
    lowest_premium = premium.base_priority + min(boosts)
    for tier, other in tiers.items():
        if tier is Tier.PREMIUM:
            continue
        escalation = escalations.get(other.sla_policy)
        highest = (
            other.base_priority + max(boosts) + (escalation.raise_priority if escalation else 0)
        )
        if highest >= lowest_premium:
            raise PolicyError(
                file,
                f"tiers.{tier.value}.base_priority",
                f"premium must be served first: {tier.value}'s highest priority ({highest}, with "
                f"the top severity boost and escalation) is not below premium's lowest "
                f"({lowest_premium})",
            )
