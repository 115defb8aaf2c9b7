"""Prometheus metrics, one registry per app so tests and workers do not collide.

Besides request counts and latencies (per process), ``/metrics`` carries what the store says,
the same from every worker: queue depth, the oldest wait per queue, open contacts per SLA state,
the notification backlog and the scheduler's last successful sweep. Those come from one grouped
query over open contacts plus two small ones, cached for METRICS_CACHE_SECONDS so frequent
scrapes by several Prometheus servers cost the database one read per interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from router.core.domain import ContactStatus, SlaState
from router.scheduler.state import SchedulerHealth, read_health
from router.store.db import Database
from router.store.models import Contact, Queue
from router.store.models.scheduler import Notification

log = logging.getLogger(__name__)

OPEN_STATUSES = (ContactStatus.WAITING.value, ContactStatus.ACCEPTED.value)


class Metrics:
    """Request counts and latencies per endpoint, and (once attached) the store's figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "router_http_requests",
            "HTTP requests handled, by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "router_http_request_duration_seconds",
            "Time to answer an HTTP request, by endpoint.",
            ["endpoint", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self._store: StoreStats | None = None
        self._attach_lock = threading.Lock()

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its duration."""
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint, method).observe(seconds)

    def store(self, db: Database, *, cache_seconds: float, stale_after: timedelta) -> StoreStats:
        """Return the store's figures for ``db``, registering them on first use."""
        with self._attach_lock:
            if self._store is None:
                self._store = StoreStats(db, cache_seconds=cache_seconds, stale_after=stale_after)
                self.registry.register(StoreCollector(self._store))
            return self._store

    def exposition(self) -> bytes:
        """Return the metrics in the Prometheus text format."""
        return generate_latest(self.registry)


@dataclass(frozen=True)
class QueueFigures:
    """One queue's waiting contacts."""

    depth: int = 0
    oldest_received_at: datetime | None = None


@dataclass(frozen=True)
class StoreSnapshot:
    """What the store said at ``taken_at``."""

    taken_at: datetime
    queues: dict[str, QueueFigures] = field(default_factory=dict)
    sla_states: dict[str, int] = field(default_factory=dict)
    notifications: dict[str, int] = field(default_factory=dict)
    scheduler: SchedulerHealth | None = None
    error: str | None = None  # set when the store could not be read


class StoreStats:
    """Read the store's figures at most once per ``cache_seconds``, shared by all threads."""

    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float,
        stale_after: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self.stale_after = stale_after
        self.clock = clock
        self._lock = threading.Lock()
        self._snapshot: StoreSnapshot | None = None
        self._read_at = 0.0
        self._health: tuple[float, SchedulerHealth | None] | None = None

    def snapshot(self) -> StoreSnapshot:
        """Return a snapshot no older than the cache time (one reader refreshes it)."""
        with self._lock:
            fresh = time.monotonic() - self._read_at < self.cache_seconds
            if self._snapshot is None or not fresh:
                self._snapshot = self._read()
                self._read_at = time.monotonic()
            return self._snapshot

    def scheduler_health(self) -> SchedulerHealth | None:
        """Return the scheduler's health (two key lookups, cached); None if unreadable."""
        # /readyz is probed often by every load balancer: it reads only the heartbeat rows,
        # never the grouped query over open contacts that /metrics needs.
        with self._lock:
            cached = self._health
            if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
                return cached[1]
        try:
            health: SchedulerHealth | None = read_health(self.db, self.clock(), self.stale_after)
        except SQLAlchemyError as exc:
            log.warning("scheduler health unavailable: %s", type(exc).__name__)
            health = None
        with self._lock:
            self._health = (time.monotonic(), health)
        return health

    def _read(self) -> StoreSnapshot:
        now = self.clock()
        try:
            with self.db.session() as session:
                queues: dict[str, QueueFigures] = {
                    key: QueueFigures() for key in session.scalars(select(Queue.key))
                }
                states = {state.value: 0 for state in SlaState}
                # The one grouped query over open contacts.
                grouped = session.execute(
                    select(
                        Contact.queue_key,
                        Contact.status,
                        Contact.sla_state,
                        func.count(),
                        func.min(Contact.received_at),
                    )
                    .where(Contact.status.in_(OPEN_STATUSES))
                    .group_by(Contact.queue_key, Contact.status, Contact.sla_state)
                )
                for queue_key, status, sla_state, count, oldest in grouped:
                    states[sla_state] = states.get(sla_state, 0) + count
                    if status != ContactStatus.WAITING.value or queue_key is None:
                        continue
                    current = queues.get(queue_key, QueueFigures())
                    received = _aware(oldest)
                    earliest = current.oldest_received_at
                    if received is not None and (earliest is None or received < earliest):
                        earliest = received
                    queues[queue_key] = QueueFigures(current.depth + count, earliest)
                notifications = {
                    status: count
                    for status, count in session.execute(
                        select(Notification.status, func.count())
                        .where(Notification.status.in_(("pending", "sending", "failed")))
                        .group_by(Notification.status)
                    )
                }
            scheduler = read_health(self.db, now, self.stale_after)
        except SQLAlchemyError as exc:
            log.warning("store metrics unavailable: %s", type(exc).__name__)
            return StoreSnapshot(taken_at=now, error=type(exc).__name__)
        return StoreSnapshot(
            taken_at=now,
            queues=queues,
            sla_states=states,
            notifications=notifications,
            scheduler=scheduler,
        )


def _aware(value: datetime | None) -> datetime | None:
    # An aggregate's result skips the column type on SQLite: it comes back naive (UTC) or as text.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class StoreCollector(Collector):
    """Expose a StoreStats snapshot as Prometheus gauges at scrape time."""

    def __init__(self, stats: StoreStats) -> None:
        self.stats = stats

    def describe(self) -> Iterator[Metric]:
        """Describe nothing up front, so registering never reads the store."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Yield the gauges from the current snapshot."""
        snapshot = self.stats.snapshot()
        up = GaugeMetricFamily(
            "router_store_metrics_up", "1 when the store's figures below could be read."
        )
        up.add_metric([], 0 if snapshot.error else 1)
        yield up
        if snapshot.error:
            return
        now = snapshot.taken_at
        depth = GaugeMetricFamily(
            "router_queue_depth", "Contacts waiting in each queue.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "router_queue_oldest_wait_seconds",
            "How long the longest-waiting contact of each queue has waited (0 when empty).",
            labels=["queue"],
        )
        for key, figures in sorted(snapshot.queues.items()):
            depth.add_metric([key], figures.depth)
            waited = (
                max((now - figures.oldest_received_at).total_seconds(), 0.0)
                if figures.oldest_received_at is not None
                else 0.0
            )
            oldest.add_metric([key], waited)
        yield depth
        yield oldest
        states = GaugeMetricFamily(
            "router_contacts_sla_state",
            "Open contacts (waiting or accepted) by recorded SLA state.",
            labels=["state"],
        )
        for state, count in sorted(snapshot.sla_states.items()):
            states.add_metric([state], count)
        yield states
        backlog = GaugeMetricFamily(
            "router_notifications",
            "SLA notifications not yet sent (pending, sending) or abandoned (failed).",
            labels=["status"],
        )
        for status in ("pending", "sending", "failed"):
            backlog.add_metric([status], snapshot.notifications.get(status, 0))
        yield backlog
        health = snapshot.scheduler
        if health is None:
            return
        last = GaugeMetricFamily(
            "router_scheduler_last_sweep_timestamp_seconds",
            "Unix time of the scheduler's last successful SLA sweep (0: never).",
        )
        last.add_metric([], health.last_sweep_at.timestamp() if health.last_sweep_at else 0.0)
        yield last
        stale = GaugeMetricFamily(
            "router_scheduler_stale",
            "1 when the last successful SLA sweep is older than SCHEDULER_STALE_AFTER_SECONDS.",
        )
        stale.add_metric([], 0 if health.state == "ok" else 1)
        yield stale
