"""The console over HTTP (no browser): sessions, CSRF, roles, headers and its JSON helpers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from router.runtime import EXTENSION_KEY
from router.services.demo import DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD
from router.services.logins import create_staff
from tests.functional.api.conftest import make_contact

PASSWORDS = {"viewer": "viewer-password-12", "editor": "editor-password-12"}


@pytest.fixture(scope="module")
def console_users(api_app: Flask) -> dict[str, tuple[str, str]]:
    db = api_app.extensions[EXTENSION_KEY].db
    users = {"admin": (DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD)}
    for role, password in PASSWORDS.items():
        email = f"console-{role}@support.example"
        create_staff(db, email, role, password=password)
        users[role] = (email, password)
    return users


def token_of(client: FlaskClient, path: str = "/console/login") -> str:
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def logged_in(app: Flask, users: dict[str, tuple[str, str]], role: str) -> FlaskClient:
    client = app.test_client()
    email, password = users[role]
    answer = client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": token_of(client)},
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return client


def test_pages_need_a_login(api_app: Flask) -> None:
    client = api_app.test_client()
    answer = client.get("/console/contacts?status=waiting")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/console/login?next=/console/contacts?status%3Dwaiting"
    assert client.post("/console/rules/order", json={}).status_code in (302, 400)
    assert client.get("/console/").headers["Location"].endswith("/console/queues")


def test_login_checks_csrf_password_and_next(
    api_app: Flask, console_users: dict[str, tuple[str, str]]
) -> None:
    client = api_app.test_client()
    email, password = console_users["editor"]
    no_token = client.post("/console/login", data={"email": email, "password": password})
    assert no_token.status_code == 400 and "CSRF" in no_token.get_data(as_text=True)
    wrong = client.post(
        "/console/login",
        data={"email": email, "password": "wrong-password", "csrf_token": token_of(client)},
    )
    assert wrong.status_code == 401 and "Wrong email or password" in wrong.get_data(as_text=True)
    # The form carries only a next the server put there: another one is refused (400) before
    # the password is checked, so no session is opened.
    for target, status in [
        ("https://evil.example/", 400),
        ("//evil.example/console", 400),
        ("/console\\..\\evil", 400),
        ("/console/rules", 302),
    ]:
        fresh = api_app.test_client()
        answer = fresh.post(
            "/console/login",
            data={
                "email": email,
                "password": password,
                "csrf_token": token_of(fresh),
                "next": target,
            },
        )
        assert answer.status_code == status, target
        if status == 302:
            assert answer.headers["Location"] == target
        else:
            assert "not a console address" in answer.get_data(as_text=True)
            assert fresh.get("/console/queues").status_code == 302
    assert client.get("/console/logout").status_code == 405


def test_security_headers(api_app: Flask, console_users: dict[str, tuple[str, str]]) -> None:
    client = logged_in(api_app, console_users, "viewer")
    page = client.get("/console/queues")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    css = client.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers.get("Cache-Control") != "no-store"
    assert "<script>" not in page.get_data(as_text=True).split("</head>")[1]


def test_every_page_renders_for_a_viewer(
    api_app: Flask, console_users: dict[str, tuple[str, str]]
) -> None:
    contact = make_contact(api_app.extensions[EXTENSION_KEY])
    client = logged_in(api_app, console_users, "viewer")
    for path in [
        "/console/queues",
        "/console/queues/fragment",
        "/console/queues/manage",
        "/console/contacts?tier=premium&sla_state=ok&sort=priority",
        f"/console/contacts/{contact.contact_id}",
        "/console/rules",
        "/console/rules/versions",
        "/console/rules/versions/1",
        "/console/accounts?tier=premium",
        "/console/accounts/acme",
        "/console/lockouts?state=all",
        "/console/calendars",
        "/console/audit?action=rules",
    ]:
        answer = client.get(path)
        assert answer.status_code == 200, path
        # The only form that posts is the log-out button in the header.
        body = answer.get_data(as_text=True).split("</header>")[-1]
        assert 'method="post"' not in body, f"{path}: a viewer sees a form that changes something"
    for path in ["/console/rules/new", "/console/staff", "/console/rules/default/edit"]:
        assert client.get(path).status_code == 403, path
    assert client.get("/console/contacts/999999").status_code == 404
    assert client.get("/console/accounts/nobody").status_code == 404


def test_roles_on_console_forms(api_app: Flask, console_users: dict[str, tuple[str, str]]) -> None:
    viewer = logged_in(api_app, console_users, "viewer")
    token = token_of(viewer, "/console/queues")
    refused = viewer.post("/console/queues/manage", data={"key": "t-console", "csrf_token": token})
    assert refused.status_code == 403
    editor = logged_in(api_app, console_users, "editor")
    token = token_of(editor, "/console/queues")
    created = editor.post(
        "/console/queues/manage",
        data={"key": "t-console", "name": "Console", "team": "cse", "csrf_token": token},
    )
    assert created.status_code == 302
    assert (
        editor.post(
            "/console/accounts", data={"id": "t-console", "name": "x", "csrf_token": token}
        ).status_code
        == 403
    )


def test_rule_json_helpers(api_app: Flask, console_users: dict[str, tuple[str, str]]) -> None:
    editor = logged_in(api_app, console_users, "editor")
    token = token_of(editor, "/console/rules/new")
    form: dict[str, Any] = {
        "csrf_token": token,
        "id": "t-helper",
        "when": '{"all": [{"field": "tier", "op": "eq", "value": "premium"}]}',
        "queue": "csm",
        "priority": "high",
        "position": "0",
    }
    check = editor.post("/console/rules/check", data=form).get_json()
    assert check["valid"] is False and check["errors"][0]["path"] == "then.priority"
    form["priority"] = "90"
    check = editor.post("/console/rules/check", data=form).get_json()
    assert check["valid"] is True and check["position"] == 0
    run = editor.post(
        "/console/rules/dry-run", data={**form, "sample_tier": "premium", "sample_channel": "voice"}
    ).get_json()
    assert run["candidate_matched"] is True and run["candidate"]["decision"]["priority"] == 90
    bad_sample = editor.post("/console/rules/dry-run", data={**form, "sample_tier": "gold"})
    assert bad_sample.status_code == 422
    # 100,000-deep JSON in the conditions field was a 500 (RecursionError), viewers included.
    deep = {**form, "when": "[" * 100_000 + "]" * 100_000}
    for path in ("/console/rules/check", "/console/rules/dry-run"):
        answer = editor.post(path, data=deep)
        assert answer.status_code in (200, 422), (path, answer.status_code)
        assert "nested more than" in answer.get_data(as_text=True)
    no_token = editor.post("/console/rules/check", data={**form, "csrf_token": ""})
    assert no_token.status_code == 400

    order = editor.post(
        "/console/rules/order",
        json={"base_version": 0, "order": ["x"]},
        headers={"X-CSRFToken": token},
    )
    assert order.status_code == 409 and "current_version" in order.get_json()
    assert (
        editor.post("/console/rules/order", json=["x"], headers={"X-CSRFToken": token}).status_code
        == 400
    )


def test_a_pin_page_is_the_only_place_digits_appear(
    api_app: Flask, console_users: dict[str, tuple[str, str]]
) -> None:
    admin = logged_in(api_app, console_users, "admin")
    token = token_of(admin, "/console/accounts/globex")
    answer = admin.post("/console/accounts/globex/pins", data={"csrf_token": token, "admin_id": ""})
    assert answer.status_code == 201 and answer.headers["Cache-Control"] == "no-store"
    pin = re.search(r'id="new-pin">(\d{8})<', answer.get_data(as_text=True))
    assert pin
    assert pin.group(1) not in admin.get("/console/accounts/globex").get_data(as_text=True)
    assert pin.group(1) not in admin.get("/console/audit").get_data(as_text=True)
    cookie = admin.get_cookie("session")
    assert cookie is None or pin.group(1) not in cookie.value


def test_names_are_escaped(api_app: Flask, console_users: dict[str, tuple[str, str]]) -> None:
    admin = logged_in(api_app, console_users, "admin")
    token = token_of(admin, "/console/accounts")
    admin.post(
        "/console/accounts",
        data={
            "csrf_token": token,
            "id": "t-escape",
            "name": "<script>alert(1)</script>",
            "tier": "standard",
            "region": "us",
        },
    )
    html = admin.get("/console/accounts/t-escape").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
