"""The scheduler's health: job heartbeats the scheduler writes and /readyz and /metrics read."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, select, update
from sqlalchemy.exc import IntegrityError

from router.store.db import Database
from router.store.models.scheduler import PROCESS_ROW, SchedulerState

SWEEP_JOB = "sla-sweep"
_MAX_ERROR = 2000


def rowcount(result: Result[Any]) -> int:
    """Return how many rows an UPDATE or DELETE touched."""
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def holder_name() -> str:
    """Return host:pid, naming this process in the heartbeat table and the lock file."""
    return f"{socket.gethostname()}:{os.getpid()}"


def record_run(
    db: Database,
    name: str,
    *,
    started_at: datetime,
    finished_at: datetime,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    holder: str | None = None,
) -> None:
    """Record one run of job ``name``: success (with its result) or failure (with its error)."""
    values: dict[str, Any] = {
        "holder": holder or holder_name(),
        "last_started_at": started_at,
        "last_duration_ms": int((finished_at - started_at).total_seconds() * 1000),
        "updated_at": finished_at,
    }
    if error is None:
        values.update(last_success_at=finished_at, last_result=result or {})
    else:
        values.update(last_failure_at=finished_at, last_error=error[:_MAX_ERROR])
    _upsert(db, name, values, failed=error is not None)


def record_heartbeat(db: Database, *, now: datetime, active_since: datetime, holder: str) -> None:
    """Record that ``holder`` is the active scheduler and alive at ``now``."""
    values: dict[str, Any] = {
        "holder": holder,
        "last_started_at": active_since,
        "last_success_at": now,
        "updated_at": now,
    }
    _upsert(db, PROCESS_ROW, values, failed=False, count=False)


def _upsert(
    db: Database, name: str, values: dict[str, Any], *, failed: bool, count: bool = True
) -> None:
    # Update first (the common case); insert the first time; a racing insert falls back.
    counters: dict[str, Any] = {}
    if count:
        counters["runs"] = SchedulerState.runs + 1
        if failed:
            counters["failures"] = SchedulerState.failures + 1
    for _ in range(2):
        with db.transaction() as session:
            changed = rowcount(
                session.execute(
                    update(SchedulerState)
                    .where(SchedulerState.name == name)
                    .values(**values, **counters)
                    .execution_options(synchronize_session=False)
                )
            )
            if changed:
                return
        try:
            with db.transaction() as session:
                session.add(
                    SchedulerState(
                        name=name,
                        runs=1 if count else 0,
                        failures=1 if failed and count else 0,
                        **{"last_result": {}, **values},
                    )
                )
            return
        except IntegrityError:
            continue


@dataclass(frozen=True)
class SchedulerHealth:
    """Whether the SLA sweep is running: its last success and how old that is."""

    state: str  # ok, stale, never_ran, unknown (the table could not be read)
    last_sweep_at: datetime | None
    age: timedelta | None
    holder: str | None
    heartbeat_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """Return the health as JSON-ready data (for /readyz)."""
        return {
            "state": self.state,
            "last_sweep_at": self.last_sweep_at.isoformat() if self.last_sweep_at else None,
            "age_seconds": round(self.age.total_seconds(), 1) if self.age is not None else None,
            "active": self.holder,
            "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None,
        }


def read_health(db: Database, now: datetime, stale_after: timedelta) -> SchedulerHealth:
    """Read the last successful sweep and the active process's heartbeat (two key lookups)."""
    with db.session() as session:
        rows = {
            row.name: row
            for row in session.execute(
                select(
                    SchedulerState.name, SchedulerState.holder, SchedulerState.last_success_at
                ).where(SchedulerState.name.in_([SWEEP_JOB, PROCESS_ROW]))
            )
        }
    sweep, process = rows.get(SWEEP_JOB), rows.get(PROCESS_ROW)
    last = sweep.last_success_at if sweep is not None else None
    age = max(now - last, timedelta(0)) if last is not None else None
    state = "never_ran"
    if age is not None:
        state = "ok" if age <= stale_after else "stale"
    return SchedulerHealth(
        state=state,
        last_sweep_at=last,
        age=age,
        holder=process.holder if process is not None else None,
        heartbeat_at=process.last_success_at if process is not None else None,
    )
