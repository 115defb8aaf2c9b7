"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from router.metrics import StoreStats
from router.runtime import Runtime, runtime

blueprint = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


def store_stats(rt: Runtime) -> StoreStats:
    """Return the app's cached store figures (queue depths, SLA states, scheduler health)."""
    return rt.metrics.store(
        rt.db,
        cache_seconds=rt.settings.metrics_cache_seconds,
        stale_after=timedelta(seconds=rt.settings.scheduler_stale_after_seconds),
    )


@blueprint.get("/healthz")
def healthz() -> Response:
    """Answer while the process is up; touches nothing else."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Answer 503 when the database is unreachable; 200, "degraded" when the scheduler is stale."""
    # A stale scheduler does not make this process unable to serve contacts: taking every web
    # worker out of the load balancer for it would turn a monitoring problem into an outage, so
    # it degrades the status (and /metrics) while the answer stays 200.
    rt = runtime()
    try:
        rt.db.ping()
    except SQLAlchemyError as exc:
        log.warning("readiness check failed: %s", type(exc).__name__)
        return jsonify(status="unavailable", database="unreachable"), 503
    health = store_stats(rt).scheduler_health()
    scheduler = health.to_dict() if health is not None else {"state": "unknown"}
    status = "ok" if scheduler["state"] == "ok" else "degraded"
    return jsonify(status=status, database="ok", scheduler=scheduler), 200


@blueprint.get("/metrics")
def metrics() -> Response:
    """Expose request counts and latencies, and the store's figures, in the Prometheus format."""
    rt = runtime()
    store_stats(rt)  # registers the store's gauges with this app's registry on first use
    return Response(rt.metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)
