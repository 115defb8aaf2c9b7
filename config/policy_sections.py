"""The tiers, SLA, queue and category sections of the support policy, each read and checked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.policy_toml import Table, enum_value, parse_duration
from router.core.domain import Category, Channel, Severity, Tier, Topic
from router.core.sla import SlaPolicy, SlaTarget

CHANNEL_MODES = ("open", "business_hours", "bot", "help_center", "closed")
QUEUE_KINDS = ("human", "bot", "deflection")
# Who an SLA warning or breach notifies (sla.toml, policies.<name>.escalation).
NOTIFY_TARGETS = ("queue_owners", "csm", "account_manager", "webhook")


@dataclass(frozen=True)
class TierPolicy:
    """What a tier is entitled to."""

    tier: Tier
    description: str
    base_priority: int
    sla_policy: str
    channels: Mapping[Channel, str]


@dataclass(frozen=True)
class SeverityPolicy:
    """A severity's wording (read by the IVR) and its priority boost."""

    severity: Severity
    label: str
    definition: str
    priority_boost: int


@dataclass(frozen=True)
class Classifier:
    """Keywords (and attachment names) that suggest a category or topic."""

    key: str
    label: str
    keywords: tuple[str, ...]
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentLogHints:
    """How a jcagent.log attachment's path or text tells its operating system."""

    name: str
    windows_hints: tuple[str, ...]
    mac_hints: tuple[str, ...]
    linux_hints: tuple[str, ...]


@dataclass(frozen=True)
class EscalationPolicy:
    """What a warning and a breach under one SLA policy set off (SPEC 2.3)."""

    raise_priority: int = 0
    queue: str | None = None
    notify: tuple[str, ...] = ()
    warn: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueuePolicy:
    """A queue shipped with the default policy."""

    key: str
    name: str
    team: str
    kind: str
    owners: tuple[str, ...]


def load_queues(file: str, data: dict[str, Any]) -> dict[str, QueuePolicy]:
    """Read queues.toml: the shipped queues by key (a fallback queue is required)."""
    root = Table(file, "", data)
    queues: dict[str, QueuePolicy] = {}
    for key, table in root.tables("queues"):
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", key):
            raise root.error(f"queues.{key}", "queue keys are lower-case letters, digits and '-'")
        kind = table.get("kind", str, "human")
        if kind not in QUEUE_KINDS:
            raise table.error(
                "kind", f"unknown value {kind!r}; expected one of {', '.join(QUEUE_KINDS)}"
            )
        queues[key] = QueuePolicy(
            key=key,
            name=table.get("name", str),
            team=table.get("team", str),
            kind=kind,
            owners=table.strings("owners"),
        )
        table.done()
    root.done()
    if "fallback" not in queues:
        raise root.error("queues.fallback", "is required: the voice fallback URL enqueues there")
    return queues


def load_sla_policies(
    sla_file: Table, warning_fraction: float, queues: Mapping[str, QueuePolicy]
) -> tuple[dict[str, SlaPolicy], dict[str, EscalationPolicy]]:
    """Read sla.toml's policies and their escalations by policy name."""
    policies: dict[str, SlaPolicy] = {}
    escalations: dict[str, EscalationPolicy] = {}
    for name, table in sla_file.tables("policies"):
        clock = table.get("clock", str)
        if clock not in ("calendar", "business"):
            raise table.error("clock", f"unknown value {clock!r}; expected calendar or business")
        targets_table = table.table("targets")
        targets: dict[Severity, SlaTarget] = {}
        for raw_severity in list(targets_table.data):
            severity = enum_value(targets_table, raw_severity, raw_severity, Severity)
            raw = targets_table.get(raw_severity, str)
            if raw == "next_business_day":
                if clock != "business":
                    raise targets_table.error(
                        raw_severity, "next_business_day needs clock = business"
                    )
                targets[severity] = SlaTarget(kind="next_business_day", duration=None)
            else:
                duration = parse_duration(targets_table, raw_severity, raw)
                targets[severity] = (
                    SlaTarget(kind="calendar", duration=duration)
                    if clock == "calendar"
                    else SlaTarget(kind="business", duration=duration)
                )
        targets_table.done()
        if "escalation" in table.data:
            escalations[name] = _load_escalation(table.table("escalation"), queues)
        table.done()
        policies[name] = SlaPolicy(name=name, targets=targets, warning_fraction=warning_fraction)
    if "none" not in policies:
        raise sla_file.error("policies.none", "is required (contacts without an SLA use it)")
    return policies, escalations


def _load_escalation(table: Table, queues: Mapping[str, QueuePolicy]) -> EscalationPolicy:
    """Read what a warning and a breach under one SLA policy set off."""
    raise_priority = table.get("raise_priority", int, 0)
    if not 0 <= raise_priority <= 100:
        raise table.error("raise_priority", "must be between 0 and 100")
    queue = table.get("queue", str, required=False)
    if queue is not None:
        if queue not in queues:
            raise table.error("queue", f"unknown queue {queue!r} (see queues.toml)")
        if queues[queue].kind != "human":
            raise table.error("queue", f"queue {queue!r} is not a queue staff work from")
    lists: dict[str, tuple[str, ...]] = {}
    for name in ("notify", "warn"):
        values = table.strings(name)
        for index, value in enumerate(values):
            if value not in NOTIFY_TARGETS:
                raise table.error(
                    f"{name}[{index}]",
                    f"unknown value {value!r}; expected one of {', '.join(NOTIFY_TARGETS)}",
                )
        lists[name] = tuple(dict.fromkeys(values))
    table.done()
    return EscalationPolicy(
        raise_priority=raise_priority, queue=queue, notify=lists["notify"], warn=lists["warn"]
    )


def load_severities(sla_file: Table) -> dict[Severity, SeverityPolicy]:
    """Read sla.toml's severities (every severity is required)."""
    severities: dict[Severity, SeverityPolicy] = {}
    for raw, table in sla_file.tables("severities"):
        severity = enum_value(sla_file, f"severities.{raw}", raw, Severity)
        severities[severity] = SeverityPolicy(
            severity=severity,
            label=table.get("label", str),
            definition=table.get("definition", str),
            priority_boost=table.get("priority_boost", int, 0),
        )
        table.done()
    missing = [s.value for s in Severity if s not in severities]
    if missing:
        raise sla_file.error(f"severities.{missing[0]}", "is required")
    return severities


def load_tiers(
    file: str, data: dict[str, Any], sla_policies: Mapping[str, SlaPolicy]
) -> tuple[int, dict[Tier, TierPolicy]]:
    """Read tiers.toml: the trial length and every tier (each tier and channel is required)."""
    root = Table(file, "", data)
    trial_days = root.get("trial_days", int, 30)
    if trial_days < 1:
        raise root.error("trial_days", "must be at least 1")
    tiers: dict[Tier, TierPolicy] = {}
    for raw, table in root.tables("tiers"):
        tier = enum_value(root, f"tiers.{raw}", raw, Tier)
        sla_policy = table.get("sla_policy", str)
        if sla_policy not in sla_policies:
            raise table.error("sla_policy", f"unknown SLA policy {sla_policy!r} (see sla.toml)")
        base_priority = table.get("base_priority", int)
        if not 0 <= base_priority <= 100:
            raise table.error("base_priority", "must be between 0 and 100")
        channels_table = table.table("channels")
        channels: dict[Channel, str] = {}
        for raw_channel in list(channels_table.data):
            channel = enum_value(channels_table, raw_channel, raw_channel, Channel)
            mode = channels_table.get(raw_channel, str)
            if mode not in CHANNEL_MODES:
                raise channels_table.error(
                    raw_channel,
                    f"unknown mode {mode!r}; expected one of {', '.join(CHANNEL_MODES)}",
                )
            channels[channel] = mode
        missing = [c.value for c in Channel if c not in channels]
        if missing:
            raise channels_table.error(missing[0], "is required")
        tiers[tier] = TierPolicy(
            tier=tier,
            description=table.get("description", str, ""),
            base_priority=base_priority,
            sla_policy=sla_policy,
            channels=channels,
        )
        table.done()
    root.done()
    missing_tiers = [t.value for t in Tier if t not in tiers]
    if missing_tiers:
        raise root.error(f"tiers.{missing_tiers[0]}", "is required")
    return trial_days, tiers


def _classifier(table: Table, key: str, attachments: bool) -> Classifier:
    """Read one category or topic classifier."""
    classifier = Classifier(
        key=key,
        label=table.get("label", str),
        keywords=tuple(word.lower() for word in table.strings("keywords")),
        attachments=table.strings("attachments") if attachments else (),
    )
    table.done()
    return classifier


def load_categories(
    file: str, data: dict[str, Any]
) -> tuple[dict[Category, Classifier], dict[Topic, Classifier], AgentLogHints]:
    """Read categories.toml: the category and topic classifiers and the agent log hints."""
    root = Table(file, "", data)
    categories: dict[Category, Classifier] = {}
    for raw, table in root.tables("categories"):
        categories[enum_value(root, f"categories.{raw}", raw, Category)] = _classifier(
            table, raw, False
        )
    topics: dict[Topic, Classifier] = {}
    for raw, table in root.tables("topics"):
        topics[enum_value(root, f"topics.{raw}", raw, Topic)] = _classifier(table, raw, True)
    hints = root.table("agent_log")
    agent_log = AgentLogHints(
        name=hints.get("name", str),
        windows_hints=hints.strings("windows_hints"),
        mac_hints=hints.strings("mac_hints"),
        linux_hints=hints.strings("linux_hints"),
    )
    hints.done()
    root.done()
    for enum, found, section in ((Category, categories, "categories"), (Topic, topics, "topics")):
        missing = [member.value for member in enum if member not in found]
        if missing:
            raise root.error(f"{section}.{missing[0]}", "is required")
    return categories, topics, agent_log
