"""Exact-instant tests of SLA clocks (SPEC 2.1, 2.2, 2.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from router.core.calendar import region_calendar
from router.core.domain import Severity, SlaState
from router.core.sla import SlaClock, SlaPolicy, SlaTarget, regrade, start_clock

NY = ZoneInfo("America/New_York")
JERUSALEM = ZoneInfo("Asia/Jerusalem")
H = timedelta(hours=1)
US = region_calendar("US", "America/New_York")
IL = region_calendar("IL", "Asia/Jerusalem")

PREMIUM = SlaPolicy(
    name="premium",
    targets={
        Severity.S1: SlaTarget("calendar", 1 * H),
        Severity.S2: SlaTarget("calendar", 2 * H),
        Severity.S3: SlaTarget("calendar", 4 * H),
    },
)
STANDARD = SlaPolicy(
    name="standard",
    targets={
        Severity.S1: SlaTarget("business", 4 * H),
        Severity.S2: SlaTarget("business", 8 * H),
        Severity.S3: SlaTarget("next_business_day"),
    },
)
NONE = SlaPolicy(name="none")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """Build a UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def clock(policy: SlaPolicy, severity: Severity, received_at: datetime) -> SlaClock:
    """Start a clock on the US calendar that must exist."""
    result = start_clock(policy, severity, received_at, US)
    assert result is not None
    return result


MONDAY_10AM = datetime(2026, 11, 30, 10, 0, tzinfo=NY)


# -- calendar time ------------------------------------------------------------------------------


def test_premium_calendar_time_ignores_the_holiday() -> None:
    thanksgiving = datetime(2026, 11, 26, 10, 0, tzinfo=NY)
    c = clock(PREMIUM, Severity.S1, thanksgiving)
    assert c == SlaClock(
        policy="premium",
        severity=Severity.S1,
        received_at=utc(2026, 11, 26, 15),
        started_at=utc(2026, 11, 26, 15),
        warning_at=utc(2026, 11, 26, 15, 45),
        due_at=utc(2026, 11, 26, 16),
    )
    # No calendar is needed for calendar-time targets.
    assert start_clock(PREMIUM, Severity.S1, thanksgiving) == c


def test_premium_targets_by_severity() -> None:
    received = utc(2026, 11, 28, 3, 0)
    assert clock(PREMIUM, Severity.S2, received).due_at == utc(2026, 11, 28, 5)
    assert clock(PREMIUM, Severity.S3, received).due_at == utc(2026, 11, 28, 7)
    assert clock(PREMIUM, Severity.S3, received).warning_at == utc(2026, 11, 28, 6)


def test_calendar_time_across_dst_is_real_elapsed_time() -> None:
    # Saturday 23:30 EST + 4 h = 04:30 EDT on the spring-forward night.
    c = clock(PREMIUM, Severity.S3, datetime(2026, 3, 7, 23, 30, tzinfo=NY))
    assert c.due_at == utc(2026, 3, 8, 8, 30)
    assert c.due_at.astimezone(NY) == datetime(2026, 3, 8, 4, 30, tzinfo=NY)


def test_custom_warning_fraction() -> None:
    policy = SlaPolicy("half", {Severity.S2: SlaTarget("calendar", 2 * H)}, warning_fraction=0.5)
    c = clock(policy, Severity.S2, utc(2026, 1, 1, 0))
    assert c.warning_at == utc(2026, 1, 1, 1)


# -- business time ------------------------------------------------------------------------------


def test_standard_s1_four_business_hours() -> None:
    c = clock(STANDARD, Severity.S1, MONDAY_10AM)
    assert c.started_at == utc(2026, 11, 30, 15)
    assert c.warning_at == utc(2026, 11, 30, 18)
    assert c.due_at == utc(2026, 11, 30, 19)


def test_standard_s2_eight_business_hours_spans_two_days() -> None:
    c = clock(STANDARD, Severity.S2, MONDAY_10AM)
    # Warning after 6 h (Monday 16:00 EST); due after 7 h Monday + 1 h Tuesday.
    assert c.warning_at == utc(2026, 11, 30, 21)
    assert c.due_at == utc(2026, 12, 1, 15)


def test_business_clock_received_after_close_starts_next_morning() -> None:
    c = clock(STANDARD, Severity.S1, datetime(2026, 12, 1, 18, 30, tzinfo=NY))
    assert c.received_at == utc(2026, 12, 1, 23, 30)
    assert c.started_at == utc(2026, 12, 2, 14)
    assert c.warning_at == utc(2026, 12, 2, 17)
    assert c.due_at == utc(2026, 12, 2, 18)


def test_business_clock_over_thanksgiving() -> None:
    c = clock(STANDARD, Severity.S1, datetime(2026, 11, 25, 16, 0, tzinfo=NY))
    # 1 h Wednesday; 3 h warning point is Friday 11:00 EST, due Friday 12:00 EST.
    assert c.warning_at == utc(2026, 11, 27, 16)
    assert c.due_at == utc(2026, 11, 27, 17)


def test_israel_friday_contact_starts_sunday() -> None:
    c = start_clock(STANDARD, Severity.S1, datetime(2026, 1, 16, 10, 0, tzinfo=JERUSALEM), IL)
    assert c is not None
    assert c.started_at == utc(2026, 1, 18, 7)
    assert c.due_at == utc(2026, 1, 18, 11)


# -- end of next business day -------------------------------------------------------------------


def test_s3_next_business_day_from_monday_morning() -> None:
    c = clock(STANDARD, Severity.S3, MONDAY_10AM)
    assert c.started_at == utc(2026, 11, 30, 15)
    assert c.due_at == utc(2026, 12, 1, 22)
    # 15 h of open time until due; 75 % is 11 h 15 min: 7 h Monday + 4 h 15 min Tuesday.
    assert c.warning_at == utc(2026, 12, 1, 18, 15)


def test_s3_saturday_is_due_monday_close() -> None:
    c = clock(STANDARD, Severity.S3, datetime(2026, 11, 28, 11, 0, tzinfo=NY))
    assert c.started_at == utc(2026, 11, 30, 14)
    assert c.warning_at == utc(2026, 11, 30, 20)
    assert c.due_at == utc(2026, 11, 30, 22)


def test_s3_monday_late_evening_is_due_tuesday_close() -> None:
    c = clock(STANDARD, Severity.S3, datetime(2026, 11, 30, 23, 0, tzinfo=NY))
    assert c.started_at == utc(2026, 12, 1, 14)
    assert c.due_at == utc(2026, 12, 1, 22)


# -- states -------------------------------------------------------------------------------------


def test_states_at_exact_instants() -> None:
    c = clock(STANDARD, Severity.S1, MONDAY_10AM)
    one_us = timedelta(microseconds=1)
    assert c.state(utc(2026, 11, 30, 15)) is SlaState.OK
    assert c.state(utc(2026, 11, 30, 18) - one_us) is SlaState.OK
    assert c.state(utc(2026, 11, 30, 18)) is SlaState.WARNING
    assert c.state(utc(2026, 11, 30, 19) - one_us) is SlaState.WARNING
    assert c.state(utc(2026, 11, 30, 19)) is SlaState.BREACHED
    assert c.state(datetime(2026, 11, 30, 14, 0, tzinfo=NY)) is SlaState.BREACHED


def test_first_response_stops_the_clock() -> None:
    c = clock(STANDARD, Severity.S1, MONDAY_10AM)
    due = utc(2026, 11, 30, 19)
    later = utc(2026, 12, 5, 0)
    assert c.state(later, first_response_at=utc(2026, 11, 30, 16)) is SlaState.MET
    assert c.state(later, first_response_at=due) is SlaState.MET
    assert c.state(later, first_response_at=due + timedelta(microseconds=1)) is SlaState.MISSED
    # Met while the clock would otherwise be in warning.
    assert c.state(utc(2026, 11, 30, 18, 30), first_response_at=utc(2026, 11, 30, 18, 10)) is (
        SlaState.MET
    )


# -- re-grading ---------------------------------------------------------------------------------


def test_regrade_s3_to_s1_counts_from_original_receipt() -> None:
    s3 = clock(STANDARD, Severity.S3, MONDAY_10AM)
    s1 = regrade(s3, Severity.S1, STANDARD, US)
    assert s1 == SlaClock(
        policy="standard",
        severity=Severity.S1,
        received_at=utc(2026, 11, 30, 15),
        started_at=utc(2026, 11, 30, 15),
        warning_at=utc(2026, 11, 30, 18),
        due_at=utc(2026, 11, 30, 19),
    )
    # Re-graded late in the day, the S1 clock is already breached.
    assert s1.state(utc(2026, 11, 30, 20)) is SlaState.BREACHED


def test_regrade_s1_to_s3_extends_the_due_time() -> None:
    s1 = clock(STANDARD, Severity.S1, MONDAY_10AM)
    s3 = regrade(s1, Severity.S3, STANDARD, US)
    assert s3 is not None
    assert s3.received_at == s1.received_at
    assert s3.due_at == utc(2026, 12, 1, 22)


def test_no_sla_policy_or_severity_gives_no_clock() -> None:
    assert start_clock(NONE, Severity.S1, MONDAY_10AM, US) is None
    partial = SlaPolicy("s1-only", {Severity.S1: SlaTarget("calendar", H)})
    assert start_clock(partial, Severity.S3, MONDAY_10AM, US) is None
    c = clock(partial, Severity.S1, MONDAY_10AM)
    assert regrade(c, Severity.S2, partial, US) is None


# -- validation ---------------------------------------------------------------------------------


def test_business_target_needs_a_calendar() -> None:
    with pytest.raises(ValueError, match="business calendar is required"):
        start_clock(STANDARD, Severity.S1, MONDAY_10AM)


def test_naive_instants_are_rejected() -> None:
    naive = datetime(2026, 11, 30, 10, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        start_clock(PREMIUM, Severity.S1, naive)
    c = clock(PREMIUM, Severity.S1, MONDAY_10AM)
    with pytest.raises(ValueError, match="timezone-aware"):
        c.state(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        c.state(MONDAY_10AM, first_response_at=naive)


@pytest.mark.parametrize(
    ("kind", "duration", "message"),
    [
        ("calendar", None, "positive duration"),
        ("business", timedelta(0), "positive duration"),
        ("business", -H, "positive duration"),
        ("next_business_day", H, "takes no duration"),
        ("wall", H, "SLA kind must be one of"),
    ],
)
def test_invalid_targets_are_rejected(kind: str, duration: timedelta | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlaTarget(kind, duration)  # type: ignore[arg-type]


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_invalid_warning_fraction_is_rejected(fraction: float) -> None:
    with pytest.raises(ValueError, match="warning_fraction"):
        SlaPolicy("bad", {}, warning_fraction=fraction)


def test_policy_targets_are_frozen_and_keyed_by_severity() -> None:
    with pytest.raises(TypeError):
        STANDARD.targets[Severity.S1] = SlaTarget("calendar", H)  # type: ignore[index]
    from_toml = SlaPolicy("toml", {"S1": SlaTarget("calendar", H)})  # type: ignore[dict-item]
    assert list(from_toml.targets) == [Severity.S1]
    assert from_toml.target_for(Severity.S1) == SlaTarget("calendar", H)
    with pytest.raises(ValueError, match="unknown severity"):
        SlaPolicy("bad", {"S4": SlaTarget("calendar", H)})  # type: ignore[dict-item]


def test_clock_rebuilt_from_storage_is_normalised_and_checked() -> None:
    rebuilt = SlaClock(
        policy="standard",
        severity=Severity.S1,
        received_at=datetime(2026, 11, 30, 10, 0, tzinfo=NY),
        started_at=datetime(2026, 11, 30, 10, 0, tzinfo=NY),
        warning_at=datetime(2026, 11, 30, 13, 0, tzinfo=NY),
        due_at=datetime(2026, 11, 30, 14, 0, tzinfo=NY),
    )
    assert rebuilt.due_at.tzinfo is UTC
    assert rebuilt == clock(STANDARD, Severity.S1, MONDAY_10AM)
    with pytest.raises(ValueError, match="timezone-aware"):
        SlaClock("standard", Severity.S1, *[datetime(2026, 11, 30, 15, 0)] * 4)
    with pytest.raises(ValueError, match="received_at <= started_at"):
        SlaClock("standard", Severity.S1, *[utc(2026, 11, 30, h) for h in (15, 15, 19, 18)])
