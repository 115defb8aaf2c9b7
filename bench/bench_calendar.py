"""Time business-calendar arithmetic across the US Thanksgiving long weekend."""

# Run as `.venv/bin/python bench/bench_calendar.py`. Prints microseconds per call for a fresh
# calendar (empty per-day cache, holiday data already loaded), a warm calendar, and a calendar
# built from scratch with `region_calendar` (holiday data computed too).

from __future__ import annotations

import timeit
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from router.core.calendar import BusinessCalendar, region_calendar

NY = ZoneInfo("America/New_York")
WEDNESDAY_4PM = datetime(2026, 11, 25, 16, 0, tzinfo=NY)
FOUR_HOURS = timedelta(hours=4)
REPEATS = 5


def best_us(stmt: Callable[[], object], number: int) -> float:
    """Return the best-of-REPEATS microseconds per call of ``stmt``."""
    return min(timeit.repeat(stmt, number=number, repeat=REPEATS)) / number * 1e6


def main() -> None:
    """Print the benchmark table."""
    warm = region_calendar("US", "America/New_York")
    shared_holidays = warm.holidays
    weekly = warm.weekly_hours
    # Sanity: the business-time result is Friday 12:00 New York.
    assert warm.add(WEDNESDAY_4PM, FOUR_HOURS) == datetime(2026, 11, 27, 12, 0, tzinfo=NY)

    def fresh() -> BusinessCalendar:
        return BusinessCalendar(tz=NY, weekly_hours=weekly, holidays=shared_holidays)

    rows = [
        ("add(Wed 16:00, 4 business h)", "warm cache", lambda: warm.add(WEDNESDAY_4PM, FOUR_HOURS)),
        (
            "add(Wed 16:00, 4 business h)",
            "fresh calendar",
            lambda: fresh().add(WEDNESDAY_4PM, FOUR_HOURS),
        ),
        (
            "add(Wed 16:00, 4 business h)",
            "region_calendar()",
            lambda: region_calendar("US", "America/New_York").add(WEDNESDAY_4PM, FOUR_HOURS),
        ),
        (
            "close_of_next_business_day(Wed)",
            "warm cache",
            lambda: warm.close_of_next_business_day(WEDNESDAY_4PM),
        ),
        (
            "close_of_next_business_day(Wed)",
            "fresh calendar",
            lambda: fresh().close_of_next_business_day(WEDNESDAY_4PM),
        ),
        ("BusinessCalendar(...) only", "construction", fresh),
    ]
    print(f"{'operation':<34} {'calendar':<18} {'µs/call':>10}")
    print("-" * 64)
    for operation, variant, stmt in rows:
        number = 50 if variant == "region_calendar()" else 2000
        print(f"{operation:<34} {variant:<18} {best_us(stmt, number):>10.1f}")


if __name__ == "__main__":
    main()
