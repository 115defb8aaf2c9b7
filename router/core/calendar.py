"""Compute open time in a region's business calendar: hours, holidays and staff overrides."""

# Pure code: no clock is read here, every instant is an argument. Inputs must be timezone-aware
# and results are returned in UTC.
#
# Local wall times become instants by one rule, applied to interval starts and ends alike: a wall
# time maps to the *first instant at which the region's clock shows that time or later*.
# - A normal wall time maps to its only instant.
# - An ambiguous wall time (the repeated hour when clocks go back) maps to its first occurrence
#   (fold=0), so an interval spanning the change gains the repeated hour.
# - A non-existent wall time (skipped when clocks go forward) maps to the instant of the jump, so
#   an interval spanning the change loses the skipped hour, and one lying wholly inside the gap is
#   empty and dropped.
# The rule is monotonic, so converted intervals stay sorted and never overlap; arithmetic is done
# on UTC instants, i.e. in real elapsed time.

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

# An open interval in local wall time; an end of time(0, 0) means the midnight ending the day.
Interval = tuple[time, time]
# A day's open intervals, sorted and non-overlapping; empty means closed.
DayHours = tuple[Interval, ...]
# An open interval as a half-open [start, end) pair of UTC instants.
InstantInterval = tuple[datetime, datetime]

MIDNIGHT = time(0, 0)
DEFAULT_HOURS: DayHours = ((time(9, 0), time(17, 0)),)

# A calendar with no open time at all (every day closed by overrides or holidays, or no working
# days) would make "next opening" loop forever; give up after this many consecutive closed days.
SEARCH_HORIZON_DAYS = 3 * 366

# Per-day interval lists are cached per calendar; bound the cache so a long-running process that
# sweeps across decades cannot grow it without limit (8192 days is about 22 years).
_CACHE_LIMIT = 8192

_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)


def as_utc(value: datetime, name: str = "value") -> datetime:
    """Return ``value`` in UTC, or raise ValueError if it is naive."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _wall_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """Return the first instant at which ``tz``'s clock shows ``wall`` (naive) or later."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    # fold=0 picks the earlier instant of an ambiguous time; if it round-trips, the time exists.
    if first.astimezone(tz).replace(tzinfo=None, fold=0) == wall:
        return first
    # Non-existent (in a forward gap): fold=0 lands after the jump and fold=1 before it. Offsets
    # only change on whole seconds, so bisect the window in seconds for the jump itself.
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo = math.floor(before.timestamp())
    hi = math.ceil(first.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None, fold=0) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _normalise_hours(raw: Iterable[Sequence[time]], where: str) -> DayHours:
    """Return the intervals sorted as a tuple, or raise ValueError if any is invalid or overlaps."""
    intervals: list[Interval] = []
    for item in raw:
        if len(item) != 2:
            raise ValueError(f"{where}: an interval is a (start, end) pair, got {item!r}")
        start, end = item
        if not isinstance(start, time) or not isinstance(end, time):
            raise ValueError(f"{where}: interval bounds must be datetime.time, got {item!r}")
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError(f"{where}: interval bounds are local wall times; drop the tzinfo")
        if end != MIDNIGHT and end <= start:
            raise ValueError(
                f"{where}: interval {start.isoformat()}-{end.isoformat()} must start before it "
                "ends (use 00:00 as the end for midnight)"
            )
        intervals.append((start, end))
    intervals.sort(key=lambda iv: iv[0])
    for (s1, e1), (s2, e2) in itertools.pairwise(intervals):
        if e1 == MIDNIGHT or s2 < e1:
            raise ValueError(
                f"{where}: intervals {s1.isoformat()}-{e1.isoformat()} and "
                f"{s2.isoformat()}-{e2.isoformat()} overlap"
            )
    return tuple(intervals)


@dataclass(frozen=True, eq=False)
class BusinessCalendar:
    """Open hours of one region: weekly schedule, public holidays and dated staff overrides."""

    # Equality and hashing are by identity (the holidays object is a lazily filled dict), so a
    # calendar can key a cache. Per-day results are cached: build a new calendar when overrides
    # change, and never mutate `holidays` after construction.

    tz: ZoneInfo
    weekly_hours: Mapping[int, DayHours]
    holidays: Container[date] = frozenset()
    overrides: Mapping[date, DayHours] = field(default_factory=dict)
    _days: dict[date, tuple[InstantInterval, ...]] = field(
        default_factory=dict, init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        """Validate and freeze the schedule and overrides."""
        if not isinstance(self.tz, ZoneInfo):
            raise ValueError(f"tz must be a zoneinfo.ZoneInfo, got {self.tz!r}")
        weekly: dict[int, DayHours] = {}
        for weekday, hours in self.weekly_hours.items():
            if isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
                raise ValueError(
                    f"weekly_hours: weekday must be 0 (Mon) to 6 (Sun), got {weekday!r}"
                )
            weekly[weekday] = _normalise_hours(hours, f"weekly_hours[{weekday}]")
        overrides: dict[date, DayHours] = {}
        for day, hours in self.overrides.items():
            # datetime is a subclass of date; a datetime key would never match a date lookup.
            if not isinstance(day, date) or isinstance(day, datetime):
                raise ValueError(f"overrides: keys must be datetime.date, got {day!r}")
            overrides[day] = _normalise_hours(hours, f"overrides[{day.isoformat()}]")
        object.__setattr__(self, "weekly_hours", MappingProxyType(weekly))
        object.__setattr__(self, "overrides", MappingProxyType(overrides))

    # -- per-day intervals -------------------------------------------------------------------

    def hours_on(self, day: date) -> DayHours:
        """Return the local-time intervals that apply on ``day`` (override, holiday or weekly)."""
        override = self.overrides.get(day)
        if override is not None:
            return override
        if day in self.holidays:
            return ()
        return self.weekly_hours.get(day.weekday(), ())

    def _day(self, day: date) -> tuple[InstantInterval, ...]:
        """Return ``day``'s open intervals as UTC instants, cached."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        # The lock makes the miss path safe: a `holidays` object fills years lazily on lookup,
        # and a half-filled year seen by a second thread would be cached as a wrong answer.
        with self._lock:
            cached = self._days.get(day)
            if cached is not None:
                return cached
            out: list[InstantInterval] = []
            for start, end in self.hours_on(day):
                start_at = _wall_to_utc(datetime.combine(day, start), self.tz)
                end_day = day + _ONE_DAY if end == MIDNIGHT else day
                end_at = _wall_to_utc(datetime.combine(end_day, end), self.tz)
                # An interval lying wholly in a DST gap collapses to nothing.
                if start_at < end_at:
                    out.append((start_at, end_at))
            result = tuple(out)
            if len(self._days) >= _CACHE_LIMIT:
                self._days.clear()
            self._days[day] = result
            return result

    def _local_date(self, t: datetime) -> date:
        """Return the local calendar date of UTC instant ``t``."""
        return t.astimezone(self.tz).date()

    def _intervals_from(self, t: datetime) -> Iterator[InstantInterval]:
        """Yield, in order, every open interval that ends after UTC instant ``t``."""
        # A day's intervals start no earlier than its local midnight, and t is at or after its own
        # local midnight, so no earlier day can hold an interval ending after t.
        day = self._local_date(t)
        closed_days = 0
        while True:
            intervals = self._day(day)
            if intervals:
                closed_days = 0
                for interval in intervals:
                    if interval[1] > t:
                        yield interval
            else:
                closed_days += 1
                if closed_days > SEARCH_HORIZON_DAYS:
                    raise ValueError(
                        f"calendar has no open time in the {SEARCH_HORIZON_DAYS} days before "
                        f"{day.isoformat()}"
                    )
            try:
                day += _ONE_DAY
            except OverflowError:
                raise ValueError("calendar has no open time before date.max") from None

    # -- public operations -------------------------------------------------------------------

    def open_intervals(self, day: date) -> list[InstantInterval]:
        """Return the open intervals of local date ``day`` as UTC ``[start, end)`` pairs."""
        if isinstance(day, datetime):
            raise ValueError("open_intervals takes a date, not a datetime")
        return list(self._day(day))

    def is_open(self, t: datetime) -> bool:
        """Return whether instant ``t`` falls inside an open interval (starts in, ends out)."""
        t = as_utc(t, "t")
        day = self._local_date(t)
        # The next day is checked too: when clocks go back across midnight, t can carry
        # yesterday's date while today's first interval has already begun.
        for candidate in (day, day + _ONE_DAY):
            for start, end in self._day(candidate):
                if start <= t < end:
                    return True
                if start > t:
                    return False
        return False

    def next_open(self, t: datetime) -> datetime:
        """Return ``t`` (in UTC) if open, else the next opening instant."""
        t = as_utc(t, "t")
        for start, _end in self._intervals_from(t):
            return max(start, t)
        raise AssertionError("unreachable: _intervals_from never ends without raising")

    def add(self, t: datetime, duration: timedelta) -> datetime:
        """Return the instant at which ``duration`` of open time counted from ``t`` is used up."""
        # The count starts at the next opening if t is closed, so a zero duration gives that
        # opening; time running out exactly at a close gives the close (a due time of 17:00).
        t = as_utc(t, "t")
        if duration < _ZERO:
            raise ValueError(f"duration must not be negative, got {duration}")
        remaining = duration
        for start, end in self._intervals_from(t):
            begin = max(start, t)
            available = end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _intervals_from never ends without raising")

    def open_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Return the open time inside ``[a, b)``; zero when ``b`` is not after ``a``."""
        a = as_utc(a, "a")
        b = as_utc(b, "b")
        if b <= a:
            return _ZERO
        total = _ZERO
        day = self._local_date(a)
        # One day past b's date covers the clocks-go-back-across-midnight case (see is_open).
        last = self._local_date(b) + _ONE_DAY
        while day <= last:
            for start, end in self._day(day):
                lo = max(start, a)
                hi = min(end, b)
                if hi > lo:
                    total += hi - lo
            day += _ONE_DAY
        return total

    def close_of_next_business_day(self, t: datetime) -> datetime:
        """Return the last close of the first day with open time after ``t``'s local date."""
        t = as_utc(t, "t")
        day = self._local_date(t)
        for _ in range(SEARCH_HORIZON_DAYS):
            day += _ONE_DAY
            intervals = self._day(day)
            if intervals:
                return intervals[-1][1]
        raise ValueError(
            f"calendar has no open time in the {SEARCH_HORIZON_DAYS} days after "
            f"{self._local_date(t).isoformat()}"
        )


def region_calendar(
    country: str,
    tz: str,
    hours: Sequence[Interval] = DEFAULT_HOURS,
    subdivision: str | None = None,
    overrides: Mapping[date, Sequence[Interval]] | None = None,
    working_days: Iterable[int] | None = None,
) -> BusinessCalendar:
    """Build a region's calendar from the `holidays` package for ``country``/``subdivision``."""
    # Working days default to every weekday outside the country's weekend (Israel works Sunday
    # to Thursday, the UAE Monday to Friday); each working day gets `hours`.
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc
    try:
        public_holidays = holidays_lib.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as exc:
        raise ValueError(f"no holiday data for country {country!r}: {exc}") from exc
    if working_days is None:
        weekend = set(public_holidays.weekend)
        days = [d for d in range(7) if d not in weekend]
    else:
        days = list(working_days)
    day_hours = _normalise_hours(hours, "hours")
    return BusinessCalendar(
        tz=zone,
        weekly_hours=dict.fromkeys(days, day_hours),
        holidays=public_holidays,
        overrides={day: tuple(ivs) for day, ivs in (overrides or {}).items()},
    )
