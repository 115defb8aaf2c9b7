"""The OpenAPI document: valid, complete, and the API behaves as it says (schemathesis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from router.runtime import EXTENSION_KEY
from router.services.logins import create_staff, issue_token, token_digest
from router.store.models import ApiToken, StaffUser
from tests.conftest import AppCache
from tests.functional.api.conftest import (
    ApiClient,
    demo_app,
    make_contact,
    migrated_database,
    role_tokens,
)

# Examples per operation and generation mode: enough to reach every validation branch and the
# happy path of each operation, few enough that the run stays a few seconds per database.
EXAMPLES = {GenerationMode.POSITIVE: 7, GenerationMode.NEGATIVE: 3}
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def fuzz_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Yield a database of this module's own: the fuzzer changes whatever it can."""
    yield from migrated_database(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def fuzz_app(apps: AppCache, fuzz_url: str) -> Iterator[Flask]:
    application = demo_app(apps, fuzz_url)
    yield application
    application.extensions[EXTENSION_KEY].db.dispose()


@pytest.fixture
def fuzz_api(fuzz_app: Flask) -> ApiClient:
    return ApiClient(fuzz_app.test_client(), role_tokens(fuzz_app))


@pytest.fixture(scope="module")
def document(fuzz_app: Flask) -> dict[str, Any]:
    response = fuzz_app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    data: dict[str, Any] = response.get_json()
    return data


def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.0.3"
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_operation_is_secured_and_documents_its_errors(document: dict[str, Any]) -> None:
    operations = 0
    for path, item in document["paths"].items():
        assert path.startswith("/api/v1/")
        for method in METHODS:
            if method not in item:
                continue
            operations += 1
            operation = item[method]
            label = f"{method.upper()} {path}"
            assert operation["security"] == [{"bearerAuth": []}], label
            assert {"401", "403", "400"} <= set(operation["responses"]), label
            assert operation.get("summary"), label
            success = [code for code in operation["responses"] if code.startswith("2")]
            assert success, label
            if "{" in path:
                assert "404" in operation["responses"], label
            if method in ("post", "put", "patch") and "requestBody" in operation:
                assert "422" in operation["responses"], label
    assert operations >= 50


def test_the_document_names_every_resource(document: dict[str, Any]) -> None:
    paths = set(document["paths"])
    for expected in (
        "/api/v1/route/explain",
        "/api/v1/rules",
        "/api/v1/rules/{rule_id}",
        "/api/v1/rules/{rule_id}/move",
        "/api/v1/rule-set/order",
        "/api/v1/rule-set/validate",
        "/api/v1/rule-set/dry-run",
        "/api/v1/rule-set/versions/{version}/rollback",
        "/api/v1/queues/{key}",
        "/api/v1/queue-overview",
        "/api/v1/regions/{key}",
        "/api/v1/regions/{key}/overrides/{day}",
        "/api/v1/contacts/{contact_id}/regrade",
        "/api/v1/contacts/{contact_id}/first-response",
        "/api/v1/accounts/{account_id}/pins/{pin_id}/rotate",
        "/api/v1/pin-lockouts/{calling_number}",
        "/api/v1/staff/{staff_id}/tokens",
        "/api/v1/audit",
    ):
        assert expected in paths


def known_values(api: ApiClient, rt: Any) -> dict[str, Any]:
    """Return real values for every path parameter the API has."""
    from datetime import UTC, datetime, timedelta

    from router.store.models import Admin, Contact, PinLockout, SupportPin

    now = datetime.now(UTC)
    with rt.db.transaction() as session:
        session.add(
            PinLockout(
                calling_number="+15555550123", locked_until=now + timedelta(hours=1), failures=10
            )
        )
    with rt.db.session() as session:
        contact_id = session.scalar(select(Contact.id).order_by(Contact.id))
        admin_id = session.scalar(select(Admin.id).where(Admin.account_id == "acme"))
        pin_id = session.scalar(select(SupportPin.id).where(SupportPin.account_id == "acme"))
        staff_id = session.scalar(
            select(StaffUser.id).where(StaffUser.email == "editor@support.example")
        )
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.staff_user_id == staff_id))
    return {
        "rule_id": "break-fix-mac",
        "version": 1,
        "key": "us",
        "day": (now + timedelta(days=3)).date().isoformat(),
        "contact_id": contact_id,
        "account_id": "acme",
        "admin_id": admin_id,
        "pin_id": pin_id,
        "calling_number": "+15555550123",
        "staff_id": staff_id,
        "token_id": token_id,
    }


def test_schemathesis_finds_no_server_errors_or_schema_violations(
    fuzz_app: Flask, fuzz_api: ApiClient, fuzz_url: str
) -> None:
    api_app, api, shared_url = fuzz_app, fuzz_api, fuzz_url
    rt = api_app.extensions[EXTENSION_KEY]
    # Something for the contact operations to find, and a fuzzing admin of its own, so that
    # revoking its own token or demoting itself can be ruled out below.
    for _ in range(3):
        make_contact(rt)
    create_staff(rt.db, "fuzzer@support.example", "admin")
    token = issue_token(rt.db, "fuzzer@support.example", name="schemathesis").token
    with rt.db.session() as session:
        fuzzer_id = session.scalar(
            select(StaffUser.id).where(StaffUser.email == "fuzzer@support.example")
        )
        token_id = session.scalar(
            select(ApiToken.id).where(ApiToken.token_hash == token_digest(token))
        )
    headers = {"Authorization": f"Bearer {token}"}
    known = known_values(api, rt)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    # Invalid input is refused by the same schemas on every database; valid input is what
    # reaches the store, so PostgreSQL (stricter about text and numbers) gets the valid cases.
    modes = [GenerationMode.POSITIVE]
    if shared_url.startswith("sqlite"):
        modes.append(GenerationMode.NEGATIVE)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in modes:

            @settings(
                max_examples=EXAMPLES[mode],
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(
                case=operation.as_strategy(generation_mode=mode),
                use_known=st.booleans(),
            )
            def run(case: Any, use_known: bool) -> None:
                # Random path values mostly miss (404); half the cases use real ones so that
                # fuzzed bodies reach the services behind them.
                params = case.path_parameters or {}
                if use_known:
                    for name in params:
                        if name in known:
                            params[name] = known[name]
                    if isinstance(case.body, dict) and "base_version" in case.body:
                        case.body["base_version"] = api.get("rule-set").get_json()["version"]
                if case.path.startswith("/api/v1/staff/{staff_id}"):
                    assume(params.get("staff_id") != fuzzer_id)
                assume(params.get("token_id") != token_id)
                response = case.call(headers=headers)
                case.validate_response(response, checks=checks)

            try:
                run()
            except Exception as exc:  # collect every operation's failure, then report
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1200]}")
    assert operations >= 50
    assert not failures, "\n\n".join(failures)
    # The fuzzer's admin still works: the run could not lock itself out.
    assert api.get("/api/v1/me", headers=headers, role=None).status_code == 200
