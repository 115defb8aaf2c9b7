"""The PIN step's policy: the shared rate limit, lock-outs of calling numbers, the failure alert.

The PIN itself is looked up by ``router.intake.account_by_pin`` (its keyed hash, one indexed
query) and is never stored, logged or echoed. Every check takes a token from one bucket shared by
all web processes (``router.services.ratelimit``): PIN_GLOBAL_RATE_PER_MINUTE always, the
stricter PIN_ALERT_RATE_PER_MINUTE while the failure-rate alert holds. A check with no token left
is not made: the caller is held for a few seconds at Twilio and prompted again, which costs no
try and counts no failure (no worker ever sleeps).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from channels.voice import events
from channels.voice.config import VoiceConfig
from config.policy import Policy
from ivr import machine
from ivr.machine import CallState, PinInput, PinOutcome
from router.core.calendar import BusinessCalendar
from router.core.domain import Channel, Tier
from router.core.entitlement import Access, channel_entitlement, effective_tier
from router.intake import PinAccount, account_by_pin
from router.services import ratelimit
from router.services.routing import RoutingCache
from router.store.models import OpsEvent, PinAttempt, PinLockout

log = logging.getLogger(__name__)

# The pin_attempts/pin_lockouts key column is 32 characters wide.
_NUMBER_WIDTH = 32
WITHHELD_NUMBER = "withheld"
# The one token bucket every PIN check draws from (all calls, all web processes).
PIN_CHECKS_BUCKET = "voice.pin_checks"
# How long a held caller waits at Twilio before keying the PIN again, in seconds.
HOLD_MIN_SECONDS = 3
HOLD_MAX_SECONDS = 20

# The hot path's statements are built once (Core: no per-call statement building).
LOCKED_UNTIL = select(PinLockout.locked_until).where(
    PinLockout.calling_number == bindparam("caller")
)
_RECENT_FAILURES = (
    select(func.count())
    .select_from(PinAttempt)
    .where(PinAttempt.succeeded.is_(False), PinAttempt.at > bindparam("since"))
)
_INSERT_ATTEMPT = insert(cast(Table, PinAttempt.__table__))


@dataclass(frozen=True)
class PinCheck:
    """What one PIN step found (the account only when the PIN matched)."""

    outcome: PinOutcome
    account_id: str | None = None
    failed: bool = False
    hold_seconds: int = 0  # how long a held caller waits at Twilio


def caller_key(from_number: str) -> str:
    """Return the calling number as the PIN tables key it (withheld numbers share one key)."""
    return (from_number or WITHHELD_NUMBER)[:_NUMBER_WIDTH]


class PinChecks:
    """Check keyed PINs within the rate limits, and lock out numbers that keep failing."""

    def __init__(self, policy: Policy, routing: RoutingCache, config: VoiceConfig) -> None:
        self.policy = policy
        self.routing = routing
        self.config = config

    def check(
        self,
        session: Session,
        caller: str,
        call_sid: str,
        state: CallState,
        digits: str | None,
        now: datetime,
    ) -> PinCheck:
        """Check what the caller keyed, in the PIN step's transaction."""
        keyed = machine.classify_pin(digits, can_switch=state.offer_english)
        if keyed is PinInput.EMPTY:
            return PinCheck(PinOutcome.EMPTY)
        if keyed is PinInput.SWITCH_LANGUAGE:
            return PinCheck(PinOutcome.SWITCH_LANGUAGE)
        connection = session.connection()
        locked_until = connection.scalar(LOCKED_UNTIL, {"caller": caller})
        if locked_until is not None and locked_until > now:
            return PinCheck(PinOutcome.LOCKED)
        recent_failures = connection.scalar(
            _RECENT_FAILURES, {"since": now - self.config.alert_window}
        )
        alerting = (recent_failures or 0) >= self.config.alert_failures
        # Taken in this step's transaction: a step that is rolled back (a concurrent duplicate
        # delivery) gives its token back. Every taker waits for the bucket row, so the
        # allowance holds across processes.
        decision = ratelimit.take(
            connection,
            PIN_CHECKS_BUCKET,
            self.config.pin_alert_rate if alerting else self.config.pin_rate,
            now=now,
        )
        if not decision.allowed:
            wait = math.ceil(decision.retry_after_seconds)
            return PinCheck(
                PinOutcome.HELD, hold_seconds=min(HOLD_MAX_SECONDS, max(HOLD_MIN_SECONDS, wait))
            )
        account = None
        if keyed is PinInput.CANDIDATE:
            account = account_by_pin(connection, self.config.pin_pepper, digits or "")
        connection.execute(
            _INSERT_ATTEMPT,
            {
                "calling_number": caller,
                "call_sid": call_sid,
                "succeeded": account is not None,
                "at": now,
            },
        )
        if account is not None:
            outcome = (
                PinOutcome.VERIFIED
                if self._phone_open(session, account, now)
                else PinOutcome.NOT_ENTITLED
            )
            return PinCheck(outcome, account_id=account.id)
        if (recent_failures or 0) + 1 >= self.config.alert_failures:
            self._raise_alert(session, (recent_failures or 0) + 1, now)
        if self._lock_if_over_limit(session, caller, locked_until, call_sid, now):
            return PinCheck(PinOutcome.LOCKED, failed=True)
        return PinCheck(PinOutcome.WRONG, failed=True)

    def _phone_open(self, session: Session, account: PinAccount, now: datetime) -> bool:
        """Return True when the account's tier in force offers phone support right now."""
        served = effective_tier(
            account_tier=Tier(account.tier),
            account_trial_started_at=account.trial_started_at,
            partner_tier=None,
            partner_trial_started_at=None,
            via_partner=False,
            now=now,
            trial_days=self.policy.trial_days,
        )
        mode = self.policy.tiers[served.tier].channels[Channel.VOICE]
        calendar = _LazyCalendar(
            lambda: self.routing.account_calendar(session, account, now.date())
        )
        entitlement = channel_entitlement(
            tier=served.tier, channel=Channel.VOICE, mode=mode, now=now, calendar=calendar
        )
        return entitlement.access is Access.LIVE

    def _lock_if_over_limit(
        self,
        session: Session,
        caller: str,
        locked_until: datetime | None,
        call_sid: str,
        now: datetime,
    ) -> bool:
        """Lock the calling number when its failures in the window reach the limit."""
        since = now - self.config.lockout_window
        if locked_until is not None and locked_until > since:
            since = locked_until  # failures before a lock-out ended were paid for
        failures = session.scalar(
            select(func.count())
            .select_from(PinAttempt)
            .where(
                PinAttempt.calling_number == caller,
                PinAttempt.succeeded.is_(False),
                PinAttempt.at > since,
            )
        )
        if (failures or 0) < self.config.lockout_failures:
            return False
        until = now + self.config.lockout_duration
        values = {"calling_number": caller, "locked_until": until, "failures": failures or 0}
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(PinLockout).values(created_at=now, **values)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[PinLockout.calling_number],
                set_={"locked_until": until, "failures": failures or 0, "created_at": now},
            )
        )
        events.pin_lockout(
            session, caller=caller, failures=failures, until=until, call_sid=call_sid, now=now
        )
        log.warning("voice: calling number locked out after %s PIN failures", failures)
        return True

    def _raise_alert(self, session: Session, failures: int, now: datetime) -> None:
        """Record one alert per window while PIN failures across all numbers exceed the limit."""
        window = self.config.alert_window
        already = session.scalar(
            select(OpsEvent.id)
            .where(OpsEvent.kind == events.EVENT_PIN_FAILURE_RATE, OpsEvent.at > now - window)
            .limit(1)
        )
        if already is not None:
            return
        events.pin_failure_rate(
            session,
            failures=failures,
            window=window,
            limit=self.config.alert_failures,
            checks_per_minute=round(self.config.pin_alert_rate.per_second * 60, 3),
            now=now,
        )
        log.warning("voice: PIN failure rate alert: %s failures in the window", failures)


class _LazyCalendar:
    """A business calendar built only if entitlement asks (phone modes other than open/closed)."""

    def __init__(self, build: Callable[[], BusinessCalendar]) -> None:
        self._build = build
        self._calendar: BusinessCalendar | None = None

    def _get(self) -> BusinessCalendar:
        if self._calendar is None:
            self._calendar = self._build()
        return self._calendar

    def is_open(self, t: datetime) -> bool:
        return self._get().is_open(t)

    def next_open(self, t: datetime) -> datetime:
        return self._get().next_open(t)
