"""Health, readiness and metrics endpoints, and JSON errors."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from app import create_app
from tests.conftest import make_settings


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_the_database(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["database"] == "ok"
    # No scheduler has swept this fresh database: ready, but degraded (tests/scheduler covers it).
    assert (body["status"], body["scheduler"]["state"]) == ("degraded", "never_ran")


def test_readyz_reports_an_unreachable_database(tmp_path: Path) -> None:
    unreachable = f"sqlite:///{tmp_path / 'no-such-dir' / 'router.sqlite3'}"
    # Built fresh: an app on a database of this test's own path, which cannot be opened.
    app = create_app(make_settings(unreachable))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "unreachable"}
    # Liveness does not depend on the database.
    assert app.test_client().get("/healthz").status_code == 200


def test_readyz_on_unreachable_postgresql() -> None:
    # Built fresh: used once, and its pool only ever fails to connect.
    app = create_app(
        make_settings("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    )
    assert app.test_client().get("/readyz").status_code == 503


def test_metrics_count_requests_per_endpoint(client: FlaskClient) -> None:
    client.get("/healthz")
    client.get("/healthz")
    client.get("/no-such-page")
    body = client.get("/metrics").get_data(as_text=True)
    assert 'router_http_requests_total{endpoint="/healthz",method="GET",status="200"} 2.0' in body
    assert 'router_http_requests_total{endpoint="unmatched",method="GET",status="404"} 1.0' in body
    assert (
        'router_http_request_duration_seconds_count{endpoint="/healthz",method="GET"} 2.0' in body
    )


def test_errors_are_json(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"
    response = client.post("/healthz")
    assert response.status_code == 405
    assert "message" in response.get_json()
