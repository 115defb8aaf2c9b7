"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from router.runtime import runtime

blueprint = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """Answer while the process is up; touches nothing else."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Answer 200 when the database answers, 503 otherwise."""
    try:
        runtime().db.ping()
    except SQLAlchemyError as exc:
        log.warning("readiness check failed: %s", type(exc).__name__)
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok", database="ok"), 200


@blueprint.get("/metrics")
def metrics() -> Response:
    """Expose request counts and latencies in the Prometheus text format."""
    return Response(runtime().metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)
