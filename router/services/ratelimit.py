"""Token buckets in the database, so every web process draws from the same allowance.

Why not flask-limiter: its storages are process memory, Redis, Memcached or MongoDB, and this
service's only shared store is its SQL database (production runs many web processes and needs no
Redis). A bucket is one row; one conditional ``UPDATE`` refills it for the time elapsed and takes a
token, so concurrent takers serialise on the row (PostgreSQL re-checks the condition after
waiting for the row lock; SQLite has one writer at a time) and the allowance is never exceeded.
A refused attempt costs nothing and waits nowhere: callers answer at once (a 429, or TwiML that
pauses at Twilio), never by sleeping in a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, case, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from router.store.models import RateLimitBucket


@dataclass(frozen=True)
class RateLimit:
    """An allowance: ``burst`` attempts at once, refilled at ``per_second``."""

    per_second: float
    burst: float

    @classmethod
    def per_window(cls, attempts: int, window_seconds: float) -> RateLimit:
        """Return the limit that allows ``attempts`` per ``window_seconds`` (burst included)."""
        return cls(per_second=attempts / window_seconds, burst=float(attempts))


@dataclass(frozen=True)
class RateDecision:
    """Whether an attempt may go ahead, and if not, how long until one may."""

    allowed: bool
    retry_after_seconds: float = 0.0


# The refill expression, written once: tokens plus the time elapsed times the rate, capped at the
# burst; a clock that stepped backwards (another process's) refills nothing.
_AVAILABLE = (
    "CASE WHEN tokens + (CASE WHEN :now > refilled_at THEN (:now - refilled_at) * :rate ELSE 0 END)"
    " > :burst THEN :burst"
    " ELSE tokens + (CASE WHEN :now > refilled_at THEN (:now - refilled_at) * :rate ELSE 0 END) END"
)
_BUCKET = select(RateLimitBucket.tokens, RateLimitBucket.refilled_at).where(
    RateLimitBucket.key == bindparam("key")
)
_TAKE = text(
    f"UPDATE rate_limit_buckets SET tokens = {_AVAILABLE} - :cost,"
    " refilled_at = CASE WHEN :now > refilled_at THEN :now ELSE refilled_at END"
    f" WHERE key = :key AND {_AVAILABLE} >= :cost"
)


def take(
    db: Session | Connection,
    key: str,
    limit: RateLimit,
    *,
    now: datetime,
    cost: float = 1.0,
) -> RateDecision:
    """Take ``cost`` tokens from the bucket ``key`` if it holds them; create it full if new."""
    if limit.per_second <= 0 or limit.burst <= 0:
        raise ValueError("a rate limit needs a positive rate and burst")
    clock = now.timestamp()
    params = {
        "key": key,
        "now": clock,
        "rate": float(limit.per_second),
        "burst": float(limit.burst),
        "cost": float(cost),
    }
    # The bucket usually exists, so taking is tried first: one statement on the hot path (a
    # PIN check, a log-in). Twice at most: a new bucket (or one the purge removed as idle, so
    # full) is created full, and the second take then finds it.
    for _ in range(2):
        if getattr(db.execute(_TAKE, params), "rowcount", 0) == 1:
            return RateDecision(allowed=True)
        row = db.execute(_BUCKET, {"key": key}).one_or_none()
        if row is not None:
            available = min(
                limit.burst, row.tokens + max(0.0, clock - row.refilled_at) * limit.per_second
            )
            wait = max(0.0, (cost - available) / limit.per_second)
            return RateDecision(allowed=False, retry_after_seconds=wait)
        _create_full(db, key, limit, clock)
    raise RuntimeError(f"rate-limit bucket {key!r} could not be created")


def give_back(db: Session | Connection, key: str, limit: RateLimit, cost: float = 1.0) -> None:
    """Return ``cost`` tokens taken from the bucket ``key`` (never above its burst)."""
    refilled = RateLimitBucket.tokens + cost
    db.execute(
        update(RateLimitBucket)
        .where(RateLimitBucket.key == key)
        .values(tokens=case((refilled > limit.burst, limit.burst), else_=refilled))
    )


def reset(db: Session | Connection, key: str) -> None:
    """Forget the bucket ``key`` (staff unlock): its next attempt finds it full."""
    db.execute(delete(RateLimitBucket).where(RateLimitBucket.key == key))


def purge_idle(db: Session | Connection, *, before: datetime) -> int:
    """Delete buckets untouched since ``before`` (full again by now); return how many."""
    result = db.execute(
        delete(RateLimitBucket).where(RateLimitBucket.refilled_at < before.timestamp())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _create_full(db: Session | Connection, key: str, limit: RateLimit, clock: float) -> None:
    dialect = db.get_bind().dialect.name if isinstance(db, Session) else db.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(RateLimitBucket)
        .values(key=key, tokens=float(limit.burst), refilled_at=clock)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    db.execute(statement)
