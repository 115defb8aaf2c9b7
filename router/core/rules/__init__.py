"""Compile ordered routing rules and route contacts with them (SPEC 3).

Pure code: rule documents (plain dicts from TOML/JSON or the staff API) are validated and compiled
once per version into one generated function over precomputed frozensets, compiled regular
expressions and closures; ``RuleSet.route`` makes one call to it. The trace of a decision is
recorded as one small int per rule tried and rendered into readable strings only when it is read,
so routing stays cheap with 1,000 rules.

Rule document format::

    {"id": "premium-s1", "description": "...", "enabled": true, "default": false,
     "when": {"all": [{"field": "tier", "op": "eq", "value": "premium"},
                      {"any": [{"field": "severity", "op": "le", "value": "S2"},
                               {"field": "tags", "op": "contains", "value": "vip"}]}]},
     "then": {"queue": "premium-engineers", "priority": 90, "tags": ["p1"],
              "sla_policy": "premium"}}

The last rule must be the one default rule: ``"default": true``, no ``"when"``.
"""

from __future__ import annotations

import difflib
import itertools
import math
import operator
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal

import re2

from router.core.domain import Category, Channel, Severity, Tier, Topic

__all__ = [
    "FIELDS",
    "OPERATORS",
    "PATTERN_MAX_CHARS",
    "PATTERN_PROGRAM_BUDGET",
    "PATTERN_TEXT_CHARS",
    "ContactAttributes",
    "Decision",
    "FieldSpec",
    "FieldType",
    "Rule",
    "RuleError",
    "RuleSet",
    "RuleTrace",
    "RuleValidationError",
    "compile_rules",
    "field_catalogue",
    "validate_rules",
]

AttrValue = str | int | float | bool


# --------------------------------------------------------------------------------------------
# Contact attributes
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Field catalogue
# --------------------------------------------------------------------------------------------


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
_ATTR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")
_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_MAX_DEPTH: Final = 8
_TRACE_CACHE_SIZE: Final = 20_000
_FIELD_LIST: Final = ", ".join([*FIELDS, "attrs.<name>"])

# ``matches`` patterns come from staff and run on text from anyone, so they use RE2, which
# matches in time linear in the text (Python's re backtracks: '^(a+)+$' on 40 characters never
# finishes). Linear is not free, and a dry-run may carry 5,000 rules, so a rule set's patterns
# share three budgets (figures measured on one core):
# - Parsing: PATTERN_SET_CHARS characters, charged before compiling so that refused patterns
#   count too. RE2 parses ~1 character a microsecond, but case-folding a Unicode class (\p, \P)
#   takes up to 0.4 ms and a counted repetition ~70 us per thousand, however small the program
#   ('(?i)[\p{L}\p{N}]{0}' compiles to nothing): each class weighs _UNICODE_CLASS_CHARS more,
#   each repetition its bound over _REPEAT_PER_CHAR more. Worst case ~0.15 s per rule set.
# - Compiling: RE2 refuses a program over _PATTERN_MEMORY (~15,000 instructions) after ~2 ms,
#   charged as _REFUSED_PROGRAM_COST instructions.
# - Searching: PATTERN_PROGRAM_BUDGET instructions. RE2's DFA searches ordinary patterns in a few
#   microseconds, but on a pattern of a few hundred instructions or more it can give up and fall
#   back to an NFA costing ~10-20 ns per instruction per character of text: 5 patterns
#   '(?:[ab]{0,30}a){30}cN' (1,836 instructions each) take ~40 ms on 500 'a's. A pattern sees at
#   most PATTERN_TEXT_CHARS characters of its text (subjects are cut there on every channel), so
#   one contact's pattern searches cost at most ~50 ms. A few ms would need a budget below one
#   '\p{L}+' (1,201 instructions).
PATTERN_TEXT_CHARS: Final = 500
PATTERN_MAX_CHARS: Final = 1_000
PATTERN_SET_CHARS: Final = 30_000
PATTERN_PROGRAM_BUDGET: Final = 10_000
_UNICODE_CLASS_CHARS: Final = 100
_REPEAT_PER_CHAR: Final = 10
_PATTERN_MEMORY: Final = 256 << 10
_REFUSED_PROGRAM_COST: Final = 2_000  # what a program RE2 refuses as too large cost to find out
# A backslash escape (so '\\p' is no class), or a counted repetition and its bounds.
_COSTLY_SYNTAX: Final = re.compile(r"\\(.)|\{(\d{1,4})(?:,(\d{0,4}))?\}", re.DOTALL)
# RE2's own words for the Perl features it lacks; those errors get a hint on what to use instead.
_UNSUPPORTED: Final = (
    "invalid perl operator",
    "invalid escape sequence",
    "bad repetition operator",
)
_RE2_HINT: Final = (
    "rule patterns use RE2 syntax: no backreferences, lookahead, lookbehind or possessive "
    "quantifiers"
)


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # refused patterns are reported to the editor, not to stderr
    options.max_mem = _PATTERN_MEMORY
    return options


_RE2_OPTIONS: Final = _re2_options()


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


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleError:
    """Locate one problem in the rule documents, e.g. path 'rules[3].when.all[1].op'."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class RuleValidationError(ValueError):
    """Report every problem found in a set of rule documents."""

    def __init__(self, errors: Sequence[RuleError]) -> None:
        self.errors: list[RuleError] = list(errors)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{len(self.errors)} error(s) in routing rules:\n{lines}")


class _Invalid(Exception):
    """Signal a bad value; sub is appended to the value's path (e.g. '[2]')."""

    def __init__(self, message: str, sub: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.sub = sub


# --------------------------------------------------------------------------------------------
# Decisions and traces
# --------------------------------------------------------------------------------------------

Outcome = Literal["matched", "no_match", "disabled"]


@dataclass(frozen=True)
class RuleTrace:
    """Say what one rule did for a contact and, if it did not match, which condition failed."""

    rule_id: str
    outcome: Outcome
    failed_condition: str | None = None
    condition_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the trace entry as a JSON-serialisable dict."""
        return {
            "rule_id": self.rule_id,
            "outcome": self.outcome,
            "failed_condition": self.failed_condition,
            "condition_path": self.condition_path,
        }


@dataclass(frozen=True)
class Decision:
    """Carry where a contact goes, at what priority, and why (the trace)."""

    # ``trace`` is rendered on first access from what route() recorded (a few ints), so routing
    # stays cheap when nobody reads it; it takes no part in equality.

    queue: str
    priority: int  # 0..100, higher is served first
    sla_policy: str | None  # None: the caller applies the tier's policy
    tags: tuple[str, ...]  # sorted, unique
    matched_rule: str
    ruleset_version: int
    _trace: tuple[RuleTrace, ...] | _PendingTrace = field(default=(), repr=False, compare=False)

    @property
    def trace(self) -> tuple[RuleTrace, ...]:
        """Return every rule tried up to the match, in order, with its outcome."""
        trace = self._trace
        if isinstance(trace, _PendingTrace):
            trace = trace.render()
            # Caching a pure function of immutable inputs: a race only renders it twice.
            object.__setattr__(self, "_trace", trace)
        return trace

    def to_dict(self) -> dict[str, Any]:
        """Return the decision and its trace as a JSON-serialisable dict."""
        return {
            "queue": self.queue,
            "priority": self.priority,
            "sla_policy": self.sla_policy,
            "tags": list(self.tags),
            "matched_rule": self.matched_rule,
            "ruleset_version": self.ruleset_version,
            "trace": [t.to_dict() for t in self.trace],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Rebuild a decision stored with ``to_dict``."""
        return cls(
            queue=data["queue"],
            priority=data["priority"],
            sla_policy=data["sla_policy"],
            tags=tuple(data["tags"]),
            matched_rule=data["matched_rule"],
            ruleset_version=data["ruleset_version"],
            _trace=tuple(
                RuleTrace(
                    rule_id=t["rule_id"],
                    outcome=t["outcome"],
                    failed_condition=t.get("failed_condition"),
                    condition_path=t.get("condition_path"),
                )
                for t in data.get("trace", ())
            ),
        )


class _PendingTrace:
    """Hold what route() recorded: the failed-condition index of each enabled rule tried."""

    __slots__ = ("attrs", "failures", "ruleset")

    def __init__(self, ruleset: RuleSet, attrs: ContactAttributes, failures: tuple[int, ...]):
        self.ruleset = ruleset
        self.attrs = attrs
        self.failures = failures

    def render(self) -> tuple[RuleTrace, ...]:
        """Turn the recorded indices into readable trace entries."""
        return self.ruleset._render(self.attrs, self.failures)


# --------------------------------------------------------------------------------------------
# Compiled conditions
# --------------------------------------------------------------------------------------------
#
# Each condition compiles to a Python expression over the contact ``a``. The source text only
# ever contains whitelisted field names (keys of FIELDS), fixed operator symbols and generated
# constant names; every value from a rule document (sets, regexes, datetimes, custom-attribute
# closures) is bound through the function's namespace, never spliced into the source. One
# function for the whole rule list then evaluates every condition inline: function calls
# dominate the cost of routing in CPython, and this leaves none per rule (two or three per
# condition with one closure per condition).

Test = Callable[[ContactAttributes], bool]
Matcher = Callable[[ContactAttributes, Callable[[int], None]], int]

_MISSING: Final = object()
_NAMES: Final = itertools.count()
_SYMBOLS: Final[Mapping[str, str]] = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
}


def _bind(consts: dict[str, Any], value: object) -> str:
    """Add value to a namespace under a fresh name and return the name."""
    name = f"_k{next(_NAMES)}"
    consts[name] = value
    return name


def _build(source: str, consts: Mapping[str, Any], name: str) -> Any:
    """Compile generated source (see above) and return the object it defines as name."""
    namespace: dict[str, Any] = {"__builtins__": {}, **consts}
    exec(compile(source, "<routing rule>", "exec"), namespace)
    return namespace[name]


class _Leaf:
    """Test one field against a value: a compiled field–operator–value condition."""

    __slots__ = (
        "_test",
        "cacheable",
        "consts",
        "expr",
        "field",
        "get",
        "leaves",
        "op",
        "path",
        "text",
        "value",
    )

    def __init__(
        self, field: str, op: str, value: Any, path: str, expr: str, consts: dict[str, Any]
    ) -> None:
        self.field = field
        self.op = op
        self.value = value  # normalised document value, for rendering and to_documents()
        self.path = path
        self.expr: str = expr
        self.consts = consts
        self.text = f"{field} {op} {_fmt(value)}"
        self.get = _getter(field)
        self.leaves: tuple[_Leaf, ...] = (self,)
        # Equal datetimes may differ in offset and so in rendering; they rarely repeat anyway.
        self.cacheable = field != "received_at"
        self._test: Test | None = None

    @property
    def test(self) -> Test:
        """Return the condition as a function of the contact (built on first use)."""
        if self._test is None:
            self._test = _build(f"def test(a):\n    return {self.expr}\n", self.consts, "test")
        return self._test

    def document(self) -> dict[str, Any]:
        return {"field": self.field, "op": self.op, "value": _copy_value(self.value)}

    def explain(self, attrs: ContactAttributes) -> tuple[str, str]:
        actual = self.get(attrs)
        was = "attribute missing" if actual is _MISSING else f"was {_fmt(actual)}"
        return f"{self.text} ({was})", self.path


class _Group:
    """Combine conditions: all must hold, or any one must."""

    __slots__ = ("_test", "cacheable", "children", "consts", "expr", "kind", "leaves", "path")

    def __init__(self, kind: str, children: list[_Leaf | _Group], path: str) -> None:
        self.kind = kind
        self.children = children
        self.path = path
        joiner = " and " if kind == "all" else " or "
        self.expr: str = "(" + joiner.join(c.expr for c in children) + ")"
        self.consts: dict[str, Any] = {}
        for child in children:
            self.consts.update(child.consts)
        self.leaves: tuple[_Leaf, ...] = tuple(leaf for c in children for leaf in c.leaves)
        self.cacheable = all(leaf.cacheable for leaf in self.leaves)
        self._test: Test | None = None

    @property
    def test(self) -> Test:
        """Return the group as a function of the contact (built on first use)."""
        if self._test is None:
            self._test = _build(f"def test(a):\n    return {self.expr}\n", self.consts, "test")
        return self._test

    def document(self) -> dict[str, Any]:
        return {self.kind: [c.document() for c in self.children]}

    def explain(self, attrs: ContactAttributes) -> tuple[str, str]:
        if self.kind == "all":
            # An all-group fails on its first false child; point straight at it.
            for child in self.children:
                if not child.test(attrs):
                    return child.explain(attrs)
            return "all of the conditions held", self.path  # not reached for a failed group
        parts = []
        for child in self.children:
            text, _ = child.explain(attrs)
            parts.append(f"({text})" if isinstance(child, _Group) else text)
        return "none of: " + "; ".join(parts), self.path


def _failable(when: _Group | None) -> tuple[_Leaf | _Group, ...]:
    """Return the conditions route() may record as failed, by index (see _compile_matcher)."""
    if when is None:
        return ()
    return tuple(when.children) if when.kind == "all" else (when,)


def _getter(field: str) -> Callable[[ContactAttributes], object]:
    """Return a function reading field (or custom attribute) from a contact, for traces."""
    if field.startswith(_ATTRS_PREFIX):
        name = field[len(_ATTRS_PREFIX) :]
        return lambda a: a.attrs.get(name, _MISSING)
    get: Callable[[ContactAttributes], object] = operator.attrgetter(field)
    return get


def _compile_matcher(conditions: Sequence[_Group]) -> Matcher:
    """Compile the enabled rules' conditions, in order, into one function match(a, record)."""
    # match() returns the index of the first rule whose conditions hold (len(conditions) means
    # the default), after calling record(i) for each rule before it with the index of its failed
    # top-level condition (always 0 for an "any" group).
    # One flat function for the whole list: no Python call per rule, which is what makes
    # 1,000 rules cheap. Rules are sequential if/elif chains, so the code stays shallow.
    lines = ["def match(a, record):"]
    consts: dict[str, Any] = {}
    for k, group in enumerate(conditions):
        consts.update(group.consts)
        if group.kind == "any":
            lines.append(f"    if {group.expr}: return {k}")
            lines.append("    record(0)")
            continue
        for i, child in enumerate(group.children):
            lines.append(f"    {'elif' if i else 'if'} not {child.expr}: record({i})")
        lines.append(f"    else: return {k}")
    lines.append(f"    return {len(conditions)}")
    matcher: Matcher = _build("\n".join(lines) + "\n", consts, "match")
    return matcher


# --------------------------------------------------------------------------------------------
# Rules and rule sets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Hold one compiled rule: its identity, its conditions and its action."""

    id: str
    description: str
    enabled: bool
    default: bool
    queue: str
    priority: int | None
    priority_boost: int | None
    tags: tuple[str, ...]
    sla_policy: str | None
    position: int
    when: _Group | None = field(repr=False, compare=False)

    def to_document(self) -> dict[str, Any]:
        """Return the rule as a normalised rule document."""
        doc: dict[str, Any] = {
            "id": self.id,
            "description": self.description,
            "enabled": self.enabled,
            "default": self.default,
        }
        if self.when is not None:
            doc["when"] = self.when.document()
        then: dict[str, Any] = {"queue": self.queue}
        if self.priority is not None:
            then["priority"] = self.priority
        if self.priority_boost is not None:
            then["priority_boost"] = self.priority_boost
        then["tags"] = list(self.tags)
        if self.sla_policy is not None:
            then["sla_policy"] = self.sla_policy
        doc["then"] = then
        return doc


class RuleSet:
    """Route contacts with an ordered, compiled, immutable set of rules at one version."""

    __slots__ = ("_enabled", "_entries", "_match", "_rules", "_trace_plan", "version")

    def __init__(self, rules: Sequence[Rule], version: int) -> None:
        self.version = version
        self._rules = tuple(rules)
        # Enabled rules in order, the default last; _match returns an index into this.
        self._enabled = tuple(r for r in self._rules if r.enabled)
        self._match = _compile_matcher([r.when for r in self._enabled if r.when is not None])
        # Trace entries for "disabled" and "matched" never vary; failures are cached by the
        # values of the fields they depend on (mostly enums), so rendering a long trace is
        # mostly dictionary look-ups.
        self._trace_plan = tuple(
            (
                r,
                RuleTrace(r.id, "matched" if r.enabled else "disabled"),
                None if not r.enabled else _failable(r.when),
            )
            for r in self._rules
        )
        self._entries: dict[tuple[object, ...], RuleTrace] = {}

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Return the rules in evaluation order."""
        return self._rules

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def route(self, attrs: ContactAttributes, *, base_priority: int = 0) -> Decision:
        """Return the decision of the first enabled rule matching attrs (the default if none)."""
        failures: list[int] = []
        rule = self._enabled[self._match(attrs, failures.append)]
        priority = rule.priority
        if priority is None:
            priority = min(100, max(0, base_priority + (rule.priority_boost or 0)))
        return Decision(
            rule.queue,
            priority,
            rule.sla_policy,
            rule.tags,
            rule.id,
            self.version,
            _PendingTrace(self, attrs, tuple(failures)),
        )

    def _render(self, attrs: ContactAttributes, failures: Sequence[int]) -> tuple[RuleTrace, ...]:
        """Build the trace of a route() call that recorded failures for attrs."""
        out: list[RuleTrace] = []
        append = out.append
        cache = self._entries
        recorded = iter(failures)
        for rule, fixed, failed_nodes in self._trace_plan:
            if failed_nodes is None:  # disabled
                append(fixed)
                continue
            index = next(recorded, -1)
            if index < 0:
                append(fixed)
                break
            node = failed_nodes[index]
            # Leaves belong to one rule, so the node itself identifies rule and condition. The
            # class is part of the key because True == 1 == 1.0 but they render differently.
            key: tuple[object, ...] = ()
            entry = None
            if type(node) is _Leaf:
                if node.cacheable:
                    actual = node.get(attrs)
                    key = (node, actual.__class__, actual)
            elif node.cacheable:
                key = (node, *[(v.__class__, v) for v in [f.get(attrs) for f in node.leaves]])
            if key:
                try:
                    entry = cache.get(key)
                except TypeError:  # an unhashable custom attribute value: render uncached
                    key = ()
            if entry is None:
                text, path = node.explain(attrs)
                entry = RuleTrace(rule.id, "no_match", text, f"rules[{rule.position}].{path}")
                if key:
                    if len(cache) >= _TRACE_CACHE_SIZE:
                        cache.clear()  # values like received_at never repeat: start afresh
                    cache[key] = entry
            append(entry)
        return tuple(out)

    def explain(self, attrs: ContactAttributes, *, base_priority: int = 0) -> dict[str, Any]:
        """Return the attributes, the decision and its rendered trace as JSON-ready data."""
        decision = self.route(attrs, base_priority=base_priority)
        data = decision.to_dict()
        trace = data.pop("trace")
        return {"attributes": attrs.to_dict(), "decision": data, "trace": trace}

    def to_documents(self) -> list[dict[str, Any]]:
        """Return the normalised rule documents, for storage and versioning."""
        return [r.to_document() for r in self._rules]


# --------------------------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------------------------

_RULE_KEYS: Final = ("id", "description", "enabled", "default", "when", "then")
_THEN_KEYS: Final = ("queue", "priority", "priority_boost", "tags", "sla_policy")
_LEAF_KEYS: Final = ("field", "op", "value")
_GROUP_KINDS: Final = ("all", "any")
_COMPARE: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def compile_rules(
    documents: Sequence[Mapping[str, Any]],
    *,
    queues: Collection[str],
    sla_policies: Collection[str],
    version: int = 0,
) -> RuleSet:
    """Validate and compile rule documents; raise RuleValidationError listing every problem."""
    compiler = _Compiler(frozenset(queues), frozenset(sla_policies))
    rules = compiler.compile(documents)
    if compiler.errors:
        raise RuleValidationError(compiler.errors)
    return RuleSet(rules, version)


def validate_rules(
    documents: Sequence[Mapping[str, Any]],
    *,
    queues: Collection[str],
    sla_policies: Collection[str],
) -> list[RuleError]:
    """Return every problem in the rule documents (empty if they compile)."""
    compiler = _Compiler(frozenset(queues), frozenset(sla_policies))
    compiler.compile(documents)
    return compiler.errors


class _Compiler:
    def __init__(self, queues: frozenset[str], sla_policies: frozenset[str]) -> None:
        self.queues = queues
        self.sla_policies = sla_policies
        self.errors: list[RuleError] = []
        self.patterns = _Patterns()

    def error(self, path: str, message: str) -> None:
        self.errors.append(RuleError(path, message))

    # -- rules -------------------------------------------------------------------------------

    def compile(self, documents: object) -> list[Rule]:
        if isinstance(documents, str | bytes | Mapping) or not isinstance(documents, Sequence):
            self.error("rules", f"expected a list of rules, got {_type_name(documents)}")
            return []
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        defaults: list[int] = []
        for i, doc in enumerate(documents):
            path = f"rules[{i}]"
            if not isinstance(doc, Mapping):
                self.error(path, f"a rule must be a table/object, got {_type_name(doc)}")
                continue
            if doc.get("default") is True:
                defaults.append(i)
            rule = self.compile_rule(doc, i, path)
            rule_id = doc.get("id")
            if isinstance(rule_id, str):
                if rule_id in seen:
                    self.error(
                        f"{path}.id",
                        f"duplicate rule id {rule_id!r} (already used by rules[{seen[rule_id]}])",
                    )
                else:
                    seen[rule_id] = i
            if rule is not None:
                rules.append(rule)
        self.check_default(defaults, len(documents))
        return rules

    def check_default(self, defaults: list[int], count: int) -> None:
        if not defaults:
            self.error(
                "rules",
                'missing default rule: the last rule must have "default": true and no "when"',
            )
            return
        first = defaults[0]
        for extra in defaults[1:]:
            self.error(
                f"rules[{extra}].default",
                f"extra default rule: only one is allowed (rules[{first}] is already the default)",
            )
        if len(defaults) == 1 and first != count - 1:
            self.error(
                f"rules[{first}].default",
                f"the default rule must be the last rule (it is rule {first + 1} of {count})",
            )

    def compile_rule(self, doc: Mapping[str, Any], position: int, path: str) -> Rule | None:
        before = len(self.errors)
        self.unknown_keys(doc, _RULE_KEYS, path)

        rule_id = doc.get("id")
        if rule_id is None:
            self.error(f"{path}.id", "missing 'id'")
        elif not isinstance(rule_id, str):
            self.error(f"{path}.id", f"expected a string, got {_type_name(rule_id)}")
        elif not _RULE_ID.fullmatch(rule_id):
            self.error(
                f"{path}.id",
                f"invalid rule id {rule_id!r}: use 1-64 letters, digits, '.', '_', ':' or '-', "
                "starting with a letter or digit",
            )
        description = doc.get("description", "")
        if not isinstance(description, str):
            self.error(f"{path}.description", f"expected a string, got {_type_name(description)}")
        enabled = self.boolean(doc, "enabled", True, path)
        is_default = self.boolean(doc, "default", False, path)

        when: _Group | None = None
        if is_default:
            if "when" in doc:
                self.error(f"{path}.when", "the default rule always matches; remove 'when'")
            if not enabled:
                self.error(f"{path}.enabled", "the default rule cannot be disabled")
        elif "when" not in doc:
            self.error(f"{path}.when", "missing 'when' (only the default rule may omit it)")
        else:
            when = self.compile_when(doc["when"], f"{path}.when")

        then = self.compile_then(doc.get("then"), f"{path}.then", "then" in doc)
        if len(self.errors) > before or then is None:
            return None
        assert isinstance(rule_id, str) and isinstance(description, str)
        queue, priority, boost, tags, sla_policy = then
        return Rule(
            id=rule_id,
            description=description,
            enabled=enabled,
            default=is_default,
            queue=queue,
            priority=priority,
            priority_boost=boost,
            tags=tags,
            sla_policy=sla_policy,
            position=position,
            when=when,
        )

    def boolean(self, doc: Mapping[str, Any], key: str, default: bool, path: str) -> bool:
        value = doc.get(key, default)
        if isinstance(value, bool):
            return value
        self.error(f"{path}.{key}", f"expected true or false, got {_type_name(value)}")
        return default

    def unknown_keys(self, doc: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
        for key in doc:
            if key not in allowed:
                self.error(
                    f"{path}.{key}",
                    f"unknown key {key!r}{_did_you_mean(key, allowed)}; "
                    f"expected one of: {', '.join(allowed)}",
                )

    def compile_then(
        self, then: object, path: str, present: bool
    ) -> tuple[str, int | None, int | None, tuple[str, ...], str | None] | None:
        if not present:
            self.error(path, "missing 'then' (the action: queue, priority, tags, sla_policy)")
            return None
        if not isinstance(then, Mapping):
            self.error(path, f"expected a table/object, got {_type_name(then)}")
            return None
        before = len(self.errors)
        self.unknown_keys(then, _THEN_KEYS, path)

        queue = then.get("queue")
        if queue is None:
            self.error(f"{path}.queue", "missing 'queue'")
        elif not isinstance(queue, str):
            self.error(f"{path}.queue", f"expected a string, got {_type_name(queue)}")
        elif queue not in self.queues:
            self.error(
                f"{path}.queue",
                f"unknown queue {queue!r}{_did_you_mean(queue, self.queues)}; "
                f"known queues: {_listing(self.queues)}",
            )

        priority = self.integer(then, "priority", 0, 100, path)
        boost = self.integer(then, "priority_boost", -100, 100, path)
        if "priority" in then and "priority_boost" in then:
            self.error(path, "set either 'priority' or 'priority_boost', not both")

        tags: list[str] = []
        raw_tags = then.get("tags", [])
        if isinstance(raw_tags, str) or not isinstance(raw_tags, Sequence):
            self.error(f"{path}.tags", f"expected a list of strings, got {_type_name(raw_tags)}")
        else:
            for i, tag in enumerate(raw_tags):
                if not isinstance(tag, str) or not tag.strip():
                    self.error(f"{path}.tags[{i}]", f"expected a non-empty string, got {_fmt(tag)}")
                else:
                    tags.append(tag)

        sla_policy = then.get("sla_policy")
        if sla_policy is not None:
            if not isinstance(sla_policy, str):
                self.error(f"{path}.sla_policy", f"expected a string, got {_type_name(sla_policy)}")
            elif sla_policy not in self.sla_policies:
                self.error(
                    f"{path}.sla_policy",
                    f"unknown SLA policy {sla_policy!r}"
                    f"{_did_you_mean(sla_policy, self.sla_policies)}; "
                    f"known SLA policies: {_listing(self.sla_policies)}",
                )
        if len(self.errors) > before:
            return None
        assert isinstance(queue, str)
        return queue, priority, boost, tuple(sorted(set(tags))), sla_policy

    def integer(
        self, doc: Mapping[str, Any], key: str, low: int, high: int, path: str
    ) -> int | None:
        if key not in doc:
            return None
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(f"{path}.{key}", f"expected an integer, got {_type_name(value)}")
            return None
        if not low <= value <= high:
            self.error(f"{path}.{key}", f"{key} {value} out of range {low}..{high}")
            return None
        return value

    # -- conditions --------------------------------------------------------------------------

    def compile_when(self, when: object, path: str) -> _Group | None:
        if not isinstance(when, Mapping) or not any(k in when for k in _GROUP_KINDS):
            got = (
                "a table/object with keys " + ", ".join(repr(k) for k in when)
                if isinstance(when, Mapping)
                else _type_name(when)
            )
            self.error(
                path, f'expected {{"all": [conditions]}} or {{"any": [conditions]}}, got {got}'
            )
            return None
        node = self.compile_node(when, path, "when", 0)
        assert node is None or isinstance(node, _Group)
        return node

    def compile_node(self, node: object, path: str, rel: str, depth: int) -> _Leaf | _Group | None:
        """Compile a condition; rel is the path relative to the rule, kept for traces."""
        if not isinstance(node, Mapping):
            self.error(
                path,
                "a condition must be a table/object with 'field', 'op' and 'value', "
                f"or a nested 'all'/'any' group; got {_type_name(node)}",
            )
            return None
        kinds = [k for k in _GROUP_KINDS if k in node]
        if kinds:
            return self.compile_group(node, kinds, path, rel, depth)
        return self.compile_leaf(node, path, rel)

    def compile_group(
        self,
        node: Mapping[str, Any],
        kinds: list[str],
        path: str,
        rel: str,
        depth: int,
    ) -> _Group | None:
        if len(kinds) > 1:
            self.error(path, "a group has either 'all' or 'any', not both")
            return None
        kind = kinds[0]
        for key in node:
            if key != kind:
                self.error(
                    f"{path}.{key}",
                    f"unknown key {key!r} in an {kind!r} group (a group holds only {kind!r})",
                )
        if depth >= _MAX_DEPTH:
            self.error(path, f"groups nested too deeply (at most {_MAX_DEPTH} levels)")
            return None
        items = node[kind]
        if isinstance(items, str) or not isinstance(items, Sequence):
            self.error(f"{path}.{kind}", f"expected a list of conditions, got {_type_name(items)}")
            return None
        if not items:
            self.error(f"{path}.{kind}", "expected at least one condition")
            return None
        children: list[_Leaf | _Group] = []
        ok = True
        for i, item in enumerate(items):
            child = self.compile_node(item, f"{path}.{kind}[{i}]", f"{rel}.{kind}[{i}]", depth + 1)
            if child is None:
                ok = False
            else:
                children.append(child)
        if not ok:
            return None
        return _Group(kind, children, rel)

    def compile_leaf(self, node: Mapping[str, Any], path: str, rel: str) -> _Leaf | None:
        before = len(self.errors)
        self.unknown_keys(node, _LEAF_KEYS, path)
        for key in _LEAF_KEYS:
            if key not in node:
                self.error(f"{path}.{key}", f"missing {key!r}")
        name, op = node.get("field"), node.get("op")

        spec: FieldSpec | None = None
        attr_name: str | None = None
        if isinstance(name, str) and name.startswith(_ATTRS_PREFIX):
            attr_name = name[len(_ATTRS_PREFIX) :]
            if not _ATTR_NAME.fullmatch(attr_name):
                self.error(
                    f"{path}.field",
                    f"invalid custom attribute name {attr_name!r} in {name!r}: use letters, "
                    "digits, '_', '.', ':' or '-'",
                )
                attr_name = None
        elif isinstance(name, str):
            spec = FIELDS.get(name)
            if spec is None:
                self.error(
                    f"{path}.field",
                    f"unknown field {name!r}{_did_you_mean(name, FIELDS)}; "
                    f"valid fields: {_FIELD_LIST}",
                )
        elif name is not None:
            self.error(f"{path}.field", f"expected a string, got {_type_name(name)}")

        if isinstance(op, str) and op not in OPERATORS:
            self.error(
                f"{path}.op",
                f"unknown operator {op!r}{_did_you_mean(op, OPERATORS)}; "
                f"operators: {', '.join(OPERATORS)}",
            )
            op = None
        elif op is not None and not isinstance(op, str):
            self.error(f"{path}.op", f"expected a string, got {_type_name(op)}")
            op = None
        elif spec is not None and op is not None and op not in spec.ops:
            self.error(
                f"{path}.op",
                f"operator {op!r} is not valid for field {spec.name!r} (type {spec.type.value}); "
                f"valid operators: {', '.join(spec.ops)}",
            )
            op = None

        if len(self.errors) > before or op is None or "value" not in node:
            return None
        assert isinstance(name, str)
        try:
            if attr_name is not None:
                value, expr, consts = _compile_attr(attr_name, op, node["value"], self.patterns)
            else:
                assert spec is not None
                value, expr, consts = _compile_field(spec, op, node["value"], self.patterns)
        except _Invalid as exc:
            self.error(f"{path}.value{exc.sub}", exc.message)
            return None
        return _Leaf(name, op, value, rel, expr, consts)


# -- value validation and condition expressions ------------------------------------------------


def _compile_field(
    spec: FieldSpec, op: str, raw: object, patterns: _Patterns
) -> tuple[Any, str, dict[str, Any]]:
    """Validate raw for spec/op; return the normalised value, the expression and its constants."""
    # Safe to splice: spec.name is a key of FIELDS, a fixed identifier (see "Compiled conditions").
    attr = f"a.{spec.name}"
    consts: dict[str, Any] = {}
    kind = spec.type
    if kind in (FieldType.ENUM, FieldType.ORDERED_ENUM, FieldType.STRING, FieldType.BOOLEAN):
        if op in ("eq", "ne", "in", "not_in"):
            if op in ("eq", "ne"):
                value: Any = _scalar(spec, raw, op, "")
                members = frozenset([value])
            else:
                items = enumerate(_list(raw, op))
                value = list(dict.fromkeys(_scalar(spec, v, op, f"[{i}]") for i, v in items))
                members = frozenset(value)
            # Enum members hash and compare like their string values, so a set of strings
            # matches both Tier.PREMIUM and "premium".
            negate = "not " if op in ("ne", "not_in") else ""
            return value, f"({attr} {negate}in {_bind(consts, members)})", consts
        if kind is FieldType.ORDERED_ENUM:
            # Severity comparisons by rank become a precomputed membership test.
            bound = Severity(_scalar(spec, raw, op, ""))
            cmp = _COMPARE[op]
            allowed = frozenset(s.value for s in Severity if cmp(s.rank, bound.rank))
            return bound.value, f"({attr} in {_bind(consts, allowed)})", consts
        if op == "contains":
            needle = _bind(consts, _string(raw, allow_empty=False).casefold())
            return raw, f"({attr} is not None and {needle} in {attr}.casefold())", consts
        if op == "matches":
            search = _bind(consts, patterns.searcher(raw))
            return raw, f"({attr} is not None and {search}({attr}))", consts
    if kind is FieldType.DATETIME:
        when = _datetime(raw)
        return when.isoformat(), f"({attr} {_SYMBOLS[op]} {_bind(consts, when)})", consts
    if kind is FieldType.STRING_SET:
        if op == "contains":
            tag = _string(raw, allow_empty=False)
            return tag, f"({_bind(consts, tag)} in {attr})", consts
        items = enumerate(_list(raw, op))
        tags = list(dict.fromkeys(_string(t, allow_empty=False, sub=f"[{i}]") for i, t in items))
        wanted = _bind(consts, frozenset(tags))
        negate = "not " if op == "in" else ""
        return tags, f"({negate}{wanted}.isdisjoint({attr}))", consts
    raise AssertionError(f"no compiler for {spec.name} {op}")  # ops are checked before


def _scalar(spec: FieldSpec, raw: object, op: str, sub: str) -> Any:
    """Validate one value of an enum, string or boolean field."""
    if raw is None:
        if spec.nullable and op in ("eq", "ne"):
            return None
        raise _Invalid(f"expected {_expected(spec)}, got null", sub)
    if spec.type is FieldType.BOOLEAN:
        if not isinstance(raw, bool):
            raise _Invalid(f"expected true or false, got {_type_name(raw)}", sub)
        return raw
    if not isinstance(raw, str):
        raise _Invalid(f"expected {_expected(spec)}, got {_type_name(raw)}", sub)
    if spec.values is not None and raw not in spec.values:
        raise _Invalid(
            f"unknown value {raw!r} for field {spec.name!r}{_did_you_mean(raw, spec.values)}; "
            f"allowed: {', '.join(spec.values)}",
            sub,
        )
    return raw


def _expected(spec: FieldSpec) -> str:
    if spec.values is not None:
        return "one of " + ", ".join(spec.values)
    return "a string"


def _list(raw: object, op: str) -> Sequence[object]:
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise _Invalid(f"operator {op!r} takes a list of values, got {_type_name(raw)}")
    if not raw:
        raise _Invalid(f"operator {op!r} needs at least one value")
    return raw


def _string(raw: object, *, allow_empty: bool, sub: str = "") -> str:
    if not isinstance(raw, str):
        raise _Invalid(f"expected a string, got {_type_name(raw)}", sub)
    if not allow_empty and not raw:
        raise _Invalid("expected a non-empty string", sub)
    return raw


def _datetime(raw: object) -> datetime:
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise _Invalid(
                f"expected an ISO 8601 date-time with offset (e.g. '2025-01-31T09:00:00+00:00'), "
                f"got {raw!r}"
            ) from None
    else:
        raise _Invalid(f"expected an ISO 8601 date-time string, got {_type_name(raw)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _Invalid(f"date-time {_fmt(raw)} needs a UTC offset (e.g. '+00:00' or 'Z')")
    return value


def _compile_attr(
    name: str, op: str, raw: object, patterns: _Patterns
) -> tuple[Any, str, dict[str, Any]]:
    """Validate raw for custom attribute name; return value, expression and constants."""
    # Every expression starts with "name in a.attrs": a missing attribute fails every
    # condition, ne and not_in included, so rules never act on data an account lacks.
    consts: dict[str, Any] = {}
    key = _bind(consts, name)
    present = f"{key} in a.attrs"
    actual = f"a.attrs[{key}]"
    if op in ("eq", "ne", "in", "not_in"):
        if op in ("eq", "ne"):
            value: Any = _attr_scalar(raw, "")
            values = [value]
        else:
            items = enumerate(_list(raw, op))
            value = list(dict.fromkeys(_attr_scalar(v, f"[{i}]") for i, v in items))
            values = value
        negate = "not " if op in ("ne", "not_in") else ""
        if all(isinstance(v, str) for v in values):
            # Plain set membership is exact for strings: no number or boolean equals one.
            members = _bind(consts, frozenset(values))
            return value, f"({present} and {actual} {negate}in {members})", consts
        # With numbers or booleans in play, compare (kind, value) pairs so True != 1.
        keys = _bind(consts, frozenset(_attr_key(v) for v in values))
        kind_of = _bind(consts, _attr_key)
        return value, f"({present} and {kind_of}({actual}) {negate}in {keys})", consts
    if op in ("lt", "le", "gt", "ge"):
        if not _is_number(raw) or not math.isfinite(raw):  # type: ignore[arg-type]
            raise _Invalid(f"operator {op!r} on a custom attribute takes a number, got {_fmt(raw)}")
        numeric = _bind(consts, frozenset([int, float]))  # by exact class: bool is no number here
        bound = _bind(consts, raw)
        expr = (
            f"({present} and {actual}.__class__ in {numeric} and {actual} {_SYMBOLS[op]} {bound})"
        )
        return raw, expr, consts
    is_str = f"{_bind(consts, isinstance)}({actual}, {_bind(consts, str)})"
    if op == "contains":
        needle = _bind(consts, _string(raw, allow_empty=False).casefold())
        return raw, f"({present} and {is_str} and {needle} in {actual}.casefold())", consts
    search = _bind(consts, patterns.searcher(raw))
    return raw, f"({present} and {is_str} and {search}({actual}))", consts


class _Patterns:
    """Compile a rule set's patterns with RE2, once each, within the set's complexity budget."""

    def __init__(self) -> None:
        self.tests: dict[str, Callable[[str], bool]] = {}
        self.spent = 0  # RE2 program instructions compiled (or refused as too large) so far
        self.parsed = 0  # weighted pattern characters given to RE2 so far, refused ones too

    def searcher(self, raw: object) -> Callable[[str], bool]:
        """Return a shared test for the pattern that remembers its last text and result."""
        pattern = _string(raw, allow_empty=False)
        cached = self.tests.get(pattern)
        if cached is not None:
            return cached
        test = _search_test(self.compile(pattern).search)
        self.tests[pattern] = test
        return test

    def compile(self, pattern: str) -> Any:
        """Compile one pattern; raise _Invalid if RE2 cannot run it or it costs too much."""
        if len(pattern) > PATTERN_MAX_CHARS:
            raise _Invalid(
                f"regular expression too long ({len(pattern)} characters; "
                f"at most {PATTERN_MAX_CHARS})"
            )
        if self.spent > PATTERN_PROGRAM_BUDGET:
            raise _Invalid(_over_budget(pattern))
        if self.parsed > PATTERN_SET_CHARS:
            raise _Invalid(_over_chars(pattern))
        self.parsed += _parse_cost(pattern)
        if self.parsed > PATTERN_SET_CHARS:
            raise _Invalid(_over_chars(pattern))
        try:
            compiled = re2.compile(pattern, _RE2_OPTIONS)
        except re2.error as exc:
            raw_reason = exc.args[0] if exc.args else ""
            reason = (
                raw_reason.decode("utf-8", "replace")
                if isinstance(raw_reason, bytes)
                else str(raw_reason)
            )
            message = f"bad regular expression {pattern!r}: {reason}"
            if any(reason.startswith(words) for words in _UNSUPPORTED):
                message += f" ({_RE2_HINT})"
            elif reason.startswith("pattern too large"):
                self.spent += _REFUSED_PROGRAM_COST
                message += " (make it simpler or shorter)"
            raise _Invalid(message) from None
        self.spent += compiled.programsize
        if self.spent > PATTERN_PROGRAM_BUDGET:
            raise _Invalid(_over_budget(pattern))
        return compiled


def _parse_cost(pattern: str) -> int:
    """Return what parsing the pattern counts against PATTERN_SET_CHARS."""
    cost = len(pattern)
    for found in _COSTLY_SYNTAX.finditer(pattern):
        escaped, low, high = found.groups()
        if escaped is not None:
            if escaped in "pP":
                cost += _UNICODE_CLASS_CHARS
        else:
            cost += min(int(high or low), 1_000) // _REPEAT_PER_CHAR  # RE2 refuses more
    return cost


def _over_chars(pattern: str) -> str:
    return (
        f"regular expression {pattern!r} is one too many: the rule set's patterns together "
        f"exceed {PATTERN_SET_CHARS:,} characters (a \\p or \\P class counts "
        f"{_UNICODE_CLASS_CHARS} more, a repetition {{n}} n/{_REPEAT_PER_CHAR} more; "
        "simplify or combine them)"
    )


def _over_budget(pattern: str) -> str:
    return (
        f"regular expression {pattern!r} is one too many: the rule set's patterns together "
        f"exceed {PATTERN_PROGRAM_BUDGET:,} RE2 instructions (simplify or combine them)"
    )


def _search_test(search: Callable[[str], object]) -> Callable[[str], bool]:
    """Return a test of text against a compiled search that remembers its last text and result."""
    limit = PATTERN_TEXT_CHARS
    # A regular expression costs about a microsecond per search; several rules often test the
    # same pattern against the same subject within one route() call. Texts are compared by
    # identity (cheap, and an identical object has identical contents); the (text, result) pair
    # is replaced as a whole, so concurrent callers never see a torn entry.
    last: list[tuple[str | None, bool]] = [(None, False)]

    def test(text: str) -> bool:
        seen, result = last[0]
        if seen is text:
            return result
        try:
            result = search(text[:limit]) is not None
        except UnicodeEncodeError:  # RE2 reads UTF-8; a lone surrogate cannot be encoded
            clean = text[:limit].encode("utf-8", "replace").decode("utf-8")
            result = search(clean) is not None
        last[0] = (text, result)
        return result

    return test


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _attr_scalar(raw: object, sub: str) -> AttrValue:
    if isinstance(raw, bool | str):
        return raw
    if _is_number(raw) and math.isfinite(raw):  # type: ignore[arg-type]
        return raw  # type: ignore[return-value]
    raise _Invalid(f"expected a string, number or true/false, got {_fmt(raw)}", sub)


def _attr_key(value: object) -> tuple[str, object]:
    # Tag values with their kind so True never equals 1 and '1' never equals 1.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("str", value)
    return ("other", id(value))


# -- formatting --------------------------------------------------------------------------------


def _plain(value: object) -> Any:
    return value.value if isinstance(value, Enum) else value


def _fmt(value: object) -> str:
    """Render a value for humans: strings quoted, enums by value, tags sorted."""
    if isinstance(value, Enum):
        return repr(value.value)
    if isinstance(value, datetime):
        return repr(value.isoformat())
    if isinstance(value, frozenset | set):
        return repr(sorted(_plain(v) for v in value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if value is None:
        return "not set"
    return repr(value)


def _copy_value(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _type_name(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        tuple: "a list",
        dict: "a table/object",
        type(None): "null",
    }
    for kind, name in names.items():
        if type(value) is kind:
            return name
    if isinstance(value, Mapping):
        return "a table/object"
    return type(value).__name__


def _did_you_mean(word: str, candidates: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listing(values: Collection[str]) -> str:
    return ", ".join(sorted(values)) if values else "(none defined)"
