"""Regions' business calendars for staff: opening times ahead, and dated overrides."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from config.policy import Policy, Region
from router.core.calendar import BusinessCalendar, Interval
from router.services import audit
from router.services.errors import Conflict, Invalid, NotFound
from router.services.paging import iso, paginate, paginate_list
from router.services.routing import RoutingCache, parse_hours
from router.store.db import Database
from router.store.models import CalendarOverride

SCHEDULE_DAYS = 14
MAX_SCHEDULE_DAYS = 62
# Staff plan closures ahead; further out than this is almost certainly a typo in the year.
MAX_OVERRIDE_AHEAD = timedelta(days=2 * 366)
_CLOCK = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d|24:00")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _region(policy: Policy, key: str) -> Region:
    region = policy.regions.get(key)
    if region is None:
        raise NotFound(f"no region {key!r}; regions are: {', '.join(policy.regions)}")
    return region


def _hm(value: time) -> str:
    return value.strftime("%H:%M")


def hours_text(hours: Sequence[Interval]) -> list[list[str]]:
    """Return intervals as [["HH:MM", "HH:MM"], ...] ("24:00" for a midnight end)."""
    return [[_hm(start), "24:00" if end == time(0, 0) else _hm(end)] for start, end in hours]


def region_dict(region: Region, calendar: BusinessCalendar, now: datetime) -> dict[str, Any]:
    """Return a region with whether it is open now and when it next opens."""
    return {
        "key": region.key,
        "name": region.name,
        "display_number": region.display_number,
        "e164": region.e164,
        "aliases": list(region.aliases),
        "country": region.country,
        "subdivision": region.subdivision,
        "timezone": region.timezone,
        "language": region.language,
        "hours": hours_text(region.hours),
        "working_days": [_WEEKDAYS[day] for day in sorted(calendar.weekly_hours)],
        "open_now": calendar.is_open(now),
        "next_open_at": iso(calendar.next_open(now)),
        "local_time": now.astimezone(ZoneInfo(region.timezone)).isoformat(),
    }


def list_regions(
    db: Database,
    cache: RoutingCache,
    policy: Policy,
    now: datetime,
    *,
    page: int,
    per_page: int,
    country: str | None = None,
) -> dict[str, Any]:
    """Return the configured regions (filter by country), each open or closed now."""
    regions = [
        region
        for region in policy.regions.values()
        if country is None or region.country == country.upper()
    ]
    chosen = paginate_list(regions, page, per_page)
    with db.session() as session:
        chosen["items"] = [
            region_dict(region, cache.region_calendar(session, region.key, now.date()), now)
            for region in chosen["items"]
        ]
    return chosen


def schedule(
    db: Database,
    cache: RoutingCache,
    policy: Policy,
    key: str,
    now: datetime,
    *,
    start: date | None = None,
    days: int = SCHEDULE_DAYS,
) -> dict[str, Any]:
    """Return a region's opening times for ``days`` local days from ``start`` (default today)."""
    region = _region(policy, key)
    zone = ZoneInfo(region.timezone)
    first = start or now.astimezone(zone).date()
    days = max(1, min(days, MAX_SCHEDULE_DAYS))
    with db.session() as session:
        calendar = cache.region_calendar(session, key, first)
        notes = {
            row.day: row
            for row in session.scalars(
                select(CalendarOverride).where(
                    CalendarOverride.region == key,
                    CalendarOverride.day >= first,
                    CalendarOverride.day < first + timedelta(days=days),
                )
            )
        }
        data = region_dict(region, calendar, now)
    out = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        override = notes.get(day)
        holiday_name = _holiday_name(calendar, day)
        if day in calendar.overrides:
            source = "override"
        elif holiday_name is not None:
            source = "holiday"
        elif day.weekday() in calendar.weekly_hours:
            source = "weekly"
        else:
            source = "weekend"
        intervals = calendar.open_intervals(day)
        out.append(
            {
                "date": day.isoformat(),
                "weekday": _WEEKDAYS[day.weekday()],
                "open": bool(intervals),
                "source": source,
                "holiday": holiday_name,
                "note": override.note if override is not None else None,
                "hours": hours_text(calendar.hours_on(day)),
                "intervals": [
                    {"start_at": start_at.isoformat(), "end_at": end_at.isoformat()}
                    for start_at, end_at in intervals
                ],
            }
        )
    data["days"] = out
    return data


def _holiday_name(calendar: BusinessCalendar, day: date) -> str | None:
    holidays = calendar.holidays
    if day not in holidays:
        return None
    getter = getattr(holidays, "get", None)
    name = getter(day) if getter is not None else None
    return str(name) if name else "public holiday"


def override_dict(row: CalendarOverride) -> dict[str, Any]:
    """Return an override as JSON-ready data."""
    return {
        "id": row.id,
        "region": row.region,
        "day": row.day.isoformat(),
        "closed": not row.hours,
        "hours": [list(pair) for pair in row.hours],
        "note": row.note,
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
    }


def list_overrides(
    db: Database,
    policy: Policy,
    key: str,
    *,
    page: int,
    per_page: int,
    since: date | None = None,
    until: date | None = None,
) -> dict[str, Any]:
    """Return a region's overrides by day, optionally within [since, until]."""
    _region(policy, key)
    stmt = select(CalendarOverride).where(CalendarOverride.region == key)
    if since is not None:
        stmt = stmt.where(CalendarOverride.day >= since)
    if until is not None:
        stmt = stmt.where(CalendarOverride.day <= until)
    with db.session() as session:
        return paginate(session, stmt.order_by(CalendarOverride.day), page, per_page, override_dict)


def check_hours(raw: Sequence[Sequence[str]]) -> list[list[str]]:
    """Validate [["HH:MM", "HH:MM"], ...]; raise Invalid with the interval at fault."""
    errors: list[str] = []
    out: list[list[str]] = []
    for i, pair in enumerate(raw):
        if len(pair) != 2 or not all(isinstance(v, str) for v in pair):
            errors.append(f'hours[{i}]: an interval is a pair of "HH:MM" times')
            continue
        start, end = pair
        if not _CLOCK.fullmatch(start) or start == "24:00":
            errors.append(f"hours[{i}][0]: {start!r} is not a time from 00:00 to 23:59")
            continue
        if not _CLOCK.fullmatch(end):
            errors.append(f"hours[{i}][1]: {end!r} is not a time from 00:01 to 24:00")
            continue
        out.append([start, end])
    if not errors:
        try:
            # The calendar's own checks: each interval starts before it ends, none overlap.
            BusinessCalendar(
                tz=ZoneInfo("UTC"), weekly_hours={}, overrides={date(2000, 1, 1): parse_hours(out)}
            )
        except ValueError as exc:
            errors.append(str(exc).replace("overrides[2000-01-01]: ", ""))
    if errors:
        raise Invalid("invalid hours", errors={"hours": errors})
    return sorted(out)


def put_override(
    db: Database,
    policy: Policy,
    key: str,
    day: date,
    hours: Sequence[Sequence[str]],
    *,
    note: str | None,
    actor: str,
    now: datetime,
) -> tuple[dict[str, Any], bool]:
    """Close a day (no hours) or set its special hours; return the override and if it is new."""
    region = _region(policy, key)
    today = now.astimezone(ZoneInfo(region.timezone)).date()
    if day < today:
        raise Invalid(
            f"{day.isoformat()} is in the past in {region.name} (today is {today.isoformat()})",
            errors={"day": ["must be today or later in the region's time zone"]},
        )
    if day > today + MAX_OVERRIDE_AHEAD:
        raise Invalid(
            "overrides can be set up to two years ahead",
            errors={"day": ["must be within two years"]},
        )
    checked = check_hours(hours)
    try:
        return _store_override(db, key, day, checked, note=note, actor=actor, now=now)
    except IntegrityError:
        # Someone else set this day at the same moment; theirs stands.
        raise Conflict(
            f"the override for {key} on {day.isoformat()} was changed at the same time; reload"
        ) from None


def _store_override(
    db: Database,
    key: str,
    day: date,
    checked: list[list[str]],
    *,
    note: str | None,
    actor: str,
    now: datetime,
) -> tuple[dict[str, Any], bool]:
    with db.transaction() as session:
        row = session.scalar(
            select(CalendarOverride).where(
                CalendarOverride.region == key, CalendarOverride.day == day
            )
        )
        before = override_dict(row) if row is not None else None
        created = row is None
        if row is None:
            row = CalendarOverride(region=key, day=day, created_at=now)
            session.add(row)
        row.hours = checked
        row.note = (note or "").strip() or None
        row.created_by = actor
        session.flush()
        data = override_dict(row)
        audit.record(
            session,
            actor=actor,
            action="calendar.override.set",
            entity_type="calendar_override",
            entity_id=f"{key}:{day.isoformat()}",
            before=before,
            after=data,
            at=now,
        )
    return data, created


def delete_override(
    db: Database, policy: Policy, key: str, day: date, *, actor: str, now: datetime | None = None
) -> None:
    """Remove a region's override for a day (its normal hours apply again)."""
    _region(policy, key)
    with db.transaction() as session:
        row = session.scalar(
            select(CalendarOverride).where(
                CalendarOverride.region == key, CalendarOverride.day == day
            )
        )
        if row is None:
            raise NotFound(f"no override for {key} on {day.isoformat()}")
        before = override_dict(row)
        session.delete(row)
        audit.record(
            session,
            actor=actor,
            action="calendar.override.delete",
            entity_type="calendar_override",
            entity_id=f"{key}:{day.isoformat()}",
            before=before,
            at=now or datetime.now(UTC),
        )
