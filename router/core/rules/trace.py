"""Carry a routing decision and its trace: which rules were tried and why each failed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from router.core.rules.attributes import ContactAttributes

if TYPE_CHECKING:
    from router.core.rules.ruleset import RuleSet

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
