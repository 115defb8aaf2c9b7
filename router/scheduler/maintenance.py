"""Housekeeping the scheduler runs: trial expiry, PIN lock-out expiry, purges of old state."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from router.core.calendar import as_utc
from router.core.domain import Tier
from router.scheduler.state import rowcount
from router.services import audit, ratelimit
from router.services.console_sessions import FORGET_AFTER
from router.store.db import Database
from router.store.models import Account, ConsoleLoginLock, ConsoleSession, PinLockout
from router.store.models.email import WebhookReplayToken

log = logging.getLogger(__name__)

ACTOR = "scheduler"
# Rate-limit buckets untouched this long are full again for every limit the service sets (none
# refills over more than a day), so deleting them changes no decision.
RATE_LIMIT_IDLE = timedelta(days=2)


def expire_trials(db: Database, trial_days: int, now: datetime) -> list[str]:
    """Make trial accounts past ``trial_days`` free, each with an audit entry; return their ids."""
    now = as_utc(now, "now")
    cutoff = now - timedelta(days=trial_days)
    expired: list[str] = []
    with db.transaction() as session:
        candidates = session.execute(
            select(Account.id, Account.trial_started_at).where(
                Account.tier == Tier.TRIAL.value, Account.trial_started_at <= cutoff
            )
        ).all()
        for account_id, started in candidates:
            # Conditional, so a concurrent staff change of tier is never overwritten.
            changed = rowcount(
                session.execute(
                    update(Account)
                    .where(
                        Account.id == account_id,
                        Account.tier == Tier.TRIAL.value,
                        Account.trial_started_at <= cutoff,
                    )
                    .values(tier=Tier.FREE.value)
                    .execution_options(synchronize_session=False)
                )
            )
            if not changed:
                continue
            audit.record(
                session,
                actor=ACTOR,
                action="account.trial_expired",
                entity_type="account",
                entity_id=account_id,
                before={
                    "tier": Tier.TRIAL.value,
                    "trial_started_at": started.isoformat() if started else None,
                },
                after={"tier": Tier.FREE.value, "trial_days": trial_days},
                at=now,
            )
            expired.append(account_id)
    if expired:
        log.info("trial expiry: %d account(s) became free: %s", len(expired), ", ".join(expired))
    return expired


def expire_pin_lockouts(db: Database, now: datetime, window: timedelta) -> int:
    """Delete PIN lock-outs over for longer than the failure window; return how many."""
    # A lock-out that ended (or that staff lifted) less than `window` ago still marks which
    # failures no longer count; once it is older than the window, none of them count anyway.
    now = as_utc(now, "now")
    with db.transaction() as session:
        return rowcount(
            session.execute(
                delete(PinLockout)
                .where(PinLockout.locked_until <= now - window)
                .execution_options(synchronize_session=False)
            )
        )


def purge_replay_tokens(db: Database, now: datetime, freshness: timedelta) -> int:
    """Delete webhook replay tokens no replay could reuse any more; return how many."""
    # A request is fresh while its signed timestamp is within `freshness` of our clock, and a
    # token was stored when its request arrived, itself up to `freshness` off that timestamp: so
    # after twice the window no replay of it can pass the timestamp check.
    now = as_utc(now, "now")
    cutoff = now - 2 * freshness
    with db.transaction() as session:
        return rowcount(
            session.execute(
                delete(WebhookReplayToken)
                .where(WebhookReplayToken.seen_at < cutoff)
                .execution_options(synchronize_session=False)
            )
        )


def purge_rate_limit_buckets(db: Database, now: datetime) -> int:
    """Delete rate-limit buckets idle long enough to be full again; return how many."""
    now = as_utc(now, "now")
    with db.transaction() as session:
        return ratelimit.purge_idle(session, before=now - RATE_LIMIT_IDLE)


def purge_console_logins(db: Database, now: datetime, idle: timedelta) -> dict[str, int]:
    """Delete console sessions that ended and log-in failures a quiet day forgot."""
    now = as_utc(now, "now")
    with db.transaction() as session:
        sessions = rowcount(
            session.execute(
                delete(ConsoleSession)
                .where(
                    (ConsoleSession.expires_at <= now)
                    | (ConsoleSession.revoked_at.is_not(None))
                    | (ConsoleSession.last_seen_at <= now - idle)
                )
                .execution_options(synchronize_session=False)
            )
        )
        # The log-in service forgets a run of failures (and a lock-out's back-off) after a quiet
        # day; rows that old decide nothing any more.
        locks = rowcount(
            session.execute(
                delete(ConsoleLoginLock)
                .where(
                    ConsoleLoginLock.last_failure_at <= now - FORGET_AFTER,
                    (ConsoleLoginLock.locked_until.is_(None))
                    | (ConsoleLoginLock.locked_until <= now - FORGET_AFTER),
                )
                .execution_options(synchronize_session=False)
            )
        )
    return {"sessions": sessions, "login_locks": locks}
