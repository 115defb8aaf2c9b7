"""Console log-ins: lock-outs after failed passwords, per-address throttling, and sessions."""

from __future__ import annotations

import ipaddress
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from config.settings import Settings
from router.core.domain import StaffRole
from router.core.validation import normalise_email
from router.services import audit, ratelimit
from router.services.logins import StaffIdentity, token_digest
from router.services.ratelimit import RateLimit
from router.store.db import Database
from router.store.models import ConsoleLoginLock, ConsoleSession, StaffUser

# A quiet day forgets a run of failed log-ins, and a day past its end a lock-out's back-off.
FORGET_AFTER = timedelta(days=1)
# A session's last-seen time is written at most this often (one indexed read per request else).
TOUCH_EVERY = timedelta(minutes=1)
SESSION_TOKEN_BYTES = 32
_IP_BUCKET = "console-login:ip:"


@dataclass(frozen=True)
class LoginLimits:
    """How many failed log-ins are allowed, and how long console sessions last."""

    lockout_failures: int = 5
    lockout_seconds: int = 300
    lockout_max_seconds: int = 3600
    ip_failures: int = 20
    ip_window_seconds: int = 600
    session_idle: timedelta = timedelta(minutes=120)
    session_max: timedelta = timedelta(hours=12)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimits:
        """Return the limits the settings configure."""
        return cls(
            lockout_failures=settings.console_login_lockout_failures,
            lockout_seconds=settings.console_login_lockout_seconds,
            lockout_max_seconds=settings.console_login_lockout_max_seconds,
            ip_failures=settings.console_login_ip_failures,
            ip_window_seconds=settings.console_login_ip_window_seconds,
            session_idle=timedelta(minutes=settings.console_session_idle_minutes),
            session_max=timedelta(hours=settings.console_session_max_hours),
        )

    @property
    def per_address(self) -> RateLimit:
        """Return the allowance of failed log-ins from one client address."""
        return RateLimit.per_window(self.ip_failures, self.ip_window_seconds)


@dataclass(frozen=True)
class LoginRefusal:
    """Why a log-in attempt was refused without checking the password, and until when."""

    reason: str  # "throttled": too many failures from the address; "locked": the email is
    retry_at: datetime

    def retry_after_seconds(self, now: datetime) -> int:
        """Return the whole seconds until an attempt may succeed (at least 1)."""
        return max(1, math.ceil((self.retry_at - now).total_seconds()))


def lockout_length(lockouts: int, limits: LoginLimits) -> timedelta:
    """Return how long the ``lockouts``-th lock-out in a row lasts: doubling, up to the maximum."""
    seconds = limits.lockout_seconds * 2 ** min(max(lockouts, 1) - 1, 40)
    return timedelta(seconds=min(seconds, limits.lockout_max_seconds))


def address_bucket(ip: str) -> str:
    """Return the rate-limit bucket of a client address (an IPv6 client owns a whole /64)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return _IP_BUCKET + "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _IP_BUCKET + str(address.ipv4_mapped)
        return _IP_BUCKET + str(ipaddress.ip_network(f"{address}/64", strict=False))
    return _IP_BUCKET + str(address)


# The longest address SMTP carries (RFC 5321 4.5.3.1.3: 256 with its angle brackets); the audit
# log and the lock-out table name the address, so longer input is no one's and stored nowhere.
_LOGIN_EMAIL_MAX = 254


def login_email(raw: str) -> str | None:
    """Return the address a log-in names, or None when it cannot be any staff user's."""
    if len(raw) > _LOGIN_EMAIL_MAX or any(ord(char) < 32 or ord(char) == 127 for char in raw):
        return None  # PostgreSQL text refuses NUL; no address holds a control character
    try:
        return normalise_email(raw)
    except ValueError:
        return None


def check_login_allowed(
    db: Database, email: str | None, ip: str, limits: LoginLimits, now: datetime
) -> LoginRefusal | None:
    """Take an attempt from the client's allowance; refuse if it is spent or ``email`` locked."""
    # Called before any password is checked, so a refusal says nothing about the password.
    with db.transaction() as session:
        decision = ratelimit.take(session, address_bucket(ip), limits.per_address, now=now)
        if not decision.allowed:
            wait = timedelta(seconds=math.ceil(decision.retry_after_seconds))
            return LoginRefusal("throttled", now + wait)
        if email is not None:
            until = session.scalar(
                select(ConsoleLoginLock.locked_until).where(ConsoleLoginLock.email == email)
            )
            if until is not None and until > now:
                return LoginRefusal("locked", until)
    return None


def record_login_failure(
    db: Database, email: str | None, ip: str, limits: LoginLimits, now: datetime
) -> LoginRefusal | None:
    """Count a failed log-in for ``email``; return the lock-out if this one started it."""
    # Addresses no staff user has are counted alike, so no answer tells them apart.
    if email is None:
        return None
    forget = now - FORGET_AFTER
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    with db.transaction() as session:
        # Insert first, then lock the row: concurrent failures from other processes serialise
        # here (PostgreSQL row lock; SQLite's single writer), so none is lost.
        # An upsert, not "do nothing": it locks an existing row at once, so a concurrent delete
        # (a log-in's clean-up, the purge) cannot remove it before the select below.
        statement = insert(ConsoleLoginLock).values(
            email=email, failures=0, lockouts=0, locked_until=None, last_failure_at=now
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["email"], set_={"email": statement.excluded.email}
            )
        )
        lock = session.scalars(
            select(ConsoleLoginLock).where(ConsoleLoginLock.email == email).with_for_update()
        ).one()
        if lock.last_failure_at < forget:
            lock.failures = 0
        if lock.locked_until is not None and lock.locked_until < forget:
            lock.lockouts = 0
        lock.failures += 1
        lock.last_failure_at = now
        audit.record(
            session,
            actor="anonymous",
            action="login.failed",
            entity_type="staff_user",
            entity_id=email,
            after={"ip": ip, "failures": lock.failures},
            at=now,
        )
        refusal = None
        already_locked = lock.locked_until is not None and lock.locked_until > now
        if lock.failures >= limits.lockout_failures and not already_locked:
            lock.lockouts += 1
            lock.failures = 0
            lock.locked_until = now + lockout_length(lock.lockouts, limits)
            audit.record(
                session,
                actor="anonymous",
                action="login.locked",
                entity_type="staff_user",
                entity_id=email,
                after={
                    "ip": ip,
                    "locked_until": lock.locked_until.isoformat(),
                    "in_a_row": lock.lockouts,
                },
                at=now,
            )
            refusal = LoginRefusal("locked", lock.locked_until)
        # Forgotten runs of failures (mostly addresses no staff user has) are dropped here,
        # where they are made, so the table stays as small as the attempts of the last day.
        session.execute(
            delete(ConsoleLoginLock).where(
                ConsoleLoginLock.last_failure_at < forget,
                or_(
                    ConsoleLoginLock.locked_until.is_(None), ConsoleLoginLock.locked_until < forget
                ),
            )
        )
        return refusal


def start_session(
    db: Database, identity: StaffIdentity, ip: str, limits: LoginLimits, now: datetime
) -> str:
    """Record a successful log-in and open a console session; return its token (for the cookie)."""
    # The attempt taken from the client's allowance is given back: only failures count there.
    token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
    with db.transaction() as session:
        ratelimit.give_back(session, address_bucket(ip), limits.per_address)
        session.execute(delete(ConsoleLoginLock).where(ConsoleLoginLock.email == identity.email))
        # The user's ended sessions are dropped when they start a new one.
        session.execute(
            delete(ConsoleSession).where(
                ConsoleSession.staff_user_id == identity.id,
                or_(
                    ConsoleSession.revoked_at.is_not(None),
                    ConsoleSession.expires_at <= now,
                    ConsoleSession.last_seen_at <= now - limits.session_idle,
                ),
            )
        )
        session.add(
            ConsoleSession(
                token_hash=token_digest(token),
                staff_user_id=identity.id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + limits.session_max,
                ip=ip[:64],
            )
        )
        audit.record(
            session,
            actor=identity.email,
            action="login.succeeded",
            entity_type="staff_user",
            entity_id=identity.email,
            after={"ip": ip},
            at=now,
        )
    return token


def session_identity(
    db: Database, token: str, limits: LoginLimits, now: datetime
) -> StaffIdentity | None:
    """Return who a live console session belongs to (None: unknown, revoked, expired, inactive)."""
    # One indexed read per request; last_seen_at is written at most once a minute.
    with db.session() as session:
        row = session.execute(
            select(
                ConsoleSession.id,
                ConsoleSession.last_seen_at,
                ConsoleSession.expires_at,
                ConsoleSession.revoked_at,
                StaffUser.id.label("staff_id"),
                StaffUser.email,
                StaffUser.role,
                StaffUser.active,
            )
            .join(StaffUser, ConsoleSession.staff_user_id == StaffUser.id)
            .where(ConsoleSession.token_hash == token_digest(token))
        ).first()
    if (
        row is None
        or row.revoked_at is not None
        or not row.active
        or row.expires_at <= now
        or row.last_seen_at + limits.session_idle <= now
    ):
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        with db.transaction() as session:
            session.execute(
                update(ConsoleSession)
                .where(ConsoleSession.id == row.id, ConsoleSession.last_seen_at < now)
                .values(last_seen_at=now)
            )
    return StaffIdentity(id=row.staff_id, email=row.email, role=StaffRole(row.role))


def end_session(db: Database, token: str, now: datetime) -> None:
    """Revoke a console session (log-out): its cookie opens nothing afterwards."""
    with db.transaction() as session:
        row = session.execute(
            select(ConsoleSession, StaffUser.email)
            .join(StaffUser, ConsoleSession.staff_user_id == StaffUser.id)
            .where(ConsoleSession.token_hash == token_digest(token))
        ).first()
        if row is None or row[0].revoked_at is not None:
            return
        row[0].revoked_at = now
        audit.record(
            session,
            actor=row.email,
            action="login.logged_out",
            entity_type="staff_user",
            entity_id=row.email,
            at=now,
        )


def revoke_sessions(session: Session, staff_user_id: int, now: datetime) -> int:
    """Revoke every open console session of a staff user (in the caller's transaction)."""
    result = session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.staff_user_id == staff_user_id, ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
