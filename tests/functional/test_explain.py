"""POST /api/v1/route/explain: decisions and traces for staff, nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from router.runtime import EXTENSION_KEY
from router.services.demo import load_demo_data
from router.services.logins import create_staff, issue_token
from router.store.db import Database
from router.store.models import Contact

NOW = "2026-11-27T15:00:00+00:00"


@pytest.fixture
def tokens(app: Flask, db: Database) -> dict[str, str]:
    rt = app.extensions[EXTENSION_KEY]
    load_demo_data(db, rt.policy, rt.settings.pin_pepper, datetime(2026, 11, 26, tzinfo=UTC))
    create_staff(db, "viewer@support.example", "viewer")
    return {
        "viewer": issue_token(db, "viewer@support.example").token,
        "admin": issue_token(db, "ops@support.example").token,
    }


def post(client: FlaskClient, token: str | None, body: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post("/api/v1/route/explain", json=body, headers=headers)
    return response.status_code, response.get_json()


def test_explain_for_an_account(client: FlaskClient, db: Database, tokens: dict[str, str]) -> None:
    code, body = post(
        client,
        tokens["viewer"],
        {
            "account_id": "acme",
            "channel": "voice",
            "severity": "S1",
            "topic": "identity",
            "received_at": NOW,
        },
    )
    assert code == 200, body
    decision = body["decision"]
    assert decision["queue"] == "cse-identity" and decision["priority"] == 90
    assert decision["sla"]["due_at"] == "2026-11-27T16:00:00+00:00"
    assert decision["matched_rule"] == "break-fix-identity"
    first = decision["trace"][0]
    assert first["rule_id"] == "free-tier-help-center" and first["outcome"] == "no_match"
    assert "tier eq 'free' (was 'premium')" in first["failed_condition"]
    assert body["access"] == "live"
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_explain_explicit_attributes(client: FlaskClient, tokens: dict[str, str]) -> None:
    code, body = post(
        client,
        tokens["viewer"],
        {
            "received_at": "2026-11-28T12:00:00+00:00",  # a Saturday
            "attributes": {
                "channel": "email",
                "tier": "standard",
                "severity": "S3",
                "account_region": "us",
            },
        },
    )
    assert code == 200, body
    assert body["decision"]["sla_policy"] == "standard"
    # Next business day after Saturday: Monday 2026-11-30 17:00 New York = 22:00 UTC.
    assert body["decision"]["sla"]["due_at"] == "2026-11-30T22:00:00+00:00"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"account_id": "acme"}, 422),
        ({"channel": "voice"}, 422),
        ({"account_id": "acme", "channel": "fax"}, 422),
        ({"account_id": "acme", "channel": "voice", "received_at": "2026-11-27T15:00:00"}, 422),
        ({"account_id": "nobody", "channel": "voice"}, 404),
        ({"attributes": {"channel": "voice", "tier": "gold"}}, 422),
    ],
)
def test_bad_requests(client: FlaskClient, tokens: dict[str, str], body: object, code: int) -> None:
    status, answer = post(client, tokens["viewer"], body)
    assert status == code, answer
    assert answer.get("message") or answer.get("errors")


def test_needs_a_valid_token(client: FlaskClient, tokens: dict[str, str]) -> None:
    body = {"account_id": "acme", "channel": "voice"}
    assert post(client, None, body)[0] == 401
    assert post(client, "crt_not-a-real-token", body)[0] == 401
    assert post(client, tokens["admin"], body)[0] == 200


def test_openapi_document_lists_explain(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/route/explain" in document["paths"]
