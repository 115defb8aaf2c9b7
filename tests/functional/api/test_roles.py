"""Every operation in the OpenAPI document, called with no token and as every role.

The role an operation needs is read from its documented 403 answer, so a new endpoint is covered
the moment it is documented. Forbidden calls must change nothing: the token is checked before the
request body is even read.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from router.runtime import EXTENSION_KEY
from router.store.models import AuditEntry
from tests.functional.api.conftest import ROLES, ApiClient, make_contact

METHODS = ("get", "post", "put", "patch", "delete")
# Path values that exist, for reads; writes go to values that do not, or send a body that is
# not an object, so an allowed call is answered 404 or 422 and changes nothing.
EXISTING = {
    "rule_id": "break-fix-mac",
    "version": "1",
    "key": "us",
    "day": "2099-01-02",
    "contact_id": "999999",
    "account_id": "acme",
    "admin_id": "999999",
    "pin_id": "999999",
    "calling_number": "+15555550199",
    "staff_id": "1",
    "token_id": "999999",
    "reservation_id": "999999",
}
# The caller's own agent data: 404 for a role user who is not an agent.
AGENT_ONLY = {"/api/v1/agents/me/offers"}
QUEUE_PATHS = {"/api/v1/queues/{key}": "cse-mac"}
MISSING = dict.fromkeys(EXISTING, "999999") | {
    "rule_id": "no-such-rule",
    "key": "no-such-key",
    "account_id": "no-such-account",
    "calling_number": "+15555550199",
    "day": "2099-01-02",
}


def operations(app: Flask) -> list[tuple[str, str, str]]:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    found = []
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                description = item[method]["responses"]["403"]["description"]
                role = re.search(r"Needs the (\w+) role", description)
                assert role, f"{method} {path}: 403 does not name the role"
                found.append((method.upper(), path, role.group(1)))
    return found


def fill(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


def audit_count(app: Flask) -> int:
    with app.extensions[EXTENSION_KEY].db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_roles_follow_the_documented_matrix(api_app: Flask, api: ApiClient) -> None:
    contact = make_contact(api_app.extensions[EXTENSION_KEY])
    existing = {**EXISTING, "contact_id": str(contact.contact_id)}
    found = operations(api_app)
    assert len(found) >= 50
    needs = {}
    for method, path, role in found:
        needs[(method, path)] = role
        reading = method == "GET" or path.endswith(("/validate", "/dry-run", "/explain"))
        values = existing if method == "GET" else MISSING
        if method == "GET" and path in QUEUE_PATHS:
            values = {**values, "key": QUEUE_PATHS[path]}
        url = fill(path, values)
        body: Any = None if method in ("GET", "DELETE") else []
        label = f"{method} {path}"

        before = audit_count(api_app)
        answer = api.call(method, url, role=None, json=body)
        assert answer.status_code == 401, label
        assert answer.get_json()["error"] == "Unauthorized", label
        bad = api.call(method, url, role=None, json=body, headers={"Authorization": "Bearer x"})
        assert bad.status_code == 401, label

        rank = ROLES.index(role)
        for lower in ROLES[:rank]:
            forbidden = api.call(method, url, role=lower, json=body)
            assert forbidden.status_code == 403, (label, lower, forbidden.get_json())
            assert f"needs the {role} role" in forbidden.get_json()["message"], label
        assert audit_count(api_app) == before, f"{label}: a refused call changed something"

        for allowed in ROLES[rank:]:
            response = api.call(method, url, role=allowed, json=body)
            expected = {200} if method == "GET" else {404, 422}
            if path in AGENT_ONLY:
                expected = {200, 404}
            assert response.status_code in expected, (label, allowed, response.get_json())
        assert reading or audit_count(api_app) == before, label

    # The matrix the issue asks for: viewers read, editors change routing, admins manage people.
    assert needs[("GET", "/api/v1/contacts")] == "viewer"
    assert needs[("GET", "/api/v1/audit")] == "viewer"
    for editor_op in [
        ("POST", "/api/v1/rules"),
        ("PUT", "/api/v1/rule-set/order"),
        ("POST", "/api/v1/rule-set/versions/{version}/rollback"),
        ("POST", "/api/v1/queues"),
        ("PUT", "/api/v1/regions/{key}/overrides/{day}"),
        ("POST", "/api/v1/contacts/{contact_id}/regrade"),
        ("POST", "/api/v1/contacts/{contact_id}/first-response"),
    ]:
        assert needs[editor_op] == "editor", editor_op
    for admin_op in [
        ("POST", "/api/v1/accounts"),
        ("POST", "/api/v1/accounts/{account_id}/pins"),
        ("DELETE", "/api/v1/pin-lockouts/{calling_number}"),
        ("GET", "/api/v1/staff"),
        ("POST", "/api/v1/staff/{staff_id}/tokens"),
    ]:
        assert needs[admin_op] == "admin", admin_op


@pytest.mark.parametrize("header", ["", "Basic abc", "Bearer", "Bearer crt_unknown", "Token x"])
def test_malformed_or_unknown_credentials(api: ApiClient, header: str) -> None:
    response = api.call("GET", "/api/v1/me", role=None, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.get_json()["message"]
