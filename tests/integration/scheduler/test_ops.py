"""/readyz degrades when the sweep is stale; /metrics carries queues, SLA states and the sweep."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from app import create_app
from router.core.domain import ContactStatus, Severity, Topic
from router.runtime import EXTENSION_KEY, Runtime
from router.scheduler.state import SWEEP_JOB, record_run
from tests.conftest import make_settings
from tests.integration.scheduler.conftest import World


def gauge(body: str, name: str, **labels: str) -> float:
    """Return one sample's value from a Prometheus exposition."""
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.escape(f"{name}{{{selector}}}" if labels else name) + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", body, re.MULTILINE)
    assert found, f"{name} {labels} not in metrics"
    return float(found.group(1))


def swept(rt: Runtime, at: datetime) -> None:
    record_run(rt.db, SWEEP_JOB, started_at=at - timedelta(seconds=1), finished_at=at, result={})


def test_readyz_reports_the_scheduler_and_degrades_when_it_is_stale(
    client: FlaskClient, rt: Runtime
) -> None:
    body = client.get("/readyz").get_json()
    assert body["status"] == "degraded" and body["database"] == "ok"
    assert body["scheduler"]["state"] == "never_ran"

    now = datetime.now(UTC)
    swept(rt, now - timedelta(seconds=20))
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["scheduler"]["state"]) == ("ok", "ok")
    assert body["scheduler"]["last_sweep_at"] == (now - timedelta(seconds=20)).isoformat()
    assert 19 <= body["scheduler"]["age_seconds"] < 60

    stale_after = rt.settings.scheduler_stale_after_seconds
    swept(rt, now - timedelta(seconds=stale_after + 30))
    response = client.get("/readyz")
    # Still 200: the web process can serve; a stale scheduler is flagged, not taken offline.
    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"
    assert response.get_json()["scheduler"]["state"] == "stale"


def test_metrics_show_queues_sla_states_backlog_and_the_last_sweep(
    client: FlaskClient, rt: Runtime, world: World
) -> None:
    now = datetime.now(UTC)
    oldest = world.contact(now - timedelta(minutes=50))  # premium S1: warning at 45 min
    world.contact(now - timedelta(minutes=10))
    world.contact(now - timedelta(minutes=5), topic=Topic.MAC, severity=Severity.S3)
    accepted = world.contact(now - timedelta(minutes=1), topic=Topic.MAC)
    world.set_contact(accepted, status=ContactStatus.ACCEPTED.value)
    world.monitor.sweep(now)
    assert world.get(oldest).sla_state == "warning"
    swept(rt, now)

    body = client.get("/metrics").get_data(as_text=True)
    assert gauge(body, "router_store_metrics_up") == 1
    assert gauge(body, "router_queue_depth", queue="cse-windows") == 2
    assert gauge(body, "router_queue_depth", queue="cse-mac") == 1  # the accepted one is not
    assert gauge(body, "router_queue_depth", queue="escalations") == 0
    waited = gauge(body, "router_queue_oldest_wait_seconds", queue="cse-windows")
    assert 50 * 60 <= waited < 52 * 60
    assert gauge(body, "router_queue_oldest_wait_seconds", queue="escalations") == 0
    assert gauge(body, "router_contacts_sla_state", state="ok") == 3
    assert gauge(body, "router_contacts_sla_state", state="warning") == 1
    assert gauge(body, "router_contacts_sla_state", state="breached") == 0
    assert gauge(body, "router_notifications", status="pending") == 1  # the warning's
    assert gauge(body, "router_scheduler_last_sweep_timestamp_seconds") == now.timestamp()
    assert gauge(body, "router_scheduler_stale") == 0
    # Request metrics are still there.
    assert "router_http_requests_total" in body


def test_store_figures_are_cached_for_a_few_seconds(world: World) -> None:
    # Built fresh: the store figures' cache is the app's, and what this test watches.
    app = create_app(make_settings(world.db.url).with_overrides(metrics_cache_seconds=300))
    client = app.test_client()
    before = client.get("/metrics").get_data(as_text=True)
    assert gauge(before, "router_queue_depth", queue="cse-windows") == 0
    world.contact(datetime.now(UTC))
    after = client.get("/metrics").get_data(as_text=True)
    assert gauge(after, "router_queue_depth", queue="cse-windows") == 0  # from the cache
    fresh = create_app(make_settings(world.db.url).with_overrides(metrics_cache_seconds=0))  # ditto
    body = fresh.test_client().get("/metrics").get_data(as_text=True)
    assert gauge(body, "router_queue_depth", queue="cse-windows") == 1
    for used in (app, fresh):
        _dispose(used)


def test_metrics_answer_when_the_database_is_away(tmp_path: Path) -> None:
    # Built fresh: an app on a database of this test's own path, which cannot be opened.
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'missing' / 'router.sqlite3'}"))
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert gauge(response.get_data(as_text=True), "router_store_metrics_up") == 0
    assert app.test_client().get("/readyz").status_code == 503
    _dispose(app)


def _dispose(app: Flask) -> None:
    app.extensions[EXTENSION_KEY].db.dispose()


def test_readyz_reads_only_the_heartbeat(client: FlaskClient, rt: Runtime) -> None:
    statements: list[str] = []

    def capture(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", capture)
    try:
        assert client.get("/readyz").status_code == 200
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", capture)
    assert statements and not any("contacts" in s for s in statements), statements
