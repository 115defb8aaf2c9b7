"""Exact-instant tests of the business calendar (SPEC 2.3, 2.4)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from router.core.calendar import BusinessCalendar, as_utc, region_calendar

NY = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")
LONDON = ZoneInfo("Europe/London")
JERUSALEM = ZoneInfo("Asia/Jerusalem")
DUBAI = ZoneInfo("Asia/Dubai")
SINGAPORE = ZoneInfo("Asia/Singapore")
SANTIAGO = ZoneInfo("America/Santiago")

H = timedelta(hours=1)
ALL_DAY = ((time(0), time(0)),)
EVERY_DAY = range(7)

US = region_calendar("US", "America/New_York")
IL = region_calendar("IL", "Asia/Jerusalem")
AE = region_calendar("AE", "Asia/Dubai")
FR = region_calendar("FR", "Europe/Paris")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """Build a UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def always(tz: ZoneInfo, hours: tuple[tuple[time, time], ...] = ALL_DAY) -> BusinessCalendar:
    """Build a calendar open the given hours every day, with no holidays."""
    return BusinessCalendar(tz=tz, weekly_hours=dict.fromkeys(EVERY_DAY, hours))


# -- region calendars from the holidays package ---------------------------------------------


def test_us_thanksgiving_is_closed_and_the_friday_after_is_open() -> None:
    assert date(2026, 11, 26) in US.holidays
    # `holidays` US lists only federal holidays: the day after Thanksgiving is a working day.
    assert date(2026, 11, 27) not in US.holidays
    assert not US.is_open(datetime(2026, 11, 26, 12, 0, tzinfo=NY))
    assert US.is_open(datetime(2026, 11, 27, 12, 0, tzinfo=NY))
    assert US.open_intervals(date(2026, 11, 26)) == []
    assert US.open_intervals(date(2026, 11, 27)) == [(utc(2026, 11, 27, 14), utc(2026, 11, 27, 22))]


def test_us_business_hours_across_thanksgiving() -> None:
    wednesday_4pm = datetime(2026, 11, 25, 16, 0, tzinfo=NY)
    # 1 h on Wednesday, Thursday closed, 3 h on Friday.
    assert US.add(wednesday_4pm, 4 * H) == utc(2026, 11, 27, 17)
    assert US.next_open(datetime(2026, 11, 26, 8, 0, tzinfo=NY)) == utc(2026, 11, 27, 14)
    assert US.close_of_next_business_day(datetime(2026, 11, 25, 10, 0, tzinfo=NY)) == utc(
        2026, 11, 27, 22
    )


def test_israel_friday_is_closed_and_sunday_is_a_working_day() -> None:
    assert set(IL.weekly_hours) == {6, 0, 1, 2, 3}
    friday = datetime(2026, 1, 16, 10, 0, tzinfo=JERUSALEM)
    assert not IL.is_open(friday)
    assert not IL.is_open(datetime(2026, 1, 17, 10, 0, tzinfo=JERUSALEM))
    assert IL.is_open(datetime(2026, 1, 18, 10, 0, tzinfo=JERUSALEM))
    # Sunday 09:00 IST (+02:00).
    assert IL.next_open(friday) == utc(2026, 1, 18, 7)
    assert IL.add(friday, 4 * H) == utc(2026, 1, 18, 11)
    assert IL.close_of_next_business_day(friday) == utc(2026, 1, 18, 15)
    # Thursday 16:00: 1 h on Thursday, 3 h on Sunday.
    assert IL.add(datetime(2026, 1, 15, 16, 0, tzinfo=JERUSALEM), 4 * H) == utc(2026, 1, 18, 10)


def test_uae_works_friday_and_rests_saturday_sunday() -> None:
    assert set(AE.weekly_hours) == {0, 1, 2, 3, 4}
    assert AE.is_open(datetime(2026, 1, 16, 10, 0, tzinfo=DUBAI))
    assert not AE.is_open(datetime(2026, 1, 18, 10, 0, tzinfo=DUBAI))
    # Friday 16:00 GST (+04:00): 1 h on Friday, 3 h on Monday.
    assert AE.add(datetime(2026, 1, 16, 16, 0, tzinfo=DUBAI), 4 * H) == utc(2026, 1, 19, 8)


def test_explicit_working_days_override_the_country_weekend() -> None:
    cal = region_calendar("US", "America/New_York", working_days=[0, 1, 2, 3, 4, 5])
    assert cal.is_open(datetime(2026, 11, 28, 10, 0, tzinfo=NY))
    assert not cal.is_open(datetime(2026, 11, 29, 10, 0, tzinfo=NY))


def test_year_boundary_skips_new_years_day() -> None:
    new_years_eve = datetime(2025, 12, 31, 16, 0, tzinfo=NY)
    assert US.add(new_years_eve, 4 * H) == utc(2026, 1, 2, 17)
    assert US.close_of_next_business_day(new_years_eve) == utc(2026, 1, 2, 22)


# -- next business day ------------------------------------------------------------------------


def test_saturday_next_business_day_is_monday_close() -> None:
    saturday = datetime(2026, 11, 28, 11, 0, tzinfo=NY)
    assert US.close_of_next_business_day(saturday) == utc(2026, 11, 30, 22)


def test_monday_late_evening_next_business_day_is_tuesday_close() -> None:
    # Monday 23:00 New York is already Tuesday 04:00 UTC; the local date decides.
    monday_11pm = datetime(2026, 11, 30, 23, 0, tzinfo=NY)
    assert US.close_of_next_business_day(monday_11pm) == utc(2026, 12, 1, 22)
    assert US.close_of_next_business_day(utc(2026, 12, 1, 4)) == utc(2026, 12, 1, 22)


def test_next_business_day_uses_the_last_interval_of_a_split_day() -> None:
    cal = region_calendar(
        "SG", "Asia/Singapore", hours=((time(9), time(12)), (time(13), time(17, 30)))
    )
    assert cal.close_of_next_business_day(datetime(2026, 1, 5, 10, 0, tzinfo=SINGAPORE)) == utc(
        2026, 1, 6, 9, 30
    )


# -- contact received outside hours -------------------------------------------------------------


def test_after_close_the_clock_starts_next_morning() -> None:
    tuesday_evening = datetime(2026, 12, 1, 18, 30, tzinfo=NY)
    assert not US.is_open(tuesday_evening)
    assert US.next_open(tuesday_evening) == utc(2026, 12, 2, 14)
    assert US.add(tuesday_evening, 4 * H) == utc(2026, 12, 2, 18)
    assert US.add(tuesday_evening, timedelta(0)) == utc(2026, 12, 2, 14)


def test_open_instant_is_its_own_next_opening_and_returned_in_utc() -> None:
    t = datetime(2026, 12, 2, 10, 15, tzinfo=NY)
    result = US.next_open(t)
    assert result == utc(2026, 12, 2, 15, 15)
    assert result.tzinfo is UTC
    assert US.add(t, timedelta(0)).tzinfo is UTC


def test_interval_bounds_are_start_inclusive_end_exclusive() -> None:
    assert US.is_open(datetime(2026, 12, 2, 9, 0, tzinfo=NY))
    assert not US.is_open(datetime(2026, 12, 2, 17, 0, tzinfo=NY))
    # Time used up exactly at a close gives the close, not the next opening.
    assert US.add(datetime(2026, 12, 4, 9, 0, tzinfo=NY), 8 * H) == utc(2026, 12, 4, 22)


# -- split shifts and overrides -----------------------------------------------------------------

SPLIT = region_calendar("SG", "Asia/Singapore", hours=((time(9), time(12)), (time(13), time(17))))


def test_split_shift_skips_lunch() -> None:
    monday_11am = datetime(2026, 1, 5, 11, 0, tzinfo=SINGAPORE)
    assert SPLIT.add(monday_11am, 2 * H) == utc(2026, 1, 5, 6)
    lunch = datetime(2026, 1, 5, 12, 30, tzinfo=SINGAPORE)
    assert not SPLIT.is_open(lunch)
    assert SPLIT.next_open(lunch) == utc(2026, 1, 5, 5)
    assert SPLIT.open_time_between(
        datetime(2026, 1, 5, 8, 0, tzinfo=SINGAPORE), datetime(2026, 1, 5, 18, 0, tzinfo=SINGAPORE)
    ) == (7 * H)
    assert SPLIT.open_intervals(date(2026, 1, 5)) == [
        (utc(2026, 1, 5, 1), utc(2026, 1, 5, 4)),
        (utc(2026, 1, 5, 5), utc(2026, 1, 5, 9)),
    ]


def test_staff_closure_override() -> None:
    cal = region_calendar("US", "America/New_York", overrides={date(2026, 12, 24): ()})
    wednesday_4pm = datetime(2026, 12, 23, 16, 0, tzinfo=NY)
    # 1 h Wednesday; Thursday closed by staff, Friday Christmas, then the weekend.
    assert cal.add(wednesday_4pm, 4 * H) == utc(2026, 12, 28, 17)
    assert cal.close_of_next_business_day(wednesday_4pm) == utc(2026, 12, 28, 22)
    # The same instant without the override.
    assert US.add(wednesday_4pm, 4 * H) == utc(2026, 12, 24, 17)


def test_special_hours_override_replaces_the_day() -> None:
    cal = region_calendar(
        "US", "America/New_York", overrides={date(2026, 12, 24): ((time(9), time(12)),)}
    )
    assert cal.add(datetime(2026, 12, 23, 16, 0, tzinfo=NY), 4 * H) == utc(2026, 12, 24, 17)
    assert cal.add(datetime(2026, 12, 23, 16, 0, tzinfo=NY), 5 * H) == utc(2026, 12, 28, 15)
    assert cal.close_of_next_business_day(datetime(2026, 12, 23, 16, 0, tzinfo=NY)) == utc(
        2026, 12, 24, 17
    )


def test_special_hours_apply_on_a_holiday_and_a_weekend() -> None:
    cal = region_calendar(
        "US",
        "America/New_York",
        overrides={
            date(2026, 11, 26): ((time(10), time(14)),),
            date(2026, 11, 28): ((time(10), time(12)),),
        },
    )
    assert cal.add(datetime(2026, 11, 25, 16, 0, tzinfo=NY), 4 * H) == utc(2026, 11, 26, 18)
    assert cal.close_of_next_business_day(datetime(2026, 11, 27, 10, 0, tzinfo=NY)) == utc(
        2026, 11, 28, 17
    )


# -- daylight saving time -----------------------------------------------------------------------


def test_europe_spring_forward_day_is_23_hours_long() -> None:
    cal = always(PARIS)
    assert cal.open_intervals(date(2026, 3, 29)) == [(utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))]
    # 24 h of real time from Saturday noon CET ends at 13:00 CEST.
    assert cal.add(datetime(2026, 3, 28, 12, 0, tzinfo=PARIS), 24 * H) == utc(2026, 3, 29, 11)


def test_europe_interval_spanning_the_change_loses_an_hour() -> None:
    cal = always(PARIS, ((time(1), time(4)),))
    # 01:00 CET to 04:00 CEST is 2 h of real time.
    assert cal.open_intervals(date(2026, 3, 29)) == [(utc(2026, 3, 29, 0), utc(2026, 3, 29, 2))]
    start = datetime(2026, 3, 29, 1, 0, tzinfo=PARIS)
    # 2 h on Sunday, then 1 h from Monday 01:00 CEST (Sunday 23:00 UTC).
    assert cal.add(start, 3 * H) == utc(2026, 3, 30, 0)
    assert cal.open_time_between(start, datetime(2026, 3, 30, 4, 0, tzinfo=PARIS)) == 5 * H


def test_business_hours_across_the_european_change_use_real_time() -> None:
    friday_4pm = datetime(2026, 3, 27, 16, 0, tzinfo=PARIS)
    # 1 h Friday (CET), 3 h from Monday 09:00 CEST (07:00 UTC).
    assert FR.add(friday_4pm, 4 * H) == utc(2026, 3, 30, 10)


def test_london_fall_back_day_is_25_hours_and_interval_gains_an_hour() -> None:
    assert always(LONDON).open_intervals(date(2026, 10, 25)) == [
        (utc(2026, 10, 24, 23), utc(2026, 10, 26, 0))
    ]
    # 01:00 is ambiguous: the first occurrence (BST) opens; 04:00 GMT closes, 4 h later.
    cal = always(LONDON, ((time(1), time(4)),))
    assert cal.open_intervals(date(2026, 10, 25)) == [(utc(2026, 10, 25, 0), utc(2026, 10, 25, 4))]


def test_us_spring_forward_interval_spanning_the_change() -> None:
    cal = always(NY, ((time(1), time(4)),))
    # 01:00 EST (06:00 UTC) to 04:00 EDT (08:00 UTC).
    assert cal.open_intervals(date(2026, 3, 8)) == [(utc(2026, 3, 8, 6), utc(2026, 3, 8, 8))]
    assert cal.add(datetime(2026, 3, 8, 1, 30, tzinfo=NY), 2 * H) == utc(2026, 3, 9, 5, 30)


def test_us_spring_forward_gap_maps_to_the_jump() -> None:
    cal = always(NY, ((time(2), time(2, 30)), (time(2, 45), time(5))))
    # 02:00-02:30 does not exist that day and is dropped; 02:45 opens at the jump (07:00 UTC).
    assert cal.open_intervals(date(2026, 3, 8)) == [(utc(2026, 3, 8, 7), utc(2026, 3, 8, 9))]
    assert cal.open_intervals(date(2026, 3, 9)) == [
        (utc(2026, 3, 9, 6), utc(2026, 3, 9, 6, 30)),
        (utc(2026, 3, 9, 6, 45), utc(2026, 3, 9, 9)),
    ]


def test_us_fall_back_ambiguous_start_uses_first_occurrence() -> None:
    cal = always(NY, ((time(1, 30), time(3)),))
    # 01:30 EDT (05:30 UTC) to 03:00 EST (08:00 UTC): 2.5 h.
    assert cal.open_intervals(date(2026, 11, 1)) == [(utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 8))]
    assert cal.add(datetime(2026, 11, 1, 1, 30, tzinfo=NY), 2 * H + 30 * timedelta(minutes=1)) == (
        utc(2026, 11, 1, 8)
    )


def test_us_business_day_is_unaffected_by_the_early_morning_change() -> None:
    # Friday 16:00 EST + 4 h: 1 h Friday, then Monday 09:00 EDT (13:00 UTC) + 3 h.
    assert US.add(datetime(2026, 3, 6, 16, 0, tzinfo=NY), 4 * H) == utc(2026, 3, 9, 16)


def test_midnight_gap_in_santiago() -> None:
    cal = always(SANTIAGO)
    # Clocks jump from Saturday 24:00 to Sunday 01:00: Sunday opens at the jump.
    assert cal.open_intervals(date(2026, 9, 5)) == [(utc(2026, 9, 5, 4), utc(2026, 9, 6, 4))]
    assert cal.open_intervals(date(2026, 9, 6)) == [(utc(2026, 9, 6, 4), utc(2026, 9, 7, 3))]
    assert cal.add(datetime(2026, 9, 5, 12, 0, tzinfo=SANTIAGO), 24 * H) == utc(2026, 9, 6, 16)


def test_midnight_fall_back_in_santiago() -> None:
    cal = always(SANTIAGO)
    # Saturday 23:00-24:00 happens twice; Saturday keeps both, lasting 25 h.
    assert cal.open_intervals(date(2026, 4, 4)) == [(utc(2026, 4, 4, 3), utc(2026, 4, 5, 4))]
    second_2330 = datetime(2026, 4, 4, 23, 30, fold=1, tzinfo=SANTIAGO)
    assert as_utc(second_2330) == utc(2026, 4, 5, 3, 30)
    assert cal.is_open(second_2330)
    assert cal.close_of_next_business_day(second_2330) == utc(2026, 4, 6, 4)


# -- open time between --------------------------------------------------------------------------


def test_open_time_between_over_a_holiday_week() -> None:
    a = datetime(2026, 11, 23, 0, 0, tzinfo=NY)
    b = datetime(2026, 11, 30, 0, 0, tzinfo=NY)
    assert US.open_time_between(a, b) == 32 * H
    assert US.open_time_between(b, a) == timedelta(0)
    assert US.open_time_between(a, a) == timedelta(0)


# -- guards and validation ----------------------------------------------------------------------


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 12, 2, 10, 0)
    for call in (
        lambda: US.is_open(naive),
        lambda: US.next_open(naive),
        lambda: US.add(naive, H),
        lambda: US.close_of_next_business_day(naive),
        lambda: US.open_time_between(naive, utc(2026, 12, 3, 0)),
    ):
        with pytest.raises(ValueError, match="timezone-aware"):
            call()


def test_negative_duration_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        US.add(utc(2026, 12, 2, 15), -H)


def test_calendar_without_open_time_fails_instead_of_looping() -> None:
    never = BusinessCalendar(tz=NY, weekly_hours={})
    t = utc(2026, 1, 1, 0)
    assert not never.is_open(t)
    assert never.open_time_between(t, utc(2027, 1, 1, 0)) == timedelta(0)
    with pytest.raises(ValueError, match="no open time"):
        never.next_open(t)
    with pytest.raises(ValueError, match="no open time"):
        never.add(t, H)
    with pytest.raises(ValueError, match="no open time"):
        never.close_of_next_business_day(t)


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({0: ((time(17), time(9)),)}, "must start before it ends"),
        ({0: ((time(9), time(9)),)}, "must start before it ends"),
        ({0: ((time(9), time(13)), (time(12), time(17)))}, "overlap"),
        ({0: ((time(9), time(0)), (time(22), time(23)))}, "overlap"),
        ({7: ((time(9), time(17)),)}, "weekday must be 0"),
        ({0: ((time(9, tzinfo=UTC), time(17)),)}, "drop the tzinfo"),
    ],
)
def test_invalid_weekly_hours_are_rejected(
    hours: dict[int, tuple[tuple[time, time], ...]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(tz=NY, weekly_hours=hours)


def test_invalid_overrides_are_rejected() -> None:
    with pytest.raises(ValueError, match="overlap"):
        BusinessCalendar(
            tz=NY,
            weekly_hours={},
            overrides={date(2026, 1, 1): ((time(9), time(12)), (time(11), time(13)))},
        )
    with pytest.raises(ValueError, match="datetime.date"):
        BusinessCalendar(tz=NY, weekly_hours={}, overrides={datetime(2026, 1, 1): ()})


def test_unsorted_intervals_are_sorted_and_touching_ones_allowed() -> None:
    cal = BusinessCalendar(
        tz=ZoneInfo("UTC"),
        weekly_hours={0: ((time(13), time(17)), (time(9), time(13)))},
    )
    assert cal.weekly_hours[0] == ((time(9), time(13)), (time(13), time(17)))
    assert cal.add(utc(2026, 1, 5, 12), 2 * H) == utc(2026, 1, 5, 14)


def test_region_calendar_rejects_unknown_country_and_zone() -> None:
    with pytest.raises(ValueError, match="country"):
        region_calendar("XX", "UTC")
    with pytest.raises(ValueError, match="time zone"):
        region_calendar("US", "Mars/Olympus_Mons")


def test_calendar_is_hashable_and_caches_days() -> None:
    cal = region_calendar("GB", "Europe/London", subdivision="ENG")
    assert {cal: 1}[cal] == 1
    first = cal.open_intervals(date(2026, 12, 28))
    assert first == []  # Boxing Day (observed) in England
    assert cal.open_intervals(date(2026, 12, 29)) == [(utc(2026, 12, 29, 9), utc(2026, 12, 29, 17))]
    assert cal._days[date(2026, 12, 29)] == ((utc(2026, 12, 29, 9), utc(2026, 12, 29, 17)),)
