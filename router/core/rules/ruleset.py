"""Order compiled rules and pick the first that matches a contact: the only module that does."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from router.core.rules.attributes import ContactAttributes
from router.core.rules.conditions import _compile_matcher, _failable, _Group, _Leaf
from router.core.rules.trace import Decision, RuleTrace, _PendingTrace

_TRACE_CACHE_SIZE: Final = 20_000


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
