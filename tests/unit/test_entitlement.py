"""Entitlement: trial expiry, partner tiers, and channel access by tier and hour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from router.core.domain import Channel, Tier
from router.core.entitlement import Access, channel_entitlement, effective_tier, tier_at

TRIAL_START = datetime(2026, 10, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (TRIAL_START + timedelta(days=29), Tier.TRIAL),  # day 29
        (TRIAL_START + timedelta(hours=720) - timedelta(microseconds=1), Tier.TRIAL),
        (TRIAL_START + timedelta(hours=720), Tier.FREE),  # exactly 30 x 24 h
        (TRIAL_START + timedelta(days=31), Tier.FREE),  # day 31
    ],
)
def test_trial_becomes_free_at_thirty_days(now: datetime, expected: Tier) -> None:
    tier, ends_at = tier_at(Tier.TRIAL, TRIAL_START, now, trial_days=30)
    assert tier is expected
    assert ends_at == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_trial_without_a_start_is_treated_as_expired() -> None:
    assert tier_at(Tier.TRIAL, None, TRIAL_START, 30) == (Tier.FREE, None)


@pytest.mark.parametrize("tier", [Tier.PREMIUM, Tier.STANDARD, Tier.FREE])
def test_contract_tiers_do_not_expire(tier: Tier) -> None:
    assert tier_at(tier, TRIAL_START, TRIAL_START + timedelta(days=400), 30) == (tier, None)


def test_partner_admin_acts_with_the_partner_tier() -> None:
    now = TRIAL_START
    served = effective_tier(
        account_tier=Tier.STANDARD,
        account_trial_started_at=None,
        partner_tier=Tier.PREMIUM,
        partner_trial_started_at=None,
        via_partner=True,
        now=now,
        trial_days=30,
    )
    assert (served.tier, served.contract_tier, served.via_partner) == (
        Tier.PREMIUM,
        Tier.PREMIUM,
        True,
    )
    own = effective_tier(
        account_tier=Tier.STANDARD,
        account_trial_started_at=None,
        partner_tier=Tier.PREMIUM,
        partner_trial_started_at=None,
        via_partner=False,
        now=now,
        trial_days=30,
    )
    assert own.tier is Tier.STANDARD and not own.via_partner


def test_partner_on_an_expired_trial_gives_free() -> None:
    served = effective_tier(
        account_tier=Tier.PREMIUM,
        account_trial_started_at=None,
        partner_tier=Tier.TRIAL,
        partner_trial_started_at=TRIAL_START,
        via_partner=True,
        now=TRIAL_START + timedelta(days=31),
        trial_days=30,
    )
    assert served.tier is Tier.FREE


@dataclass
class FixedCalendar:
    """Open 09:00-17:00 UTC every day: enough to test entitlement's use of a calendar."""

    def is_open(self, t: datetime) -> bool:
        return 9 <= t.astimezone(UTC).hour < 17

    def next_open(self, t: datetime) -> datetime:
        if self.is_open(t):
            return t
        day = t.astimezone(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
        return day if t < day else day + timedelta(days=1)


INSIDE = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
OUTSIDE = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
NEXT_MORNING = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mode", "now", "handoff", "access", "next_open"),
    [
        ("open", OUTSIDE, False, Access.LIVE, None),
        ("closed", INSIDE, False, Access.DENIED, None),
        ("help_center", INSIDE, False, Access.HELP_CENTER, None),
        ("bot", INSIDE, False, Access.BOT, None),
        ("bot", OUTSIDE, False, Access.BOT, None),
        ("bot", INSIDE, True, Access.LIVE, None),
        ("bot", OUTSIDE, True, Access.OFFLINE, NEXT_MORNING),
        ("business_hours", INSIDE, False, Access.LIVE, None),
        ("business_hours", OUTSIDE, False, Access.OFFLINE, NEXT_MORNING),
    ],
)
def test_channel_modes(
    mode: str, now: datetime, handoff: bool, access: Access, next_open: datetime | None
) -> None:
    result = channel_entitlement(
        tier=Tier.STANDARD,
        channel=Channel.CHAT,
        mode=mode,
        now=now,
        calendar=FixedCalendar(),
        handoff=handoff,
    )
    assert (result.access, result.next_open_at) == (access, next_open)


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown channel mode"):
        channel_entitlement(
            tier=Tier.PREMIUM,
            channel=Channel.VOICE,
            mode="sometimes",
            now=INSIDE,
            calendar=FixedCalendar(),
        )
