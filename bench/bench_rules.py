"""Measure RuleSet.route() throughput with 10, 100 and 1,000 rules.

Run: .venv/bin/python bench/bench_rules.py [--seconds 1.5]

Every non-default rule but the last fails for the sample contact, each on one of its 2-3
realistic conditions (some on the first, some on a later one); the last non-default rule matches,
so route() walks the whole list. Targets (one core): >= 20,000 decisions/s with 100 rules and
< 1 ms per decision with 1,000 rules (SPEC 6: sub-millisecond with 1,000 rules).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from router.core.domain import Category, Channel, Severity, Tier, Topic
from router.core.rules import ContactAttributes, Decision, RuleSet, compile_rules

SAMPLE = ContactAttributes(
    channel=Channel.EMAIL,
    tier=Tier.STANDARD,
    received_at=datetime(2025, 3, 4, 14, 30, tzinfo=UTC),
    in_business_hours=True,
    account_id="acct-1042",
    account_region="us",
    account_country="US",
    severity=Severity.S3,
    category=Category.BREAK_FIX,
    topic=Topic.MAC,
    number_region=None,
    language="en-US",
    tags=frozenset({"email", "checklist:partial"}),
    subject="Cannot log in to the portal after password reset",
    attrs={"plan": "business", "seats": 120},
)

OTHER_TOPICS = ["windows", "linux", "identity", "devices", "directory"]
REGIONS = ["il", "gb", "au", "in", "fr", "br", "ca", "sg", "ae"]


def _cond(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def _failing_conditions(i: int) -> list[dict[str, Any]]:
    """Return 2-3 realistic conditions that the sample contact fails, varied by i."""
    topic = OTHER_TOPICS[i % len(OTHER_TOPICS)]
    region = REGIONS[i % len(REGIONS)]
    templates: list[list[dict[str, Any]]] = [
        # Fails on the third condition: same channel and tier, other topic.
        [
            _cond("channel", "eq", "email"),
            _cond("tier", "eq", "standard"),
            _cond("topic", "eq", topic),
        ],
        # Fails on the first condition.
        [
            _cond("channel", "eq", "voice"),
            _cond("tier", "eq", "premium"),
            _cond("topic", "in", [topic, "other"]),
        ],
        # Fails on the second condition: severity S3 is not S1/S2.
        [_cond("tier", "in", ["standard", "premium"]), _cond("severity", "le", "S2")],
        [_cond("account_region", "eq", region), _cond("in_business_hours", "eq", True)],
        [_cond("category", "in", ["licensing", "escalation"]), _cond("tier", "ne", "free")],
        [
            _cond("channel", "in", ["email", "portal"]),
            _cond("subject", "matches", r"(?i)\b(outage|down|unreachable)\b"),
        ],
        [_cond("tags", "contains", f"vip-{i}"), _cond("severity", "eq", "S1")],
        [_cond("attrs.plan", "eq", "enterprise"), _cond("attrs.seats", "ge", 500)],
        [
            _cond("professional_services", "eq", True),
            _cond("category", "in", ["training", "security", "infrastructure"]),
        ],
    ]
    return templates[i % len(templates)]


def build(size: int) -> RuleSet:
    """Compile size non-default rules (the last one matches) plus the default rule."""
    docs: list[dict[str, Any]] = []
    queues = {"default", "cse-standard-mac"}
    for i in range(size - 1):
        queue = f"queue-{i % 40}"
        queues.add(queue)
        docs.append(
            {
                "id": f"rule-{i}",
                "when": {"all": _failing_conditions(i)},
                "then": {"queue": queue, "priority_boost": i % 10, "tags": [f"r{i % 7}"]},
            }
        )
    docs.append(
        {
            "id": "standard-mac-email",
            "when": {
                "all": [
                    _cond("channel", "eq", "email"),
                    _cond("tier", "eq", "standard"),
                    _cond("topic", "eq", "mac"),
                ]
            },
            "then": {"queue": "cse-standard-mac", "priority_boost": 5, "tags": ["topic:mac"]},
        }
    )
    docs.append({"id": "default", "default": True, "then": {"queue": "default"}})
    return compile_rules(docs, queues=queues, sla_policies=(), version=1)


def measure(call: Callable[[], object], seconds: float) -> float:
    """Return seconds per call, timing about `seconds` worth of calls."""
    n, elapsed = 1, 0.0
    while elapsed < 0.2:  # calibrate
        start = time.perf_counter()
        for _ in range(n):
            call()
        elapsed = time.perf_counter() - start
        n *= 2
    per_call = elapsed / (n // 2)
    iterations = max(1, int(seconds / per_call))
    start = time.perf_counter()
    for _ in range(iterations):
        call()
    return (time.perf_counter() - start) / iterations


def main() -> None:
    """Print a table of decisions per second for each rule-set size, then the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    args = parser.parse_args()

    targets: dict[int, tuple[str, Callable[[float], bool]]] = {
        10: ("< 1 ms/decision", lambda s: s < 1e-3),
        100: (">= 20,000 decisions/s", lambda s: 1 / s >= 20_000),
        1000: ("< 1 ms/decision", lambda s: s < 1e-3),
    }
    print(f"Python {sys.version.split()[0]}, one core, route() on the sample contact")
    print(f"{'rules':>6} {'decisions/s':>12} {'us/decision':>12} {'us incl. trace':>15}")
    verdicts = []
    for size, (label, ok) in targets.items():
        ruleset = build(size)
        decision = ruleset.route(SAMPLE, base_priority=50)
        assert decision.matched_rule == "standard-mac-email", decision
        assert len(decision.trace) == size
        route = partial(ruleset.route, SAMPLE, base_priority=50)

        def route_and_read_trace(route: Callable[[], Decision] = route) -> object:
            return route().trace

        per = measure(route, args.seconds)
        per_traced = measure(route_and_read_trace, args.seconds / 3)
        print(f"{size:>6} {1 / per:>12,.0f} {per * 1e6:>12.1f} {per_traced * 1e6:>15.1f}")
        verdicts.append(
            f"{size:>5} rules: target {label}: route() {'MET' if ok(per) else 'NOT MET'}; "
            f"with the trace rendered too: {'met' if ok(per_traced) else 'not met'}"
        )
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
