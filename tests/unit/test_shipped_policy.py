"""The shipped default rules route every tier x channel x category as the support guide says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config.policy import Policy
from router.core.calendar import region_calendar
from router.core.decision import decide
from router.core.domain import Category, Channel, Severity, Tier, Topic
from router.core.rules import ContactAttributes

# Friday 2026-11-27 15:00 UTC = 10:00 in New York: inside business hours.
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
US = region_calendar("US", "America/New_York")

ADVISORY = (Category.TRAINING, Category.SECURITY, Category.INFRASTRUCTURE)


def expected(
    tier: Tier, channel: Channel, category: Category, ps: bool, handoff: bool
) -> tuple[str, str]:
    """Return (queue, SLA policy) per SPEC 2.1 and 2.5: the table this test checks against."""
    if tier is Tier.FREE:
        return "help-center", "none"
    if channel is Channel.CHAT and tier is Tier.STANDARD:
        return ("standard-chat", _sla(tier, category)) if handoff else ("supportbot", "none")
    if channel is Channel.CHAT and tier is Tier.TRIAL:
        return "trial-chat", "none"
    tier_sla = _sla(tier, category)
    if category is Category.MIGRATION:
        return "professional-services", tier_sla
    if category in ADVISORY:
        return ("professional-services" if ps else "csm"), tier_sla
    if category in (Category.FEATURE_REQUEST, Category.ESCALATION):
        return "csm", tier_sla
    if category is Category.LICENSING:
        return "account-managers", tier_sla
    return "cse-windows", tier_sla  # break-fix with topic windows


def _sla(tier: Tier, category: Category) -> str:
    if category is not Category.BREAK_FIX:
        return "none"  # non-break-fix work is not SLA-bound by default
    return {Tier.PREMIUM: "premium", Tier.STANDARD: "standard"}.get(tier, "none")


CASES = [
    (tier, channel, category, ps, handoff)
    for tier in Tier
    for channel in Channel
    for category in Category
    for ps in (False, True)
    for handoff in ((False, True) if channel is Channel.CHAT else (False,))
]


@pytest.mark.parametrize(("tier", "channel", "category", "ps", "handoff"), CASES)
def test_shipped_rules(
    policy: Policy, tier: Tier, channel: Channel, category: Category, ps: bool, handoff: bool
) -> None:
    attrs = ContactAttributes(
        channel=channel,
        tier=tier,
        received_at=NOW,
        in_business_hours=True,
        account_region="us",
        professional_services=ps,
        severity=Severity.S2,
        category=category,
        topic=Topic.WINDOWS,
        tags=frozenset({"handoff"}) if handoff else frozenset(),
    )
    tier_policy = policy.tiers[tier]
    outcome = decide(
        rules=policy.rules,
        attrs=attrs,
        base_priority=tier_policy.base_priority + policy.severities[Severity.S2].priority_boost,
        tier_sla_policy=tier_policy.sla_policy,
        sla_categories=policy.sla_categories,
        sla_policies=policy.sla_policies,
        calendar=US,
    )
    assert (outcome.decision.queue, outcome.sla_policy) == expected(
        tier, channel, category, ps, handoff
    )


@pytest.mark.parametrize(
    ("tier", "severity", "priority"),
    [
        (Tier.PREMIUM, Severity.S1, 90),
        (Tier.PREMIUM, Severity.S3, 70),  # above any standard contact, even an escalated S1
        (Tier.STANDARD, Severity.S1, 50),
        (Tier.STANDARD, Severity.S3, 30),
        (Tier.TRIAL, Severity.S1, 40),
    ],
)
def test_premium_before_standard_and_s1_before_s3(
    policy: Policy, tier: Tier, severity: Severity, priority: int
) -> None:
    attrs = ContactAttributes(
        channel=Channel.EMAIL,
        tier=tier,
        received_at=NOW,
        in_business_hours=True,
        severity=severity,
        topic=Topic.LINUX,
    )
    base = policy.tiers[tier].base_priority + policy.severities[severity].priority_boost
    decision = policy.rules.route(attrs, base_priority=base)
    assert (decision.queue, decision.priority) == ("cse-linux", priority)


def test_every_topic_has_its_engineer_queue(policy: Policy) -> None:
    for topic in Topic:
        attrs = ContactAttributes(
            channel=Channel.VOICE,
            tier=Tier.PREMIUM,
            received_at=NOW,
            in_business_hours=False,
            topic=topic,
        )
        queue = policy.rules.route(attrs).queue
        assert queue == ("cse-general" if topic is Topic.OTHER else f"cse-{topic.value}")


def test_premium_due_times(policy: Policy) -> None:
    for severity, hours in ((Severity.S1, 1), (Severity.S2, 2), (Severity.S3, 4)):
        attrs = ContactAttributes(
            channel=Channel.VOICE,
            tier=Tier.PREMIUM,
            received_at=NOW,
            in_business_hours=True,
            severity=severity,
            topic=Topic.MAC,
        )
        outcome = decide(
            rules=policy.rules,
            attrs=attrs,
            base_priority=60,
            tier_sla_policy="premium",
            sla_categories=policy.sla_categories,
            sla_policies=policy.sla_policies,
            calendar=US,
        )
        assert outcome.due_at == datetime(2026, 11, 27, 15 + hours, 0, tzinfo=UTC)
