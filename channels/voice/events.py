"""The operations events the voice channel records for staff: odd numbers, lock-outs, alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, insert
from sqlalchemy.orm import Session

from router.store.models import OpsEvent

EVENT_UNKNOWN_NUMBER = "voice.unknown_number"
EVENT_PIN_LOCKOUT = "voice.pin_lockout"
EVENT_PIN_FAILURE_RATE = "voice.pin_failure_rate"

_INSERT_EVENT = insert(cast(Table, OpsEvent.__table__))


def unknown_number(
    connection: Connection, *, dialled: str, call_sid: str, region: str, now: datetime
) -> None:
    """Record a call to a number no region lists (answered as the default region)."""
    connection.execute(
        _INSERT_EVENT,
        {
            "at": now,
            "kind": EVENT_UNKNOWN_NUMBER,
            "severity": "warning",
            "message": (
                f"a call came in on a number no region lists; answered as "
                f"region {region!r} (add it to regions.toml)"
            ),
            "data": {"dialled": dialled, "call_sid": call_sid, "region": region},
        },
    )


def pin_lockout(
    session: Session,
    *,
    caller: str,
    failures: int | None,
    until: datetime,
    call_sid: str,
    now: datetime,
) -> None:
    """Record that a calling number was locked out of PIN checks."""
    session.add(
        OpsEvent(
            at=now,
            kind=EVENT_PIN_LOCKOUT,
            severity="warning",
            message=(
                f"calling number locked out of PIN checks until {until.isoformat()} after "
                f"{failures} failures (staff can unlock it)"
            ),
            data={
                "calling_number": caller,
                "failures": failures,
                "locked_until": until.isoformat(),
                "call_sid": call_sid,
            },
        )
    )


def pin_failure_rate(
    session: Session,
    *,
    failures: int,
    window: timedelta,
    limit: int,
    checks_per_minute: float,
    now: datetime,
) -> None:
    """Record that PIN failures across all calling numbers went over the alert limit."""
    session.add(
        OpsEvent(
            at=now,
            kind=EVENT_PIN_FAILURE_RATE,
            severity="critical",
            message=(
                f"{failures} PIN failures across all calling numbers in the last "
                f"{int(window.total_seconds() // 60)} minutes (limit "
                f"{limit}); PIN checks across all calls are limited to "
                f"{checks_per_minute:g} a minute while this lasts"
            ),
            data={
                "failures": failures,
                "window_seconds": int(window.total_seconds()),
                "limit": limit,
                "checks_per_minute": checks_per_minute,
            },
        )
    )
