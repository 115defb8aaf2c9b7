"""Database token buckets: refill, refusal with a retry hint, and no overspend under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from router.services import ratelimit
from router.services.ratelimit import RateLimit
from router.store.db import Database

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(migrated_url: str):
    database = Database(migrated_url)
    yield database
    database.dispose()


def take(db: Database, key: str, limit: RateLimit, now: datetime) -> ratelimit.RateDecision:
    with db.transaction() as session:
        return ratelimit.take(session, key, limit, now=now)


def test_burst_then_refusal_then_refill(db: Database) -> None:
    limit = RateLimit(per_second=0.5, burst=3)
    assert [take(db, "k", limit, T0).allowed for _ in range(3)] == [True, True, True]
    refused = take(db, "k", limit, T0)
    assert not refused.allowed
    assert refused.retry_after_seconds == pytest.approx(2.0)
    # One token back after two seconds, and no more than the burst after an hour.
    assert take(db, "k", limit, T0 + timedelta(seconds=2)).allowed
    assert not take(db, "k", limit, T0 + timedelta(seconds=2)).allowed
    later = T0 + timedelta(hours=1)
    assert [take(db, "k", limit, later).allowed for _ in range(4)] == [True, True, True, False]


def test_buckets_are_independent_and_reset(db: Database) -> None:
    limit = RateLimit.per_window(1, 60)
    assert take(db, "a", limit, T0).allowed
    assert not take(db, "a", limit, T0).allowed
    assert take(db, "b", limit, T0).allowed
    with db.transaction() as session:
        ratelimit.reset(session, "a")
    assert take(db, "a", limit, T0).allowed


def test_clock_stepping_back_refills_nothing(db: Database) -> None:
    limit = RateLimit(per_second=1, burst=1)
    assert take(db, "k", limit, T0).allowed
    assert not take(db, "k", limit, T0 - timedelta(seconds=30)).allowed


def test_purge_idle(db: Database) -> None:
    limit = RateLimit(per_second=1, burst=1)
    take(db, "old", limit, T0)
    take(db, "new", limit, T0 + timedelta(days=2))
    with db.transaction() as session:
        assert ratelimit.purge_idle(session, before=T0 + timedelta(days=1)) == 1
    assert not take(db, "new", limit, T0 + timedelta(days=2)).allowed


def test_concurrent_takers_never_exceed_the_burst(db: Database) -> None:
    limit = RateLimit(per_second=0.001, burst=25)
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(10):
            try:
                allowed = take(db, "shared", limit, T0).allowed
            except Exception:  # SQLite's "database is locked" under contention is a refusal
                allowed = False
            with lock:
                results.append(allowed)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 80
    assert results.count(True) <= 25
    if db.engine.dialect.name == "postgresql":
        assert results.count(True) == 25


def test_a_take_from_an_existing_bucket_is_one_statement(db: Database) -> None:
    # A PIN check and a log-in take from a bucket on every attempt: one round trip, not three.
    limit = RateLimit(per_second=1, burst=5)
    take(db, "hot", limit, T0)  # creates it
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.transaction() as session:
            assert ratelimit.take(session, "hot", limit, now=T0).allowed
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert [s for s in statements if "rate_limit_buckets" in s] == statements[-1:]
    assert len([s for s in statements if "rate_limit_buckets" in s]) == 1


def test_a_token_given_back_is_there_again_never_above_the_burst(db: Database) -> None:
    limit = RateLimit(per_second=0.001, burst=2)
    assert take(db, "k", limit, T0).allowed and take(db, "k", limit, T0).allowed
    assert not take(db, "k", limit, T0).allowed
    for _ in range(3):  # more than was taken: the bucket stays at its burst
        with db.transaction() as session:
            ratelimit.give_back(session, "k", limit)
    assert [take(db, "k", limit, T0).allowed for _ in range(3)] == [True, True, False]
