"""Describe what routing rules may look at: a contact's attributes and the field catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from router.core.domain import Category, Channel, Severity, Tier, Topic
from router.core.rules.formatting import _plain

AttrValue = str | int | float | bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactAttributes:
    """Hold everything a routing rule may look at for one contact."""

    channel: Channel
    tier: Tier
    received_at: datetime
    in_business_hours: bool
    account_id: str | None = None
    account_region: str | None = None
    account_country: str | None = None
    partner_id: str | None = None
    via_partner: bool = False
    professional_services: bool = False
    severity: Severity = Severity.S3
    category: Category = Category.BREAK_FIX
    topic: Topic | None = None
    number_region: str | None = None
    language: str | None = None
    tags: frozenset[str] = frozenset()
    subject: str | None = None
    attrs: Mapping[str, AttrValue] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None or self.received_at.utcoffset() is None:
            raise ValueError("received_at must be timezone-aware")
        # Callers often hold plain strings (JSON, database rows); coercing turns a typo such as
        # tier="gold" into an error here instead of a contact that silently matches nothing.
        object.__setattr__(self, "channel", Channel(self.channel))
        object.__setattr__(self, "tier", Tier(self.tier))
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "category", Category(self.category))
        if self.topic is not None:
            object.__setattr__(self, "topic", Topic(self.topic))
        # A decision's trace is rendered lazily from these attributes, so they must not change
        # afterwards: take private, read-only copies of the mutable containers.
        object.__setattr__(self, "tags", frozenset(self.tags))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    def to_dict(self) -> dict[str, Any]:
        """Return the attributes as a JSON-serialisable dict."""
        return {
            "channel": _plain(self.channel),
            "tier": _plain(self.tier),
            "received_at": self.received_at.isoformat(),
            "in_business_hours": self.in_business_hours,
            "account_id": self.account_id,
            "account_region": self.account_region,
            "account_country": self.account_country,
            "partner_id": self.partner_id,
            "via_partner": self.via_partner,
            "professional_services": self.professional_services,
            "severity": _plain(self.severity),
            "category": _plain(self.category),
            "topic": _plain(self.topic),
            "number_region": self.number_region,
            "language": self.language,
            "tags": sorted(self.tags),
            "subject": self.subject,
            "attrs": dict(self.attrs),
        }


class FieldType(StrEnum):
    """Name the kind of value a rule field holds, which decides its operators and values."""

    ENUM = "enum"
    ORDERED_ENUM = "ordered enum"
    STRING = "string"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    STRING_SET = "set of strings"
    DYNAMIC = "custom attribute"


OPERATORS: Final = ("eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "contains", "matches")

_OPS_BY_TYPE: Final[Mapping[FieldType, tuple[str, ...]]] = {
    FieldType.ENUM: ("eq", "ne", "in", "not_in"),
    FieldType.ORDERED_ENUM: ("eq", "ne", "in", "not_in", "lt", "le", "gt", "ge"),
    FieldType.STRING: ("eq", "ne", "in", "not_in", "contains", "matches"),
    FieldType.BOOLEAN: ("eq", "ne"),
    FieldType.DATETIME: ("eq", "ne", "lt", "le", "gt", "ge"),
    FieldType.STRING_SET: ("contains", "in", "not_in"),
    FieldType.DYNAMIC: OPERATORS,
}


@dataclass(frozen=True)
class FieldSpec:
    """Describe one field rules can test: its type, valid operators and allowed values."""

    name: str
    type: FieldType
    description: str
    values: tuple[str, ...] | None = None
    nullable: bool = False

    @property
    def ops(self) -> tuple[str, ...]:
        """Return the operators valid for this field."""
        return _OPS_BY_TYPE[self.type]


def _enum_field(name: str, enum: type[StrEnum], description: str, **kw: Any) -> FieldSpec:
    return FieldSpec(name, FieldType.ENUM, description, tuple(m.value for m in enum), **kw)


FIELDS: Final[Mapping[str, FieldSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _enum_field("channel", Channel, "way the contact reached us"),
            _enum_field("tier", Tier, "support tier (the partner's tier when via a partner)"),
            FieldSpec("account_id", FieldType.STRING, "account id", nullable=True),
            FieldSpec(
                "account_region", FieldType.STRING, "account's region key, e.g. 'us'", nullable=True
            ),
            FieldSpec(
                "account_country", FieldType.STRING, "account's country, e.g. 'US'", nullable=True
            ),
            FieldSpec("partner_id", FieldType.STRING, "managing partner's id", nullable=True),
            FieldSpec("via_partner", FieldType.BOOLEAN, "a partner admin opened the contact"),
            FieldSpec(
                "professional_services",
                FieldType.BOOLEAN,
                "the account bought a Professional Services package",
            ),
            FieldSpec(
                "severity",
                FieldType.ORDERED_ENUM,
                "S1 (most severe) < S2 < S3",
                tuple(m.value for m in Severity),
            ),
            _enum_field("category", Category, "kind of help needed"),
            _enum_field("topic", Topic, "break-fix topic", nullable=True),
            FieldSpec(
                "number_region", FieldType.STRING, "region of the number called", nullable=True
            ),
            FieldSpec("language", FieldType.STRING, "language tag, e.g. 'en-US'", nullable=True),
            FieldSpec("received_at", FieldType.DATETIME, "when the contact arrived"),
            FieldSpec("in_business_hours", FieldType.BOOLEAN, "inside the account region's hours"),
            FieldSpec("tags", FieldType.STRING_SET, "free-form contact tags"),
            FieldSpec("subject", FieldType.STRING, "subject line or chat title", nullable=True),
        )
    }
)

_ATTRS_PREFIX: Final = "attrs."


def field_catalogue() -> list[dict[str, Any]]:
    """Return the fields, their types, operators and allowed values as JSON-ready data."""
    out: list[dict[str, Any]] = [
        {
            "field": spec.name,
            "type": spec.type.value,
            "ops": list(spec.ops),
            "values": list(spec.values) if spec.values is not None else None,
            "nullable": spec.nullable,
            "description": spec.description,
        }
        for spec in FIELDS.values()
    ]
    out.append(
        {
            "field": "attrs.<name>",
            "type": FieldType.DYNAMIC.value,
            "ops": list(OPERATORS),
            "values": None,
            "nullable": True,
            "description": "account custom attribute; a missing attribute fails every condition",
        }
    )
    return out
