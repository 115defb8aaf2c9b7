"""The support regions (regions.toml): numbers, calendars, time zones, languages and hours."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import phonenumbers

from config.policy_toml import Table


@dataclass(frozen=True)
class Region:
    """A support region: its number, calendar country, time zone and IVR language."""

    key: str
    name: str
    display_number: str
    e164: str | None
    aliases: tuple[str, ...]
    country: str
    subdivision: str | None
    timezone: str
    language: str
    hours: tuple[tuple[time, time], ...]


def normalise_number(number: str) -> str:
    """Keep digits and a leading '+', so carriers' spacing and punctuation do not matter."""
    stripped = number.strip()
    digits = re.sub(r"\D", "", stripped)
    return ("+" + digits) if stripped.startswith("+") else digits


def _clock_time(table: Table, name: str, raw: Any) -> time:
    """Return a time of day written 'HH:MM' ('24:00' is the end of the day)."""
    if not isinstance(raw, str) or not re.fullmatch(r"\d{2}:\d{2}", raw):
        raise table.error(name, f"must be a time 'HH:MM', not {raw!r}")
    hour, minute = int(raw[:2]), int(raw[3:])
    if (hour, minute) == (24, 0):
        return time(0, 0)  # midnight at the end of the day
    if hour > 23 or minute > 59:
        raise table.error(name, f"is not a valid time of day: {raw!r}")
    return time(hour, minute)


def _opening_hours(table: Table, name: str) -> tuple[tuple[time, time], ...]:
    """Return the ordered, non-overlapping open intervals of a day."""
    raw = table.get(name, list, [["09:00", "17:00"]])
    intervals: list[tuple[time, time]] = []
    for index, pair in enumerate(raw):
        key = f"{name}[{index}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise table.error(key, 'must be a pair ["HH:MM", "HH:MM"]')
        start, end = _clock_time(table, key, pair[0]), _clock_time(table, key, pair[1])
        if end != time(0, 0) and end <= start:
            raise table.error(key, "must end after it starts")
        if intervals and (intervals[-1][1] == time(0, 0) or start < intervals[-1][1]):
            raise table.error(key, "overlaps or precedes the interval before it")
        intervals.append((start, end))
    if not intervals:
        raise table.error(name, "needs at least one open interval")
    return tuple(intervals)


_SUPPORTED_COUNTRIES: Mapping[str, list[str]] = holidays.list_supported_countries()


def load_regions(file: str, data: dict[str, Any]) -> tuple[str, dict[str, Region]]:
    """Read regions.toml: the default region and every region by key."""
    root = Table(file, "", data)
    default_region = root.get("default_region", str)
    regions: dict[str, Region] = {}
    seen_numbers: dict[str, str] = {}
    for key, table in root.tables("regions"):
        country = table.get("country", str)
        if country not in _SUPPORTED_COUNTRIES:
            raise table.error("country", f"unknown country code {country!r} (ISO 3166-1 alpha-2)")
        subdivision = table.get("subdivision", str, required=False)
        if subdivision is not None and subdivision not in _SUPPORTED_COUNTRIES[country]:
            raise table.error("subdivision", f"unknown subdivision {subdivision!r} of {country}")
        timezone = table.get("timezone", str)
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise table.error("timezone", f"unknown time zone {timezone!r}") from None
        e164 = table.get("e164", str, required=False)
        if e164 is not None:
            _check_e164(table, e164)
        aliases = table.strings("aliases")
        for index, alias in enumerate(aliases):
            if not re.fullmatch(r"\+?[\d \-().]{6,24}", alias):
                raise table.error(f"aliases[{index}]", f"is not a phone number: {alias!r}")
        if e164 is None and not aliases:
            raise table.error(
                "e164", "is required (or give aliases for a number with no E.164 form)"
            )
        for index, form in enumerate((e164, *aliases)):
            if form is None:
                continue
            number = normalise_number(form)
            if number in seen_numbers and seen_numbers[number] != key:
                name = "e164" if index == 0 else f"aliases[{index - 1}]"
                raise table.error(
                    name, f"number {form!r} is already used by region {seen_numbers[number]!r}"
                )
            seen_numbers[number] = key
        language = table.get("language", str)
        if not re.fullmatch(r"[a-z]{2}-[A-Z]{2}", language):
            raise table.error("language", f"must be a language tag like 'en-US', not {language!r}")
        regions[key] = Region(
            key=key,
            name=table.get("name", str),
            display_number=table.get("display_number", str),
            e164=e164,
            aliases=aliases,
            country=country,
            subdivision=subdivision,
            timezone=timezone,
            language=language,
            hours=_opening_hours(table, "hours"),
        )
        table.done()
    root.done()
    if default_region not in regions:
        raise root.error("default_region", f"unknown region {default_region!r}")
    return default_region, regions


def _check_e164(table: Table, e164: str) -> None:
    """Refuse a number that is not valid or not written in E.164 form."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise table.error("e164", f"is not a phone number: {e164!r} ({exc})") from None
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(number) or formatted != e164:
        raise table.error("e164", f"is not a valid E.164 number: {e164!r}")
