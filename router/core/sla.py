"""Start, re-grade and read first-response SLA clocks (SPEC 2.3)."""

# Pure code: `now` is always an argument, every instant must be timezone-aware, and every instant
# a clock holds is in UTC.

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal, get_args

from router.core.calendar import BusinessCalendar, as_utc
from router.core.domain import Severity, SlaState

SlaKind = Literal["calendar", "business", "next_business_day"]
SLA_KINDS: frozenset[str] = frozenset(get_args(SlaKind))

_ZERO = timedelta(0)


@dataclass(frozen=True)
class SlaTarget:
    """How long the first response may take, and on which clock it is counted."""

    kind: SlaKind
    duration: timedelta | None = None

    def __post_init__(self) -> None:
        """Reject unknown kinds and durations that do not fit the kind."""
        if self.kind not in SLA_KINDS:
            raise ValueError(f"SLA kind must be one of {sorted(SLA_KINDS)}, got {self.kind!r}")
        if self.kind == "next_business_day":
            if self.duration is not None:
                raise ValueError("a next_business_day target takes no duration")
        elif self.duration is None or self.duration <= _ZERO:
            raise ValueError(f"a {self.kind} target needs a positive duration, got {self.duration}")

    @property
    def needs_calendar(self) -> bool:
        """Return whether the target is counted in business time."""
        return self.kind != "calendar"


@dataclass(frozen=True)
class SlaPolicy:
    """Named set of first-response targets by severity; no target means no SLA."""

    name: str
    targets: Mapping[Severity, SlaTarget] = field(default_factory=dict)
    warning_fraction: float = 0.75

    def __post_init__(self) -> None:
        """Validate the fraction and freeze the targets."""
        if not self.name:
            raise ValueError("an SLA policy needs a name")
        fraction = self.warning_fraction
        if isinstance(fraction, bool) or not math.isfinite(fraction) or not 0 <= fraction <= 1:
            raise ValueError(f"warning_fraction must be within [0, 1], got {fraction!r}")
        targets: dict[Severity, SlaTarget] = {}
        for key, target in self.targets.items():
            # Plain "S1" strings (from TOML) are accepted; anything else is a configuration error.
            try:
                severity = Severity(key)
            except ValueError:
                raise ValueError(f"SLA policy {self.name!r}: unknown severity {key!r}") from None
            if not isinstance(target, SlaTarget):
                raise ValueError(f"SLA policy {self.name!r}: {severity} target is not an SlaTarget")
            targets[severity] = target
        object.__setattr__(self, "targets", MappingProxyType(targets))

    def target_for(self, severity: Severity) -> SlaTarget | None:
        """Return the target for ``severity``, or None when it carries no SLA."""
        return self.targets.get(severity)


@dataclass(frozen=True)
class SlaClock:
    """A running first-response clock; all instants are UTC."""

    policy: str
    severity: Severity
    received_at: datetime
    started_at: datetime
    warning_at: datetime
    due_at: datetime

    def __post_init__(self) -> None:
        """Normalise the instants to UTC and check they are in order."""
        # Clocks are also rebuilt from stored columns; reject naive values (e.g. SQLite's)
        # here rather than fail later comparing them with an aware `now`.
        for name in ("received_at", "started_at", "warning_at", "due_at"):
            object.__setattr__(self, name, as_utc(getattr(self, name), name))
        if not self.received_at <= self.started_at <= self.warning_at <= self.due_at:
            raise ValueError(
                "SLA clock instants must satisfy received_at <= started_at <= warning_at <= due_at"
            )

    def state(self, now: datetime, first_response_at: datetime | None = None) -> SlaState:
        """Return the clock's state at ``now``; a first response stops it as met or missed."""
        now = as_utc(now, "now")
        if first_response_at is not None:
            responded = as_utc(first_response_at, "first_response_at")
            return SlaState.MET if responded <= self.due_at else SlaState.MISSED
        if now >= self.due_at:
            return SlaState.BREACHED
        if now >= self.warning_at:
            return SlaState.WARNING
        return SlaState.OK


def start_clock(
    policy: SlaPolicy,
    severity: Severity,
    received_at: datetime,
    calendar: BusinessCalendar | None = None,
) -> SlaClock | None:
    """Start the clock for a contact received at ``received_at``; None if the policy has no SLA."""
    # `calendar` is the account region's business calendar; it may be omitted only when the
    # target is counted in calendar time (premium).
    received = as_utc(received_at, "received_at")
    target = policy.target_for(severity)
    if target is None:
        return None
    fraction = policy.warning_fraction
    if target.kind == "calendar":
        assert target.duration is not None  # enforced by SlaTarget
        started = received
        due = received + target.duration
        warning = received + target.duration * fraction
    else:
        if calendar is None:
            raise ValueError(
                f"SLA policy {policy.name!r} counts {severity} in business time: "
                "a business calendar is required"
            )
        started = calendar.next_open(received)
        if target.kind == "business":
            assert target.duration is not None  # enforced by SlaTarget
            due = calendar.add(received, target.duration)
            warning = calendar.add(received, target.duration * fraction)
        else:
            due = calendar.close_of_next_business_day(received)
            # The target's "time" is the open time the contact has before the deadline.
            budget = calendar.open_time_between(started, due)
            warning = calendar.add(started, budget * fraction)
    return SlaClock(
        policy=policy.name,
        severity=severity,
        received_at=received,
        started_at=started,
        warning_at=warning,
        due_at=due,
    )


def regrade(
    clock: SlaClock,
    new_severity: Severity,
    policy: SlaPolicy,
    calendar: BusinessCalendar | None = None,
) -> SlaClock | None:
    """Restart ``clock`` for ``new_severity``, counted from the original receipt time."""
    return start_clock(policy, new_severity, clock.received_at, calendar)
