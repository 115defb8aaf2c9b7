"""Load and validate the support policy files (SPEC 2) into frozen objects.

Every problem names the file and the key, so a bad policy stops start-up with a message an
operator can act on.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import phonenumbers

from router.core.domain import Category, Channel, Severity, Tier, Topic
from router.core.rules import RuleSet, RuleValidationError, compile_rules
from router.core.sla import SlaPolicy, SlaTarget

POLICY_FILES = ("tiers", "sla", "categories", "regions", "queues", "routing")
CHANNEL_MODES = ("open", "business_hours", "bot", "help_center", "closed")
QUEUE_KINDS = ("human", "bot", "deflection")
# Who an SLA warning or breach notifies (sla.toml, policies.<name>.escalation).
NOTIFY_TARGETS = ("queue_owners", "csm", "account_manager", "webhook")

T = TypeVar("T")


class PolicyError(ValueError):
    """A policy file is missing, unreadable or wrong; the message names file and key."""

    def __init__(self, file: str, key: str, message: str) -> None:
        self.file = file
        self.key = key
        self.message = message
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(where + message)


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
class Region:
    """A support region: its number, calendar country, time zone and IVR language."""

    key: str
    name: str
    display_number: str
    e164: str | None
    aliases: tuple[str, ...]
    country: str
    subdivision: str | None
    timezone: str
    language: str
    hours: tuple[tuple[time, time], ...]


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


def normalise_number(number: str) -> str:
    """Keep digits and a leading '+', so carriers' spacing and punctuation do not matter."""
    stripped = number.strip()
    digits = re.sub(r"\D", "", stripped)
    return ("+" + digits) if stripped.startswith("+") else digits


class _Table:
    """A TOML table read with its key path, so every error names file and key."""

    def __init__(self, file: str, path: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise PolicyError(file, path, f"must be a table, not {_type_name(data)}")
        self.file, self.path, self.data = file, path, data
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> PolicyError:
        return PolicyError(self.file, self.key(name), message)

    def get(self, name: str, kind: type[T], default: T | None = None, required: bool = True) -> T:
        self._seen.add(name)
        if name not in self.data:
            if default is not None or not required:
                return default  # type: ignore[return-value]
            near = difflib.get_close_matches(name, [k for k in self.data if k not in self._seen])
            hint = f"; {near[0]!r} looks like a misspelling of it" if near else ""
            raise self.error(name, "is required" + hint)
        value = self.data[name]
        # bool is an int in Python; a policy file's true is never a number.
        if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)  # type: ignore[return-value]
            raise self.error(name, f"must be {_type_name(kind)}, not {_type_name(value)}")
        return value

    def strings(self, name: str, required: bool = False) -> tuple[str, ...]:
        values = self.get(name, list, [] if not required else None)
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise self.error(f"{name}[{index}]", f"must be a string, not {_type_name(value)}")
        return tuple(values)

    def table(self, name: str, required: bool = True) -> _Table:
        return _Table(self.file, self.key(name), self.get(name, dict, {} if not required else None))

    def tables(self, name: str) -> Iterator[tuple[str, _Table]]:
        section = self.table(name)
        section._seen.update(section.data)
        for key, value in section.data.items():
            yield key, _Table(self.file, section.key(key), value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            raise self.error(unknown[0], "unknown key (misspelt, or not supported here)")


def _type_name(value: Any) -> str:
    kind = value if isinstance(value, type) else type(value)
    return {
        str: "a string",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }.get(kind, kind.__name__)


def _enum(table: _Table, name: str, raw: str, enum: type[T]) -> T:
    try:
        return enum(raw)  # type: ignore[call-arg]
    except ValueError:
        allowed = ", ".join(str(member.value) for member in enum)  # type: ignore[attr-defined]
        raise table.error(name, f"unknown value {raw!r}; expected one of {allowed}") from None


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?$")


def _duration(table: _Table, name: str, raw: str) -> timedelta:
    match = _DURATION.match(raw.strip())
    if not raw.strip() or not match:
        raise table.error(name, f"must be a duration like '4h', '90m' or '1h30m', not {raw!r}")
    hours, minutes = (int(group or 0) for group in match.groups())
    duration = timedelta(hours=hours, minutes=minutes)
    if duration <= timedelta(0):
        raise table.error(name, "must be longer than zero")
    return duration


def _clock_time(table: _Table, name: str, raw: Any) -> time:
    if not isinstance(raw, str) or not re.fullmatch(r"\d{2}:\d{2}", raw):
        raise table.error(name, f"must be a time 'HH:MM', not {raw!r}")
    hour, minute = int(raw[:2]), int(raw[3:])
    if (hour, minute) == (24, 0):
        return time(0, 0)  # midnight at the end of the day
    if hour > 23 or minute > 59:
        raise table.error(name, f"is not a valid time of day: {raw!r}")
    return time(hour, minute)


def _hours(table: _Table, name: str) -> tuple[tuple[time, time], ...]:
    raw = table.get(name, list, [["09:00", "17:00"]])
    intervals: list[tuple[time, time]] = []
    for index, pair in enumerate(raw):
        key = f"{name}[{index}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise table.error(key, 'must be a pair ["HH:MM", "HH:MM"]')
        start, end = _clock_time(table, key, pair[0]), _clock_time(table, key, pair[1])
        if end != time(0, 0) and end <= start:
            raise table.error(key, "must end after it starts")
        if intervals and (intervals[-1][1] == time(0, 0) or start < intervals[-1][1]):
            raise table.error(key, "overlaps or precedes the interval before it")
        intervals.append((start, end))
    if not intervals:
        raise table.error(name, "needs at least one open interval")
    return tuple(intervals)


def _read(directory: Path, name: str) -> tuple[str, dict[str, Any]]:
    path = directory / f"{name}.toml"
    label = str(path)
    try:
        with path.open("rb") as handle:
            return label, tomllib.load(handle)
    except FileNotFoundError:
        raise PolicyError(label, "", "policy file is missing") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(label, "", f"not valid TOML: {exc}") from None


def load_policy(directory: Path) -> Policy:
    """Read every policy file in ``directory`` and validate it as a whole."""
    files = {name: _read(directory, name) for name in POLICY_FILES}
    queues = _load_queues(*files["queues"])
    sla_file = _Table(files["sla"][0], "", files["sla"][1])
    warning_fraction = sla_file.get("warning_fraction", float, 0.75)
    if not 0 < warning_fraction < 1:
        raise sla_file.error("warning_fraction", "must be between 0 and 1")
    sla_categories = frozenset(
        _enum(sla_file, "sla_categories", raw, Category)
        for raw in sla_file.strings("sla_categories")
    )
    sla_policies, escalations = _load_sla_policies(sla_file, warning_fraction, queues)
    severities = _load_severities(sla_file)
    sla_file.done()

    trial_days, tiers = _load_tiers(*files["tiers"], sla_policies)
    categories, topics, agent_log = _load_categories(*files["categories"])
    default_region, regions = _load_regions(*files["regions"])
    _check_premium_first(files["tiers"][0], tiers, severities, escalations)
    rule_file, rule_data = files["routing"]
    rule_table = _Table(rule_file, "", rule_data)
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


def _load_queues(file: str, data: dict[str, Any]) -> dict[str, QueuePolicy]:
    root = _Table(file, "", data)
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


def _load_sla_policies(
    sla_file: _Table, warning_fraction: float, queues: Mapping[str, QueuePolicy]
) -> tuple[dict[str, SlaPolicy], dict[str, EscalationPolicy]]:
    policies: dict[str, SlaPolicy] = {}
    escalations: dict[str, EscalationPolicy] = {}
    for name, table in sla_file.tables("policies"):
        clock = table.get("clock", str)
        if clock not in ("calendar", "business"):
            raise table.error("clock", f"unknown value {clock!r}; expected calendar or business")
        targets_table = table.table("targets")
        targets: dict[Severity, SlaTarget] = {}
        for raw_severity in list(targets_table.data):
            severity = _enum(targets_table, raw_severity, raw_severity, Severity)
            raw = targets_table.get(raw_severity, str)
            if raw == "next_business_day":
                if clock != "business":
                    raise targets_table.error(
                        raw_severity, "next_business_day needs clock = business"
                    )
                targets[severity] = SlaTarget(kind="next_business_day", duration=None)
            else:
                duration = _duration(targets_table, raw_severity, raw)
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


def _load_escalation(table: _Table, queues: Mapping[str, QueuePolicy]) -> EscalationPolicy:
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


def _load_severities(sla_file: _Table) -> dict[Severity, SeverityPolicy]:
    severities: dict[Severity, SeverityPolicy] = {}
    for raw, table in sla_file.tables("severities"):
        severity = _enum(sla_file, f"severities.{raw}", raw, Severity)
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


def _load_tiers(
    file: str, data: dict[str, Any], sla_policies: Mapping[str, SlaPolicy]
) -> tuple[int, dict[Tier, TierPolicy]]:
    root = _Table(file, "", data)
    trial_days = root.get("trial_days", int, 30)
    if trial_days < 1:
        raise root.error("trial_days", "must be at least 1")
    tiers: dict[Tier, TierPolicy] = {}
    for raw, table in root.tables("tiers"):
        tier = _enum(root, f"tiers.{raw}", raw, Tier)
        sla_policy = table.get("sla_policy", str)
        if sla_policy not in sla_policies:
            raise table.error("sla_policy", f"unknown SLA policy {sla_policy!r} (see sla.toml)")
        base_priority = table.get("base_priority", int)
        if not 0 <= base_priority <= 100:
            raise table.error("base_priority", "must be between 0 and 100")
        channels_table = table.table("channels")
        channels: dict[Channel, str] = {}
        for raw_channel in list(channels_table.data):
            channel = _enum(channels_table, raw_channel, raw_channel, Channel)
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


def _classifier(table: _Table, key: str, attachments: bool) -> Classifier:
    classifier = Classifier(
        key=key,
        label=table.get("label", str),
        keywords=tuple(word.lower() for word in table.strings("keywords")),
        attachments=table.strings("attachments") if attachments else (),
    )
    table.done()
    return classifier


def _load_categories(
    file: str, data: dict[str, Any]
) -> tuple[dict[Category, Classifier], dict[Topic, Classifier], AgentLogHints]:
    root = _Table(file, "", data)
    categories: dict[Category, Classifier] = {}
    for raw, table in root.tables("categories"):
        categories[_enum(root, f"categories.{raw}", raw, Category)] = _classifier(table, raw, False)
    topics: dict[Topic, Classifier] = {}
    for raw, table in root.tables("topics"):
        topics[_enum(root, f"topics.{raw}", raw, Topic)] = _classifier(table, raw, True)
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


_SUPPORTED_COUNTRIES: Mapping[str, list[str]] = holidays.list_supported_countries()


def _load_regions(file: str, data: dict[str, Any]) -> tuple[str, dict[str, Region]]:
    root = _Table(file, "", data)
    default_region = root.get("default_region", str)
    regions: dict[str, Region] = {}
    seen_numbers: dict[str, str] = {}
    for key, table in root.tables("regions"):
        country = table.get("country", str)
        if country not in _SUPPORTED_COUNTRIES:
            raise table.error("country", f"unknown country code {country!r} (ISO 3166-1 alpha-2)")
        subdivision = table.get("subdivision", str, required=False)
        if subdivision is not None and subdivision not in _SUPPORTED_COUNTRIES[country]:
            raise table.error("subdivision", f"unknown subdivision {subdivision!r} of {country}")
        timezone = table.get("timezone", str)
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise table.error("timezone", f"unknown time zone {timezone!r}") from None
        e164 = table.get("e164", str, required=False)
        if e164 is not None:
            _check_e164(table, e164)
        aliases = table.strings("aliases")
        for index, alias in enumerate(aliases):
            if not re.fullmatch(r"\+?[\d \-().]{6,24}", alias):
                raise table.error(f"aliases[{index}]", f"is not a phone number: {alias!r}")
        if e164 is None and not aliases:
            raise table.error(
                "e164", "is required (or give aliases for a number with no E.164 form)"
            )
        for index, form in enumerate((e164, *aliases)):
            if form is None:
                continue
            number = normalise_number(form)
            if number in seen_numbers and seen_numbers[number] != key:
                name = "e164" if index == 0 else f"aliases[{index - 1}]"
                raise table.error(
                    name, f"number {form!r} is already used by region {seen_numbers[number]!r}"
                )
            seen_numbers[number] = key
        language = table.get("language", str)
        if not re.fullmatch(r"[a-z]{2}-[A-Z]{2}", language):
            raise table.error("language", f"must be a language tag like 'en-US', not {language!r}")
        regions[key] = Region(
            key=key,
            name=table.get("name", str),
            display_number=table.get("display_number", str),
            e164=e164,
            aliases=aliases,
            country=country,
            subdivision=subdivision,
            timezone=timezone,
            language=language,
            hours=_hours(table, "hours"),
        )
        table.done()
    root.done()
    if default_region not in regions:
        raise root.error("default_region", f"unknown region {default_region!r}")
    return default_region, regions


def _check_e164(table: _Table, e164: str) -> None:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise table.error("e164", f"is not a phone number: {e164!r} ({exc})") from None
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(number) or formatted != e164:
        raise table.error("e164", f"is not a valid E.164 number: {e164!r}")
