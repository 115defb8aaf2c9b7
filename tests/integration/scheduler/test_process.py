"""The scheduler process: one active holder of the lock, APScheduler jobs, catch-up, takeover."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from flask import Flask
from sqlalchemy import create_engine, select, text

from config.settings import PROJECT_ROOT, Settings
from router.mailer import Mailer, MemoryTransport
from router.runtime import Runtime
from router.scheduler import jobs
from router.scheduler.lock import AdvisoryLock, FileLock, lock_for
from router.scheduler.process import JOBSTORE_TABLE, JobScheduler, SchedulerProcess, reconcile_jobs
from router.scheduler.state import SWEEP_JOB
from router.store.db import Database
from router.store.models.scheduler import PROCESS_ROW, SchedulerState
from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL
from tests.integration.scheduler.conftest import World


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def state(db: Database, name: str) -> SchedulerState | None:
    with db.session() as session:
        return session.scalar(select(SchedulerState).where(SchedulerState.name == name))


def test_file_lock_admits_one_holder(tmp_path: Path) -> None:
    path = tmp_path / "router.sqlite3.scheduler.lock"
    first, second = FileLock(path, holder="a:1"), FileLock(path, holder="b:2")
    assert first.try_acquire() and first.still_held()
    assert not second.try_acquire()
    assert path.read_text() == "a:1\n"
    first.release()
    assert second.try_acquire()
    # Someone deletes the lock file: the holder can no longer be sure, so it stops.
    path.unlink()
    assert not second.still_held()
    assert first.try_acquire()
    first.release()


def test_the_lock_sits_next_to_the_sqlite_file(tmp_path: Path) -> None:
    lock = lock_for(f"sqlite:///{tmp_path / 'db.sqlite3'}", 1, holder="x")
    assert isinstance(lock, FileLock) and lock.path == tmp_path / "db.sqlite3.scheduler.lock"
    with pytest.raises(ValueError, match="in-memory"):
        lock_for("sqlite://", 1, holder="x")
    assert isinstance(lock_for("postgresql+psycopg://u@h/d", 1, holder="x"), AdvisoryLock)


@pytest.mark.postgres
def test_advisory_lock_admits_one_holder_and_frees_when_its_session_dies() -> None:
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    key = int.from_bytes(os.urandom(7), "big")
    first = AdvisoryLock(POSTGRES_URL, key, holder="first:1")
    second = AdvisoryLock(POSTGRES_URL, key, holder="second:2")
    try:
        assert first.try_acquire() and first.still_held()
        assert not second.try_acquire()
        # The active scheduler's session is killed (as when its host dies).
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            killed = connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted "
                    "AND objid = CAST(:low AS oid) AND classid = CAST(:high AS oid)"
                ),
                {"low": key & 0xFFFFFFFF, "high": key >> 32},
            ).all()
        admin.dispose()
        assert killed == [(True,)]
        wait_for(lambda: not first.still_held(), 5, "the lock to be seen as lost")
        wait_for(second.try_acquire, 5, "the standby to take the lock")
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()


def _jobstore_scheduler(db: Database) -> JobScheduler:
    store = SQLAlchemyJobStore(engine=db.engine, tablename=JOBSTORE_TABLE)
    scheduler = JobScheduler(jobstores={"default": store}, timezone=UTC)
    scheduler.start(paused=True)
    return scheduler


def test_jobs_are_stored_under_fixed_ids_and_keep_their_run_times(
    db: Database, settings: Settings
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    scheduler = _jobstore_scheduler(db)
    try:
        reconcile_jobs(scheduler, jobs.specs(settings), now)
        stored = {job.id: job for job in scheduler.get_jobs()}
        assert set(stored) == {
            "sla-sweep",
            "deliver-notifications",
            "trial-expiry",
            "pin-lockout-expiry",
            "replay-token-purge",
            "login-state-purge",
            "email-outbox",
            "dispatch-offers",
        }
        sweep = stored["sla-sweep"]
        assert sweep.func_ref == "router.scheduler.jobs:sla_sweep"
        assert sweep.trigger.interval == timedelta(seconds=settings.sla_sweep_interval_seconds)
        assert (sweep.coalesce, sweep.max_instances, sweep.misfire_grace_time) == (True, 1, None)
        assert sweep.next_run_time == now  # a new job runs at once

        # Downtime: the stored run time passed long ago. Reconciling keeps it (catch-up)...
        long_ago = now - timedelta(days=2)
        scheduler.modify_job("trial-expiry", next_run_time=long_ago)
        scheduler.add_job(jobs.trial_expiry, "interval", hours=1, id="obsolete")
        reconcile_jobs(scheduler, jobs.specs(settings), now + timedelta(minutes=5))
        assert scheduler.get_job("trial-expiry").next_run_time == long_ago
        assert scheduler.get_job("obsolete") is None
        # ...and a changed interval replaces the job without losing a run already due.
        changed = settings.with_overrides(scheduler_maintenance_interval_seconds=60)
        reconcile_jobs(scheduler, jobs.specs(changed), now + timedelta(minutes=6))
        trial = scheduler.get_job("trial-expiry")
        assert trial.trigger.interval == timedelta(seconds=60)
        assert trial.next_run_time == long_ago
    finally:
        scheduler.shutdown(wait=False)


@pytest.fixture
def quick(settings: Settings) -> Settings:
    """Return settings with a one-second sweep and an hourly housekeeping interval."""
    return settings.with_overrides(
        sla_sweep_interval_seconds=1,
        scheduler_lock_retry_seconds=1,
        scheduler_maintenance_interval_seconds=3600,
    )


@pytest.fixture
def run_process(rt: Runtime, quick: Settings) -> Iterator[Callable[[], Callable[[], None]]]:
    """Start SchedulerProcess.run in a thread; return a function that stops it."""
    stoppers: list[Callable[[], None]] = []

    def start() -> Callable[[], None]:
        mailer = Mailer(MemoryTransport(), "s@x.io")
        process = SchedulerProcess(quick, rt.policy, rt.db, mailer, runtime=rt)
        stop = threading.Event()
        thread = threading.Thread(target=process.run, args=(stop,), daemon=True)
        thread.start()
        wait_for(process.active.is_set, 15, "the scheduler to become active")

        def stopper() -> None:
            stop.set()
            thread.join(timeout=30)
            assert not thread.is_alive()

        stoppers.append(stopper)
        return stopper

    yield start
    for stopper in stoppers:
        stopper()


def test_active_process_runs_the_jobs_and_catches_up_after_downtime(
    world: World, rt: Runtime, run_process: Callable[[], Callable[[], None]]
) -> None:
    overdue = world.contact(datetime.now(UTC) - timedelta(hours=3))
    stop = run_process()
    wait_for(lambda: world.get(overdue).sla_state == "breached", 10, "the sweep")
    wait_for(lambda: {n.status for n in world.notifications(overdue)} == {"sent"}, 10, "delivery")
    wait_for(lambda: state(rt.db, "trial-expiry"), 10, "the housekeeping jobs' first run")
    wait_for(lambda: state(rt.db, "email-outbox"), 10, "the email outbox job's first run")
    stop()
    sweep = state(rt.db, SWEEP_JOB)
    # The one-second sweep may have run again (finding nothing) before the stop; what matters is
    # that the process's sweeps breached the contact exactly once.
    assert sweep is not None and sweep.runs >= 1 and "breaches" in sweep.last_result
    assert len(world.events(overdue, "sla_breached")) == 1
    heartbeat = state(rt.db, PROCESS_ROW)
    assert heartbeat is not None and heartbeat.holder is not None
    assert heartbeat.holder.endswith(f":{os.getpid()}")

    # While stopped, the hourly job's run time passes (as if the scheduler was down for a day).
    scheduler = _jobstore_scheduler(rt.db)
    scheduler.modify_job("trial-expiry", next_run_time=datetime.now(UTC) - timedelta(days=1))
    scheduler.shutdown(wait=False)
    runs_before = state(rt.db, "trial-expiry").runs  # type: ignore[union-attr]
    run_process()
    # Caught up at once, and once: 24 missed hourly runs coalesce into a single one.
    wait_for(
        lambda: state(rt.db, "trial-expiry").runs == runs_before + 1,  # type: ignore[union-attr]
        10,
        "the missed job to run on start-up",
    )
    time.sleep(1.5)
    assert state(rt.db, "trial-expiry").runs == runs_before + 1  # type: ignore[union-attr]


def test_scheduler_once_runs_every_job_and_refuses_while_another_is_active(
    app: Flask, world: World, rt: Runtime
) -> None:
    overdue = world.contact(datetime.now(UTC) - timedelta(hours=3))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["scheduler", "--once"])
    assert result.exit_code == 0, result.output
    assert '"breaches": 1' in result.output and '"expired": 0' in result.output
    assert world.get(overdue).sla_state == "breached"
    assert state(rt.db, SWEEP_JOB) is not None

    other = lock_for(rt.settings.database_url, rt.settings.scheduler_lock_key, holder="other:9")
    assert other.try_acquire()
    try:
        result = runner.invoke(args=["scheduler", "--once"])
    finally:
        other.release()
    assert result.exit_code == 1
    assert "another scheduler holds the" in result.output


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    flask = Path(sys.executable).with_name("flask")
    with log.open("wb") as output:
        return subprocess.Popen(
            [str(flask), "--app", "app", "scheduler"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def test_a_second_scheduler_idles_and_takes_over_when_the_first_is_killed(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "SLA_SWEEP_INTERVAL_SECONDS": "1",
        "SCHEDULER_STALE_AFTER_SECONDS": "5",
        "SCHEDULER_LOCK_RETRY_SECONDS": "1",
        "SCHEDULER_LOCK_KEY": str(settings.scheduler_lock_key),
        "MAIL_TRANSPORT": "console",
        "LOG_LEVEL": "INFO",
    }

    def holder(name: str) -> str:
        row = state(db, name)
        return (row.holder or "") if row is not None else ""

    # Both start together (`flask --app app scheduler`, as the Procfile's clock runs it); one wins.
    processes = {name: _start(env, tmp_path / f"{name}.log") for name in ("one", "other")}
    try:
        pids = {process.pid: name for name, process in processes.items()}
        winner = wait_for(
            lambda: pids.get(int(holder(PROCESS_ROW).rpartition(":")[2] or 0)),
            30,
            "one scheduler to become active",
        )
        active, standby = (
            processes[winner],
            processes[next(n for n in pids.values() if n != winner)],
        )
        standby_log = tmp_path / f"{pids[standby.pid]}.log"
        wait_for(lambda: holder(SWEEP_JOB).endswith(f":{active.pid}"), 10, "its first sweep")
        wait_for(lambda: b"on standby" in standby_log.read_bytes(), 30, "the standby")
        time.sleep(1.5)  # several lock retries and sweeps later, nothing has changed hands
        assert holder(PROCESS_ROW).endswith(f":{active.pid}")
        assert holder(SWEEP_JOB).endswith(f":{active.pid}")
        assert standby.poll() is None

        active.send_signal(signal.SIGKILL)
        active.wait(timeout=10)
        killed_at = time.monotonic()
        wait_for(lambda: holder(PROCESS_ROW).endswith(f":{standby.pid}"), 30, "the takeover")
        wait_for(lambda: holder(SWEEP_JOB).endswith(f":{standby.pid}"), 10, "its first sweep")
        assert time.monotonic() - killed_at < 60  # within a minute (about a second here)

        standby.send_signal(signal.SIGTERM)  # a graceful stop: jobs finish, the lock is freed
        assert standby.wait(timeout=30) == 0
        log = standby_log.read_text()
        assert "on standby" in log and "active (holds the" in log and "stopping" in log
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
