"""What routing reads from the store: the rule set in force and business calendars, cached."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import date, time, timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from config.policy import Policy
from router.core.calendar import DEFAULT_HOURS, BusinessCalendar, Interval, region_calendar
from router.core.rules import RuleSet, compile_rules
from router.store.models import CalendarOverride, Queue, RuleSetVersion

# Overrides further back than this cannot affect a clock started now (the longest target is
# "end of next business day"); loading only recent ones keeps the query small.
OVERRIDE_LOOKBACK = timedelta(days=7)


# Read on every contact, so built once.
_LATEST_RULE_SET = select(func.max(RuleSetVersion.version))
_RECENT_OVERRIDES = select(CalendarOverride.day, CalendarOverride.hours).where(
    CalendarOverride.region == bindparam("region"),
    CalendarOverride.day >= bindparam("since", type_=CalendarOverride.day.type),
)


def parse_hours(raw: Any) -> tuple[Interval, ...]:
    """Read stored [["HH:MM", "HH:MM"], ...] hours ("24:00" ends the day)."""
    intervals: list[Interval] = []
    for start, end in raw:
        intervals.append((_clock(start), _clock(end)))
    return tuple(intervals)


def _clock(text: str) -> time:
    return time(0, 0) if text == "24:00" else time.fromisoformat(text)


class AccountPlace(Protocol):
    """Where an account is, as its business calendar needs it (an Account, or a row of it)."""

    @property
    def region(self) -> str | None: ...

    @property
    def country(self) -> str: ...

    @property
    def subdivision(self) -> str | None: ...

    @property
    def timezone(self) -> str: ...


class RoutingCache:
    """Compiled rule sets by version and calendars by definition, shared by a process's threads.

    The store is read on every contact (one indexed query each), so a rule or calendar change
    made by any process takes effect for the next contact everywhere without a restart.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._rules: dict[int, RuleSet] = {}
        self._calendars: dict[tuple[Any, ...], BusinessCalendar] = {}

    def rules(self, session: Session) -> RuleSet:
        """Return the rule set in force (the highest stored version), compiled once."""
        version = session.connection().scalar(_LATEST_RULE_SET)
        if version is None:
            return self.policy.rules  # an unseeded store routes by the shipped rules
        cached = self._rules.get(version)
        if cached is not None:
            return cached
        stored = session.get(RuleSetVersion, version)
        assert stored is not None
        queues = set(session.scalars(select(Queue.key)))
        ruleset = compile_rules(
            stored.documents["rules"],
            queues=queues,
            sla_policies=set(self.policy.sla_policies),
            version=version,
        )
        with self._lock:
            self._rules = {version: ruleset}  # older versions are never routed again
        return ruleset

    def account_calendar(
        self, session: Session, account: AccountPlace, today: date
    ) -> BusinessCalendar:
        """Return the business calendar of an account's region (its country, zone and hours)."""
        region = self.policy.regions.get(account.region or "")
        hours = region.hours if region else DEFAULT_HOURS
        return self.calendar(
            session,
            region_key=account.region,
            country=account.country,
            subdivision=account.subdivision,
            timezone=account.timezone,
            hours=hours,
            today=today,
        )

    def region_calendar(self, session: Session, region_key: str, today: date) -> BusinessCalendar:
        """Return the business calendar of a configured region."""
        region = self.policy.regions[region_key]
        return self.calendar(
            session,
            region_key=region.key,
            country=region.country,
            subdivision=region.subdivision,
            timezone=region.timezone,
            hours=region.hours,
            today=today,
        )

    def calendar(
        self,
        session: Session,
        *,
        region_key: str | None,
        country: str,
        subdivision: str | None,
        timezone: str,
        hours: tuple[Interval, ...],
        today: date,
    ) -> BusinessCalendar:
        """Return a calendar with the region's current staff overrides, built once per change."""
        overrides: Mapping[date, tuple[Interval, ...]] = {}
        if region_key is not None:
            rows = session.connection().execute(
                _RECENT_OVERRIDES, {"region": region_key, "since": today - OVERRIDE_LOOKBACK}
            )
            overrides = {day: parse_hours(raw) for day, raw in rows}
        key = (country, subdivision, timezone, hours, tuple(sorted(overrides.items())))
        cached = self._calendars.get(key)
        if cached is not None:
            return cached
        built = region_calendar(
            country, timezone, hours=hours, subdivision=subdivision, overrides=overrides
        )
        with self._lock:
            if len(self._calendars) > 1024:
                self._calendars.clear()
            self._calendars[key] = built
        return built
