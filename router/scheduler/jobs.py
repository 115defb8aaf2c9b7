"""The scheduler's jobs: fixed ids, module-level functions APScheduler stores by reference.

APScheduler keeps jobs in the application database as ``module:function`` references, so the
functions here take no arguments and reach their collaborators through the context the active
scheduler process installs. Each run is recorded in ``scheduler_state`` (the heartbeat /readyz
and /metrics read); an error is recorded and logged, and the next run tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from config.policy import Policy
from config.settings import Settings
from router.scheduler import maintenance
from router.scheduler.state import SWEEP_JOB, holder_name, record_run
from router.services import dispatch, reservations
from router.services.notify import Notifier
from router.services.outbox import retry_email_outbox
from router.services.sla_monitor import SlaMonitor
from router.store.db import Database

if TYPE_CHECKING:
    from router.runtime import Runtime

log = logging.getLogger(__name__)

DELIVERY_JOB = "deliver-notifications"
TRIAL_JOB = "trial-expiry"
PIN_LOCKOUT_JOB = "pin-lockout-expiry"
REPLAY_JOB = "replay-token-purge"
LOGIN_STATE_JOB = "login-state-purge"
EMAIL_OUTBOX_JOB = "email-outbox"
DISPATCH_JOB = "dispatch-offers"
# Offers time out in 20 s at the shortest: expiring them every 2 s keeps a missed one short.
DISPATCH_INTERVAL_SECONDS = 2
# Offers one dispatch run makes at most; the next run, 2 s later, goes on.
DISPATCH_MAX_OFFERS = 200


@dataclass
class JobContext:
    """What the jobs work with; installed once by the active scheduler process."""

    settings: Settings
    policy: Policy
    db: Database
    monitor: SlaMonitor
    notifier: Notifier
    holder: str = field(default_factory=holder_name)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Called after a sweep queued notifications, to deliver them now rather than next round.
    wake_delivery: Callable[[], None] | None = None
    # The app's runtime, for jobs that need the app's settings and store (the email outbox).
    runtime: Runtime | None = None


_context: JobContext | None = None
_context_lock = threading.Lock()


def install(context: JobContext | None) -> None:
    """Make ``context`` the one the jobs use (None: uninstall)."""
    global _context
    with _context_lock:
        _context = context


def context() -> JobContext:
    """Return the installed context, or raise if no scheduler process installed one."""
    found = _context
    if found is None:
        raise RuntimeError("no scheduler context installed: run `flask --app app scheduler`")
    return found


@dataclass(frozen=True)
class JobSpec:
    """A job the scheduler keeps in its job store under a fixed id."""

    id: str
    func: str  # module:function, as APScheduler stores it
    seconds: int
    name: str


def specs(settings: Settings) -> tuple[JobSpec, ...]:
    """Return every job with its interval from the settings."""
    sweep = settings.sla_sweep_interval_seconds
    housekeeping = settings.scheduler_maintenance_interval_seconds
    return (
        JobSpec(SWEEP_JOB, f"{__name__}:sla_sweep", sweep, "SLA warnings and breaches"),
        JobSpec(DELIVERY_JOB, f"{__name__}:deliver_notifications", sweep, "Notifications"),
        JobSpec(TRIAL_JOB, f"{__name__}:trial_expiry", housekeeping, "Trial expiry"),
        JobSpec(PIN_LOCKOUT_JOB, f"{__name__}:pin_lockout_expiry", housekeeping, "PIN lock-outs"),
        JobSpec(REPLAY_JOB, f"{__name__}:replay_token_purge", housekeeping, "Replay tokens"),
        JobSpec(LOGIN_STATE_JOB, f"{__name__}:login_state_purge", housekeeping, "Log-in state"),
        JobSpec(EMAIL_OUTBOX_JOB, f"{__name__}:email_outbox_retry", sweep, "Email replies"),
        JobSpec(DISPATCH_JOB, f"{__name__}:dispatch_offers", DISPATCH_INTERVAL_SECONDS, "Offers"),
    )


def _run(name: str, work: Callable[[JobContext, datetime], dict[str, Any]]) -> dict[str, Any]:
    """Run one job at the context's clock, record the outcome, and re-raise failures."""
    ctx = context()
    started = ctx.clock()
    began = time.monotonic()
    try:
        result = work(ctx, started)
    except Exception as exc:
        finished = started + timedelta(seconds=time.monotonic() - began)
        log.exception("scheduler job %s failed", name)
        try:
            record_run(
                ctx.db,
                name,
                started_at=started,
                finished_at=finished,
                error=f"{type(exc).__name__}: {exc}",
                holder=ctx.holder,
            )
        except Exception:
            log.exception("scheduler job %s: could not record its failure", name)
        raise
    finished = started + timedelta(seconds=time.monotonic() - began)
    record_run(
        ctx.db, name, started_at=started, finished_at=finished, result=result, holder=ctx.holder
    )
    return result


def sla_sweep() -> dict[str, Any]:
    """Record due SLA warnings and breaches, escalate, and queue notifications."""

    def work(ctx: JobContext, now: datetime) -> dict[str, Any]:
        result = ctx.monitor.sweep(now)
        if result.notifications and ctx.wake_delivery is not None:
            ctx.wake_delivery()
        return result.to_dict()

    return _run(SWEEP_JOB, work)


def deliver_notifications() -> dict[str, Any]:
    """Send due notifications (and retries) from the outbox."""
    return _run(DELIVERY_JOB, lambda ctx, now: ctx.notifier.deliver_due(now).to_dict())


def trial_expiry() -> dict[str, Any]:
    """Make trial accounts past the trial length free."""

    def work(ctx: JobContext, now: datetime) -> dict[str, Any]:
        expired = maintenance.expire_trials(ctx.db, ctx.policy.trial_days, now)
        return {"expired": len(expired), "accounts": expired[:50]}

    return _run(TRIAL_JOB, work)


def pin_lockout_expiry() -> dict[str, Any]:
    """Remove PIN lock-outs that have run out."""
    return _run(
        PIN_LOCKOUT_JOB,
        lambda ctx, now: {
            "removed": maintenance.expire_pin_lockouts(
                ctx.db, now, timedelta(seconds=ctx.settings.pin_lockout_window_seconds)
            )
        },
    )


def replay_token_purge() -> dict[str, Any]:
    """Remove webhook replay tokens older than the freshness window allows to be replayed."""

    def work(ctx: JobContext, now: datetime) -> dict[str, Any]:
        window = timedelta(seconds=ctx.settings.email_webhook_max_age_seconds)
        return {"removed": maintenance.purge_replay_tokens(ctx.db, now, window)}

    return _run(REPLAY_JOB, work)


def login_state_purge() -> dict[str, Any]:
    """Remove rate-limit buckets full again, ended console sessions and forgotten failures."""

    def work(ctx: JobContext, now: datetime) -> dict[str, Any]:
        idle = timedelta(minutes=ctx.settings.console_session_idle_minutes)
        return {
            "rate_limit_buckets": maintenance.purge_rate_limit_buckets(ctx.db, now),
            **maintenance.purge_console_logins(ctx.db, now, idle),
        }

    return _run(LOGIN_STATE_JOB, work)


def email_outbox_retry() -> dict[str, Any]:
    """Retry the email channel's replies (acknowledgements) whose next attempt is due."""

    def work(ctx: JobContext, now: datetime) -> dict[str, Any]:
        if ctx.runtime is None:
            return {"skipped": "no application runtime"}
        summary = retry_email_outbox(ctx.runtime)
        return {"attempted": summary.attempted, "sent": summary.sent, "failed": summary.failed}

    return _run(EMAIL_OUTBOX_JOB, work)


def dispatch_offers() -> dict[str, Any]:
    """Expire offers past their time, then offer waiting contacts to free agents."""

    def work(ctx: JobContext, now: datetime) -> dict[str, Any]:
        expired = reservations.expire_due(ctx.db, ctx.settings, now)
        offered = dispatch.dispatch_free_agents(
            ctx.db, ctx.settings, now, max_offers=DISPATCH_MAX_OFFERS
        )
        return {"expired": expired, "offered": offered}

    return _run(DISPATCH_JOB, work)


def run_all_once() -> dict[str, dict[str, Any]]:
    """Run every job once, in order (``scheduler --once``); a failure does not stop the rest."""
    results: dict[str, dict[str, Any]] = {}
    for job in (
        sla_sweep,
        deliver_notifications,
        trial_expiry,
        pin_lockout_expiry,
        replay_token_purge,
        login_state_purge,
        email_outbox_retry,
        dispatch_offers,
    ):
        results[job.__name__] = _safely(job)
    return results


def _safely(job: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return job()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
