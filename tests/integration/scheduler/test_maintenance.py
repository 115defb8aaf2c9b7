"""Housekeeping: trial expiry with an audit entry, PIN lock-out expiry, replay-token and rate-limit purges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from config.policy import Policy
from router.scheduler.maintenance import (
    expire_pin_lockouts,
    expire_trials,
    purge_console_logins,
    purge_rate_limit_buckets,
    purge_replay_tokens,
)
from router.services import ratelimit
from router.services.ratelimit import RateLimit
from router.store.db import Database
from router.store.models import (
    Account,
    AuditEntry,
    ConsoleLoginLock,
    ConsoleSession,
    PinLockout,
    StaffUser,
)
from router.store.models.email import WebhookReplayToken

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def _account(account_id: str, tier: str, trial_started_at: datetime | None) -> Account:
    return Account(
        id=account_id,
        name=account_id.title(),
        tier=tier,
        trial_started_at=trial_started_at,
        region="gb",
        country="GB",
        timezone="Europe/London",
        attributes={},
    )


def test_trials_past_their_days_become_free_once_with_an_audit_entry(
    db: Database, policy: Policy
) -> None:
    assert policy.trial_days == 30
    with db.transaction() as session:
        session.add_all(
            [
                _account("expired", "trial", NOW - timedelta(days=45)),
                _account("boundary", "trial", NOW - timedelta(days=30)),  # exactly 30 x 24 h
                _account("running", "trial", NOW - timedelta(days=30) + timedelta(seconds=1)),
                _account("unknown-start", "trial", None),
                _account("paying", "standard", NOW - timedelta(days=400)),
            ]
        )
    assert sorted(expire_trials(db, policy.trial_days, NOW)) == ["boundary", "expired"]
    assert expire_trials(db, policy.trial_days, NOW) == []  # once
    with db.session() as session:
        tiers = dict(session.execute(select(Account.id, Account.tier)).all())
        entries = list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "account.trial_expired"))
        )
    assert tiers == {
        "expired": "free",
        "boundary": "free",
        "running": "trial",
        "unknown-start": "trial",
        "paying": "standard",
    }
    assert sorted(entry.entity_id for entry in entries) == ["boundary", "expired"]
    entry = next(e for e in entries if e.entity_id == "expired")
    assert (entry.actor, entry.entity_type, entry.at) == ("scheduler", "account", NOW)
    assert entry.before == {
        "tier": "trial",
        "trial_started_at": (NOW - timedelta(days=45)).isoformat(),
    }
    assert entry.after == {"tier": "free", "trial_days": 30}


def test_expired_pin_lockouts_are_removed(db: Database) -> None:
    window = timedelta(hours=1)
    with db.transaction() as session:
        session.add_all(
            [
                PinLockout(calling_number="+15555550100", locked_until=NOW - window, failures=10),
                # Lifted by staff a minute ago: kept, so earlier failures stay uncounted.
                PinLockout(
                    calling_number="+15555550102",
                    locked_until=NOW - timedelta(minutes=1),
                    failures=10,
                ),
                PinLockout(
                    calling_number="+15555550101",
                    locked_until=NOW + timedelta(minutes=1),
                    failures=12,
                ),
            ]
        )
    assert expire_pin_lockouts(db, NOW, window) == 1
    assert expire_pin_lockouts(db, NOW, window) == 0
    with db.session() as session:
        assert sorted(session.scalars(select(PinLockout.calling_number))) == [
            "+15555550101",
            "+15555550102",
        ]


def test_replay_tokens_are_purged_once_no_replay_could_pass(db: Database) -> None:
    window = timedelta(minutes=5)
    with db.transaction() as session:
        for token, age in (("old", 11), ("edge", 10), ("recent", 9), ("fresh", 1)):
            session.add(
                WebhookReplayToken(
                    provider="mailgun", token=token, seen_at=NOW - timedelta(minutes=age)
                )
            )
    # Kept for twice the freshness window (see purge_replay_tokens).
    assert purge_replay_tokens(db, NOW, window) == 1
    with db.session() as session:
        assert sorted(session.scalars(select(WebhookReplayToken.token))) == [
            "edge",
            "fresh",
            "recent",
        ]


def test_idle_rate_limit_buckets_are_purged_and_busy_ones_kept(db: Database) -> None:
    limit = RateLimit.per_window(1, 3600)
    with db.transaction() as session:
        ratelimit.take(session, "idle", limit, now=NOW - timedelta(days=3))
        ratelimit.take(session, "busy", limit, now=NOW - timedelta(minutes=1))
    assert purge_rate_limit_buckets(db, NOW) == 1
    with db.transaction() as session:
        # The busy bucket kept its spent token; the idle one starts full.
        assert not ratelimit.take(session, "busy", limit, now=NOW).allowed
        assert ratelimit.take(session, "idle", limit, now=NOW).allowed


def test_ended_console_sessions_and_forgotten_login_failures_are_purged(db: Database) -> None:
    idle = timedelta(hours=2)
    with db.transaction() as session:
        user = StaffUser(email="sam@support.example", name="Sam", role="viewer", active=True)
        session.add(user)
        session.flush()
        opened = NOW - timedelta(hours=3)

        def console_session(token: str, **fields: object) -> ConsoleSession:
            values: dict[str, object] = {
                "token_hash": token,
                "staff_user_id": user.id,
                "created_at": opened,
                "last_seen_at": NOW - timedelta(minutes=5),
                "expires_at": NOW + timedelta(hours=9),
                "revoked_at": None,
            }
            values.update(fields)
            return ConsoleSession(**values)

        session.add_all(
            [
                console_session("live"),
                console_session("expired", expires_at=NOW - timedelta(seconds=1)),
                console_session("revoked", revoked_at=NOW - timedelta(minutes=1)),
                console_session("idle", last_seen_at=NOW - idle),
            ]
        )
        session.add_all(
            [
                ConsoleLoginLock(
                    email="recent@x.example",
                    failures=2,
                    lockouts=0,
                    locked_until=None,
                    last_failure_at=NOW - timedelta(hours=1),
                ),
                ConsoleLoginLock(
                    email="quiet@x.example",
                    failures=2,
                    lockouts=1,
                    locked_until=NOW - timedelta(days=2),
                    last_failure_at=NOW - timedelta(days=2),
                ),
            ]
        )
    assert purge_console_logins(db, NOW, idle) == {"sessions": 3, "login_locks": 1}
    with db.session() as session:
        assert list(session.scalars(select(ConsoleSession.token_hash))) == ["live"]
        assert list(session.scalars(select(ConsoleLoginLock.email))) == ["recent@x.example"]
