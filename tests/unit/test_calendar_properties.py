"""Property tests of the business calendar, including a brute-force minute-by-minute reference."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.core.calendar import BusinessCalendar, region_calendar

MINUTE = timedelta(minutes=1)
WINDOW_DAYS = 14
WINDOW_MINUTES = WINDOW_DAYS * 24 * 60
# Queries start in the first part of the window so that most answers fall inside it.
QUERY_MINUTES = 6 * 24 * 60

# (zone, window start in UTC): a fixed half-hour offset, and windows around DST changes,
# including Santiago's, which happen at local midnight.
WINDOWS = [
    ("Asia/Kolkata", datetime(2026, 1, 5, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 3, 3, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 10, 27, tzinfo=UTC)),
    ("Europe/Paris", datetime(2026, 3, 24, tzinfo=UTC)),
    ("Europe/London", datetime(2026, 10, 20, tzinfo=UTC)),
    ("America/Santiago", datetime(2026, 4, 1, tzinfo=UTC)),
    ("America/Santiago", datetime(2026, 9, 2, tzinfo=UTC)),
]

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

Hours = tuple[tuple[time, time], ...]


# -- strategies ---------------------------------------------------------------------------------


def _quarter(q: int) -> time:
    """Return the wall time of quarter-hour ``q`` of a day; 96 is midnight ending it."""
    return time(0) if q == 96 else time(q // 4, q % 4 * 15)


def _pairs(bounds: list[int]) -> Hours:
    """Pair sorted distinct quarter-hour bounds into non-overlapping intervals."""
    ordered = sorted(bounds)[: len(bounds) // 2 * 2]
    return tuple(
        (_quarter(a), _quarter(b)) for a, b in zip(ordered[::2], ordered[1::2], strict=True)
    )


day_hours = st.lists(st.integers(0, 96), unique=True, max_size=6).map(_pairs)
weekly_hours = st.dictionaries(st.integers(0, 6), day_hours, max_size=7)


@dataclass(frozen=True)
class Schedule:
    """A randomly drawn calendar definition in one reference window."""

    zone: str
    origin: datetime
    weekly: dict[int, Hours]
    holidays: frozenset[date]
    overrides: dict[date, Hours]

    def calendar(self) -> BusinessCalendar:
        """Build the calendar under test."""
        return BusinessCalendar(
            tz=ZoneInfo(self.zone),
            weekly_hours=self.weekly,
            holidays=self.holidays,
            overrides=self.overrides,
        )

    def hours_on(self, day: date) -> Hours:
        """Return the day's hours, spelled out independently of the implementation."""
        if day in self.overrides:
            return self.overrides[day]
        if day in self.holidays:
            return ()
        return self.weekly.get(day.weekday(), ())


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    """Draw a zone window, weekly hours, holidays and overrides on dates inside the window."""
    zone, origin = draw(st.sampled_from(WINDOWS))
    first = origin.date() - timedelta(days=1)
    dates = st.dates(min_value=first, max_value=first + timedelta(days=WINDOW_DAYS + 1))
    return Schedule(
        zone=zone,
        origin=origin,
        weekly=draw(weekly_hours),
        holidays=draw(st.frozensets(dates, max_size=3)),
        overrides=draw(st.dictionaries(dates, day_hours, max_size=4)),
    )


# -- brute-force reference ----------------------------------------------------------------------


@functools.cache
def _walls(zone: str, origin: datetime) -> tuple[list[datetime], list[datetime]]:
    """Return the local wall time of every minute of the window, and its running maximum."""
    tz = ZoneInfo(zone)
    walls = [
        (origin + i * MINUTE).astimezone(tz).replace(tzinfo=None) for i in range(WINDOW_MINUTES)
    ]
    running: list[datetime] = []
    for wall in walls:
        running.append(wall if not running or wall > running[-1] else running[-1])
    return walls, running


class Reference:
    """Slow model: a per-minute open/closed array built from the documented wall-time rule."""

    def __init__(self, schedule: Schedule) -> None:
        self.origin = schedule.origin
        self.walls, running = _walls(schedule.zone, schedule.origin)
        self.open = [False] * WINDOW_MINUTES
        # For each local date: minute index of the last close, or None when it has no open time.
        self.last_close: dict[date, int | None] = {}

        def index(wall: datetime) -> int:
            # A wall time opens/closes at the first minute whose clock shows it or later.
            return bisect.bisect_left(running, wall)

        day = self.walls[0].date() - timedelta(days=1)
        while day <= self.walls[-1].date() + timedelta(days=1):
            last: int | None = None
            for start, end in schedule.hours_on(day):
                end_day = day + timedelta(days=1) if end == time(0) else day
                lo = index(datetime.combine(day, start))
                hi = index(datetime.combine(end_day, end))
                if lo < hi:
                    self.open[lo:hi] = [True] * (hi - lo)
                    last = hi
                if hi >= WINDOW_MINUTES:
                    # Clipped at the window end: the day's real closes (even whether it has
                    # open time at all) lie beyond what the model can see.
                    last = WINDOW_MINUTES
            self.last_close[day] = last
            day += timedelta(days=1)

    def at(self, i: int) -> datetime:
        """Return the instant of minute ``i``."""
        return self.origin + i * MINUTE

    def next_open(self, i: int) -> int | None:
        """Return the first open minute at or after ``i``, None if beyond the window."""
        for j in range(i, WINDOW_MINUTES):
            if self.open[j]:
                return j
        return None

    def add(self, i: int, minutes: int) -> int | None:
        """Return the end of the ``minutes``-th open minute from ``i``, None if beyond."""
        if minutes == 0:
            return self.next_open(i)
        used = 0
        for j in range(i, WINDOW_MINUTES):
            if self.open[j]:
                used += 1
                if used == minutes:
                    return j + 1
        return None

    def open_minutes(self, i: int, k: int) -> int:
        """Count open minutes in ``[i, k)``."""
        return sum(self.open[i:k])

    def close_of_next_business_day(self, i: int) -> int | None:
        """Return the last close of the first later local date with open time, None if beyond."""
        day = self.walls[i].date() + timedelta(days=1)
        while day in self.last_close:
            last = self.last_close[day]
            if last is not None:
                return last if last < WINDOW_MINUTES else None
            day += timedelta(days=1)
        return None


def _check(expected: int | None, actual: Callable[[], datetime], ref: Reference) -> None:
    """Assert the implementation agrees with the reference, or lies beyond the window."""
    window_end = ref.at(WINDOW_MINUTES)
    if expected is not None:
        assert actual() == ref.at(expected)
        return
    try:
        result = actual()
    except ValueError as exc:
        assert "no open time" in str(exc)
    else:
        assert result >= window_end


@PROPERTY_SETTINGS
@given(
    schedule=schedules(),
    start=st.integers(0, QUERY_MINUTES),
    minutes=st.integers(0, 3000),
    span=st.integers(0, WINDOW_MINUTES),
)
def test_agrees_with_brute_force_reference(
    schedule: Schedule, start: int, minutes: int, span: int
) -> None:
    cal = schedule.calendar()
    ref = Reference(schedule)
    t = ref.at(start)
    end = min(start + span, WINDOW_MINUTES)

    assert cal.is_open(t) == ref.open[start]
    _check(ref.next_open(start), lambda: cal.next_open(t), ref)
    _check(ref.add(start, minutes), lambda: cal.add(t, minutes * MINUTE), ref)
    _check(ref.close_of_next_business_day(start), lambda: cal.close_of_next_business_day(t), ref)
    assert cal.open_time_between(t, ref.at(end)) == ref.open_minutes(start, end) * MINUTE


# -- algebraic properties on arbitrary instants -------------------------------------------------

REGIONS = [
    region_calendar("US", "America/New_York"),
    region_calendar("IL", "Asia/Jerusalem"),
    region_calendar("AE", "Asia/Dubai"),
    region_calendar("FR", "Europe/Paris", hours=((time(9), time(12)), (time(13), time(17)))),
    region_calendar("GB", "Europe/London", subdivision="ENG", hours=((time(0), time(2)),)),
    region_calendar("AU", "Australia/Sydney", hours=((time(1), time(3)), (time(20), time(0)))),
]

instants = st.datetimes(
    min_value=datetime(2025, 1, 1),
    max_value=datetime(2029, 12, 31),
    timezones=st.sampled_from([UTC, ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo")]),
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=120))
positive = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(hours=120))


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    """Draw a region calendar or a random weekly schedule in a DST zone."""
    if draw(st.booleans()):
        return draw(st.sampled_from(REGIONS))
    weekly = draw(weekly_hours)
    # Guarantee some open time so the search horizon is never reached.
    weekly.setdefault(2, ((time(10), time(11)),))
    if not weekly[2]:
        weekly[2] = ((time(10), time(11)),)
    zone = draw(st.sampled_from(["Europe/Paris", "America/New_York", "America/Santiago"]))
    return BusinessCalendar(tz=ZoneInfo(zone), weekly_hours=weekly)


def _is_open_or_close(cal: BusinessCalendar, t: datetime) -> bool:
    """Return whether ``t`` is open or exactly the end of an open interval."""
    if cal.is_open(t):
        return True
    day = t.astimezone(cal.tz).date()
    return any(
        end == t
        for offset in (-1, 0, 1)
        for _start, end in cal.open_intervals(day + timedelta(days=offset))
    )


@PROPERTY_SETTINGS
@given(cal=calendars(), t=instants, d=durations)
def test_due_is_after_start_and_never_in_closed_time(
    cal: BusinessCalendar, t: datetime, d: timedelta
) -> None:
    start = cal.next_open(t)
    due = cal.add(t, d)
    assert due.tzinfo is UTC
    assert t <= start <= due
    assert _is_open_or_close(cal, start)
    assert _is_open_or_close(cal, due)
    if d:
        # Real elapsed time is at least the business time used.
        assert due - start >= d


@PROPERTY_SETTINGS
@given(cal=calendars(), t=instants, d=durations)
def test_open_time_between_inverts_add(cal: BusinessCalendar, t: datetime, d: timedelta) -> None:
    assert cal.open_time_between(t, cal.add(t, d)) == d


@PROPERTY_SETTINGS
@given(cal=calendars(), t=instants, a=durations, b=positive)
def test_add_is_additive(cal: BusinessCalendar, t: datetime, a: timedelta, b: timedelta) -> None:
    # b > 0: with b == 0 the left side would move a close to the next opening.
    assert cal.add(cal.add(t, a), b) == cal.add(t, a + b)


@PROPERTY_SETTINGS
@given(cal=calendars(), t=instants)
def test_next_business_day_close_is_last_close_of_first_later_open_day(
    cal: BusinessCalendar, t: datetime
) -> None:
    due = cal.close_of_next_business_day(t)
    day = t.astimezone(cal.tz).date() + timedelta(days=1)
    while not cal.open_intervals(day):
        day += timedelta(days=1)
    assert due == cal.open_intervals(day)[-1][1]
    assert due > t
    assert _is_open_or_close(cal, due)
