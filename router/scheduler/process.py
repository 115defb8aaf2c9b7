"""The scheduler process: wait for the lock, then run the jobs with APScheduler until told to stop.

Exactly one process is active. The others idle on the lock and retry every
SCHEDULER_LOCK_RETRY_SECONDS; the active one checks every few seconds that it still holds it and
stops scheduling the moment it does not (e.g. its database session died), then waits again.

Jobs live in APScheduler's SQLAlchemy job store in the application database under fixed ids,
with ``coalesce`` (missed runs collapse into one), ``max_instances=1`` (a slow run is never
overlapped by the next) and no misfire limit: after downtime, each job whose stored next run
time has passed runs once as soon as a scheduler becomes active, and the sweep's own queries
catch up everything that fell due meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED

from config.policy import Policy
from config.settings import Settings
from router.mailer import Mailer
from router.runtime import Runtime
from router.scheduler import jobs
from router.scheduler.lock import SchedulerLock, lock_for
from router.scheduler.state import holder_name, record_heartbeat
from router.services.notify import HttpWebhookPoster, Notifier, WebhookPoster
from router.services.sla_monitor import SlaMonitor
from router.store.db import Database

log = logging.getLogger(__name__)

JOBSTORE_TABLE = "apscheduler_jobs"
JOB_DEFAULTS: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
# How often the active process checks its lock and writes its heartbeat, at most.
MAX_CHECK_SECONDS = 5.0


class JobScheduler(BackgroundScheduler):  # type: ignore[misc]
    """APScheduler's background scheduler, minus one job-processing round after shutdown."""

    def _process_jobs(self) -> float | None:
        # APScheduler 3 wakes its thread on shutdown and processes due jobs once more with the
        # executors already closed: those runs fail and their next run time moves on, i.e. a
        # run due at that moment (or awaiting catch-up) would be skipped. Stopped means stopped.
        if self.state == STATE_STOPPED:
            return None
        result: float | None = super()._process_jobs()
        return result


class SchedulerProcess:
    """One scheduler process: standby until it holds the lock, then active."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        db: Database,
        mailer: Mailer,
        *,
        webhooks: WebhookPoster | None = None,
        lock: SchedulerLock | None = None,
        clock: Callable[[], datetime] | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.holder = holder_name()
        self.lock = lock or lock_for(
            settings.database_url, settings.scheduler_lock_key, holder=self.holder
        )
        self.clock = clock or (lambda: datetime.now(UTC))
        self.context = jobs.JobContext(
            settings=settings,
            policy=policy,
            db=db,
            monitor=SlaMonitor(db, policy, batch_size=settings.sla_sweep_batch_size),
            notifier=Notifier(
                db,
                mailer,
                webhooks or HttpWebhookPoster(timeout=settings.notify_webhook_timeout_seconds),
                webhook_secret=settings.notify_webhook_secret,
                max_attempts=settings.notify_max_attempts,
            ),
            holder=self.holder,
            clock=self.clock,
            runtime=runtime,
        )
        self.active = threading.Event()  # set while this process is the active scheduler
        if not log.isEnabledFor(logging.DEBUG):
            # Every run is recorded in scheduler_state; a log line per run is noise at INFO.
            logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)

    @property
    def retry_seconds(self) -> float:
        """Return how long a standby waits between attempts to take the lock."""
        return float(self.settings.scheduler_lock_retry_seconds)

    def run(self, stop: threading.Event) -> None:
        """Alternate between standby and active until ``stop`` is set; release everything."""
        announced_standby = False
        try:
            while not stop.is_set():
                if not self.lock.try_acquire():
                    if not announced_standby:
                        log.info(
                            "scheduler %s on standby: another process holds the %s; "
                            "retrying every %ss",
                            self.holder,
                            self.lock.description,
                            self.settings.scheduler_lock_retry_seconds,
                        )
                        announced_standby = True
                    stop.wait(self.retry_seconds)
                    continue
                announced_standby = False
                log.info("scheduler %s active (holds the %s)", self.holder, self.lock.description)
                try:
                    self._run_active(stop)
                finally:
                    self.lock.release()
                    self.active.clear()
        finally:
            self.lock.release()

    def run_once(self) -> dict[str, dict[str, Any]]:
        """Take the lock, run every job once, release it; raise if another process is active."""
        if not self.lock.try_acquire():
            raise LockBusy(f"another scheduler holds the {self.lock.description}")
        try:
            jobs.install(self.context)
            return jobs.run_all_once()
        finally:
            jobs.install(None)
            self.lock.release()

    def _run_active(self, stop: threading.Event) -> None:
        """Run the jobs until ``stop`` is set or the lock is lost."""
        store = SQLAlchemyJobStore(engine=self.db.engine, tablename=JOBSTORE_TABLE)
        scheduler = JobScheduler(
            jobstores={"default": store},
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults=JOB_DEFAULTS,
            timezone=UTC,
        )

        def wake_delivery() -> None:
            try:
                scheduler.modify_job(jobs.DELIVERY_JOB, next_run_time=datetime.now(UTC))
            except Exception:  # the job is missing or the scheduler is stopping: next round
                log.debug("could not wake the delivery job", exc_info=True)

        self.context.wake_delivery = wake_delivery
        jobs.install(self.context)
        scheduler.start(paused=True)
        try:
            reconcile_jobs(scheduler, jobs.specs(self.settings), datetime.now(UTC))
            scheduler.resume()
            self.active.set()
            active_since = self.clock()
            check = min(self.retry_seconds, MAX_CHECK_SECONDS)
            while True:
                self._heartbeat(active_since)
                if stop.wait(check):
                    log.info("scheduler %s stopping", self.holder)
                    return
                if not self.lock.still_held():
                    log.error("scheduler %s lost its lock; stopping its jobs", self.holder)
                    return
        finally:
            self.active.clear()
            # Running jobs finish (their writes are conditional, so a takeover meanwhile is safe).
            scheduler.shutdown(wait=True)
            jobs.install(None)
            self.context.wake_delivery = None

    def _heartbeat(self, active_since: datetime) -> None:
        try:
            record_heartbeat(
                self.db, now=self.clock(), active_since=active_since, holder=self.holder
            )
        except Exception as exc:  # the database may be briefly away; jobs will fail and retry too
            log.warning("scheduler heartbeat not recorded: %s", type(exc).__name__)


class LockBusy(RuntimeError):
    """Another scheduler process is active."""


def reconcile_jobs(
    scheduler: BackgroundScheduler, wanted: tuple[jobs.JobSpec, ...], now: datetime
) -> None:
    """Make the job store hold exactly ``wanted``, keeping stored run times that are unchanged."""
    wanted_ids = {spec.id for spec in wanted}
    for job in scheduler.get_jobs():
        if job.id not in wanted_ids:
            log.info("removing obsolete scheduler job %s", job.id)
            scheduler.remove_job(job.id)
    for spec in wanted:
        interval = timedelta(seconds=spec.seconds)
        job = scheduler.get_job(spec.id)
        if job is not None and _unchanged(job, spec, interval):
            # Its stored next run time stands: if it passed while no scheduler was active, the
            # job runs once now (coalesced), which is the catch-up after downtime.
            continue
        if job is None:
            first_run = now  # a new job runs at once
        else:
            stored = job.next_run_time
            first_run = min(stored, now + interval) if stored is not None else now
        scheduler.add_job(
            spec.func,
            trigger="interval",
            seconds=spec.seconds,
            id=spec.id,
            name=spec.name,
            replace_existing=True,
            next_run_time=first_run,
            **JOB_DEFAULTS,
        )


def _unchanged(job: Any, spec: jobs.JobSpec, interval: timedelta) -> bool:
    trigger = job.trigger
    return bool(
        job.func_ref == spec.func
        and getattr(trigger, "interval", None) == interval
        and job.coalesce is JOB_DEFAULTS["coalesce"]
        and job.max_instances == JOB_DEFAULTS["max_instances"]
        and job.misfire_grace_time == JOB_DEFAULTS["misfire_grace_time"]
        and job.next_run_time is not None
    )
