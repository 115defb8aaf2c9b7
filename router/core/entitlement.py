"""Entitlement: the tier in force at an instant, and what a channel does for that tier now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from router.core.domain import Channel, Tier


class OpenCalendar(Protocol):
    """The part of a business calendar entitlement needs."""

    def is_open(self, t: datetime) -> bool: ...

    def next_open(self, t: datetime) -> datetime: ...


class Access(StrEnum):
    """What the contact gets on this channel right now."""

    LIVE = "live"  # a human queue (with the tier's SLA, if any)
    BOT = "bot"  # SupportBot first
    OFFLINE = "offline"  # accepted, but humans are back at `next_open_at`
    HELP_CENTER = "help_center"  # deflected: pointed at self-service
    DENIED = "denied"  # the channel is not part of the tier (e.g. phone without Premium)


@dataclass(frozen=True)
class TierAtInstant:
    """The tier a contact is served at, and why."""

    tier: Tier
    contract_tier: Tier
    via_partner: bool
    trial_ends_at: datetime | None


@dataclass(frozen=True)
class ChannelEntitlement:
    """What one channel does for one tier at one instant."""

    channel: Channel
    tier: Tier
    mode: str
    access: Access
    next_open_at: datetime | None = None


def tier_at(
    tier: Tier, trial_started_at: datetime | None, now: datetime, trial_days: int
) -> tuple[Tier, datetime | None]:
    """Return the tier in force at ``now`` and, for a trial, when it ends.

    A trial runs trial_days x 24 h from its start (UTC); from that instant the account is free.
    A trial without a start date cannot be checked, so it is treated as expired.
    """
    if tier is not Tier.TRIAL:
        return tier, None
    if trial_started_at is None:
        return Tier.FREE, None
    ends_at = trial_started_at + timedelta(hours=24 * trial_days)
    return (Tier.TRIAL if now < ends_at else Tier.FREE), ends_at


def effective_tier(
    *,
    account_tier: Tier,
    account_trial_started_at: datetime | None,
    partner_tier: Tier | None,
    partner_trial_started_at: datetime | None,
    via_partner: bool,
    now: datetime,
    trial_days: int,
) -> TierAtInstant:
    """Return the tier a contact gets: the partner's when a partner admin acts for the account."""
    if via_partner:
        if partner_tier is None:
            raise ValueError("a contact via a partner needs the partner's tier")
        tier, ends = tier_at(partner_tier, partner_trial_started_at, now, trial_days)
        return TierAtInstant(
            tier=tier, contract_tier=partner_tier, via_partner=True, trial_ends_at=ends
        )
    tier, ends = tier_at(account_tier, account_trial_started_at, now, trial_days)
    return TierAtInstant(
        tier=tier, contract_tier=account_tier, via_partner=False, trial_ends_at=ends
    )


def channel_entitlement(
    *,
    tier: Tier,
    channel: Channel,
    mode: str,
    now: datetime,
    calendar: OpenCalendar,
    handoff: bool = False,
) -> ChannelEntitlement:
    """Return what ``channel`` does for ``tier`` at ``now`` under the tier's channel ``mode``.

    Modes come from tiers.toml: open (24x7), business_hours, bot (a human only on hand-off
    inside business hours), help_center, closed.
    """

    def result(access: Access, next_open_at: datetime | None = None) -> ChannelEntitlement:
        return ChannelEntitlement(
            channel=channel, tier=tier, mode=mode, access=access, next_open_at=next_open_at
        )

    if mode == "open":
        return result(Access.LIVE)
    if mode == "closed":
        return result(Access.DENIED)
    if mode == "help_center":
        return result(Access.HELP_CENTER)
    if mode == "bot" and not handoff:
        return result(Access.BOT)
    if mode in ("bot", "business_hours"):
        if calendar.is_open(now):
            return result(Access.LIVE)
        return result(Access.OFFLINE, calendar.next_open(now))
    raise ValueError(f"unknown channel mode {mode!r}")
