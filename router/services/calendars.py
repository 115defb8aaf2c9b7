"""Regions' business calendars for staff: opening times ahead, and dated overrides."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from config.policy import Policy, Region
from router.core.calendar import BusinessCalendar, Interval
from router.services import audit
from router.services.errors import Conflict, Invalid, NotFound
from router.services.paging import Page, list_page, query_page
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


@dataclass(frozen=True)
class RegionView:
    """A support region, whether it is open now and when it next opens."""

    key: str
    name: str
    display_number: str
    e164: str | None
    aliases: tuple[str, ...]
    country: str
    subdivision: str | None
    timezone: str
    language: str
    hours: list[list[str]]
    working_days: tuple[str, ...]
    open_now: bool
    next_open_at: datetime | None
    local_time: datetime

    @classmethod
    def of(cls, region: Region, calendar: BusinessCalendar, now: datetime) -> RegionView:
        """Return the view of a configured region as it stands at ``now``."""
        return cls(
            key=region.key,
            name=region.name,
            display_number=region.display_number,
            e164=region.e164,
            aliases=tuple(region.aliases),
            country=region.country,
            subdivision=region.subdivision,
            timezone=region.timezone,
            language=region.language,
            hours=hours_text(region.hours),
            working_days=tuple(_WEEKDAYS[day] for day in sorted(calendar.weekly_hours)),
            open_now=calendar.is_open(now),
            next_open_at=calendar.next_open(now),
            local_time=now.astimezone(ZoneInfo(region.timezone)),
        )


@dataclass(frozen=True)
class Opening:
    """An open interval as UTC instants."""

    start_at: datetime
    end_at: datetime


@dataclass(frozen=True)
class ScheduleDay:
    """One local day's opening times, and why they are what they are."""

    day: date
    weekday: str
    open: bool
    source: str  # override, holiday, weekly (a working day) or weekend
    holiday: str | None
    note: str | None
    hours: list[list[str]]
    intervals: tuple[Opening, ...]


@dataclass(frozen=True)
class Schedule(RegionView):
    """A region with its opening times day by day."""

    days: tuple[ScheduleDay, ...]


@dataclass(frozen=True)
class OverrideView:
    """A staff change to one day of a region: closed, or special hours."""

    id: int
    region: str
    day: date
    closed: bool
    hours: list[list[str]]
    note: str | None
    created_at: datetime
    created_by: str | None

    @classmethod
    def of(cls, row: CalendarOverride) -> OverrideView:
        """Return the view of a stored override."""
        return cls(
            id=row.id,
            region=row.region,
            day=row.day,
            closed=not row.hours,
            hours=[list(pair) for pair in row.hours],
            note=row.note,
            created_at=row.created_at,
            created_by=row.created_by,
        )


def list_regions(
    db: Database,
    cache: RoutingCache,
    policy: Policy,
    now: datetime,
    *,
    page: int,
    per_page: int,
    country: str | None = None,
) -> Page[RegionView]:
    """Return the configured regions (filter by country), each open or closed now."""
    regions = [
        region
        for region in policy.regions.values()
        if country is None or region.country == country.upper()
    ]
    chosen = list_page(regions, page, per_page)
    with db.session() as session:
        return chosen.map(
            lambda region: RegionView.of(
                region, cache.region_calendar(session, region.key, now.date()), now
            )
        )


def schedule(
    db: Database,
    cache: RoutingCache,
    policy: Policy,
    key: str,
    now: datetime,
    *,
    start: date | None = None,
    days: int = SCHEDULE_DAYS,
) -> Schedule:
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
        view = RegionView.of(region, calendar, now)
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
            ScheduleDay(
                day=day,
                weekday=_WEEKDAYS[day.weekday()],
                open=bool(intervals),
                source=source,
                holiday=holiday_name,
                note=override.note if override is not None else None,
                hours=hours_text(calendar.hours_on(day)),
                intervals=tuple(Opening(start_at, end_at) for start_at, end_at in intervals),
            )
        )
    return Schedule(**vars(view), days=tuple(out))


def _holiday_name(calendar: BusinessCalendar, day: date) -> str | None:
    holidays = calendar.holidays
    if day not in holidays:
        return None
    getter = getattr(holidays, "get", None)
    name = getter(day) if getter is not None else None
    return str(name) if name else "public holiday"


def list_overrides(
    db: Database,
    policy: Policy,
    key: str,
    *,
    page: int,
    per_page: int,
    since: date | None = None,
    until: date | None = None,
) -> Page[OverrideView]:
    """Return a region's overrides by day, optionally within [since, until]."""
    _region(policy, key)
    stmt = select(CalendarOverride).where(CalendarOverride.region == key)
    if since is not None:
        stmt = stmt.where(CalendarOverride.day >= since)
    if until is not None:
        stmt = stmt.where(CalendarOverride.day <= until)
    with db.session() as session:
        return query_page(session, stmt.order_by(CalendarOverride.day), page, per_page).map(
            OverrideView.of
        )


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
) -> tuple[OverrideView, bool]:
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
) -> tuple[OverrideView, bool]:
    with db.transaction() as session:
        row = session.scalar(
            select(CalendarOverride).where(
                CalendarOverride.region == key, CalendarOverride.day == day
            )
        )
        before = audit.snapshot(OverrideView.of(row)) if row is not None else None
        created = row is None
        if row is None:
            row = CalendarOverride(region=key, day=day, created_at=now)
            session.add(row)
        row.hours = checked
        row.note = (note or "").strip() or None
        row.created_by = actor
        session.flush()
        view = OverrideView.of(row)
        audit.record(
            session,
            actor=actor,
            action="calendar.override.set",
            entity_type="calendar_override",
            entity_id=f"{key}:{day.isoformat()}",
            before=before,
            after=audit.snapshot(view),
            at=now,
        )
    return view, created


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
        before = audit.snapshot(OverrideView.of(row))
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
