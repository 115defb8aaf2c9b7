"""Staff users, tokens (shown once, revocable, expiring), /me and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from router.runtime import Runtime
from router.store.models import ApiToken, ConsoleLoginLock
from tests.functional.api.conftest import ApiClient


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_me(api: ApiClient) -> None:
    for role in ("viewer", "editor", "admin"):
        body = api.get("me", role=role).get_json()
        assert body["role"] == role


def test_staff_users(api: ApiClient) -> None:
    created = api.post(
        "staff",
        role="admin",
        json={"email": "New.Person@Support.Example", "role": "editor", "password": "x" * 12},
    )
    body = created.get_json()
    assert created.status_code == 201, body
    assert body["email"] == "new.person@support.example" and body["has_password"] is True
    assert "password" not in body and "password_hash" not in body
    assert (
        api.post(
            "staff", role="admin", json={"email": "new.person@support.example", "role": "viewer"}
        ).status_code
        == 409
    )
    for bad in (
        {"email": "x@support.example", "role": "owner"},
        {"email": "x@support.example", "role": "viewer", "password": "short"},
        {"email": "not-an-email", "role": "viewer"},
    ):
        assert api.post("staff", role="admin", json=bad).status_code == 422, bad

    listed = api.get("staff", role="admin", query={"role": "editor"}).get_json()
    assert {"editor@support.example", "new.person@support.example"} <= {
        s["email"] for s in listed["items"]
    }
    found = api.get("staff", role="admin", query={"q": "NEW.PERSON"}).get_json()
    assert [s["id"] for s in found["items"]] == [body["id"]]
    # The search text is literal: "_" and "%" are not LIKE wildcards ("new_person" != "new.person").
    for literal in ("new_person", "new%person"):
        none = api.get("staff", role="admin", query={"q": literal}).get_json()
        assert none["items"] == [], literal

    promoted = api.patch(f"staff/{body['id']}", role="admin", json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.get_json()["role"] == "admin"
    demoted = api.patch(f"staff/{body['id']}", role="admin", json={"role": "viewer"})
    assert demoted.status_code == 200
    assert api.patch("staff/999999", role="admin", json={"name": "x"}).status_code == 404
    assert api.patch(f"staff/{body['id']}", role="admin", json={}).status_code == 422


def test_console_login_unlock(api: ApiClient, rt: Runtime) -> None:
    user = api.post(
        "staff", role="admin", json={"email": "locked.out@support.example", "role": "viewer"}
    ).get_json()
    assert user["login_locked_until"] is None
    until = datetime.now(UTC) + timedelta(minutes=5)
    with rt.db.transaction() as session:
        session.add(
            ConsoleLoginLock(
                email=user["email"],
                failures=0,
                lockouts=1,
                locked_until=until,
                last_failure_at=datetime.now(UTC),
            )
        )
    shown = api.get(f"staff/{user['id']}", role="admin").get_json()
    assert shown["login_locked_until"] == until.isoformat()
    listed = api.get("staff", role="admin", query={"q": "locked.out"}).get_json()
    assert listed["items"][0]["login_locked_until"] == until.isoformat()
    assert api.post(f"staff/{user['id']}/unlock", role="editor").status_code == 403
    assert api.post("staff/999999/unlock", role="admin").status_code == 404
    unlocked = api.post(f"staff/{user['id']}/unlock", role="admin")
    assert unlocked.status_code == 200 and unlocked.get_json()["login_locked_until"] is None
    entries = api.get(
        "audit", role="viewer", query={"action": "login.unlocked", "entity_id": user["email"]}
    ).get_json()
    assert entries["items"][0]["before"]["lockouts"] == 1
    assert entries["items"][0]["actor"] == "ops@support.example"


def test_the_last_admin_stays(api: ApiClient) -> None:
    me = api.get("me", role="admin").get_json()
    admins = api.get("staff", role="admin", query={"role": "admin", "active": "true"}).get_json()
    others = [s for s in admins["items"] if s["id"] != me["id"]]
    for other in others:  # leave the demo admin as the only active one
        api.patch(f"staff/{other['id']}", role="admin", json={"active": False})
    refused = api.patch(f"staff/{me['id']}", role="admin", json={"role": "editor"})
    assert refused.status_code == 409 and "last active admin" in refused.get_json()["message"]
    assert api.patch(f"staff/{me['id']}", role="admin", json={"active": False}).status_code == 409
    assert api.get("me", role="admin").get_json()["role"] == "admin"


def test_tokens(api: ApiClient, rt: Runtime) -> None:
    user = api.post(
        "staff", role="admin", json={"email": "robot@support.example", "role": "viewer"}
    ).get_json()
    issued = api.post(f"staff/{user['id']}/tokens", role="admin", json={"name": "grafana"})
    token = issued.get_json()
    assert issued.status_code == 201, token
    assert issued.headers["Cache-Control"] == "no-store"
    assert token["token"].startswith("crt_") and token["prefix"] == token["token"][:8]
    assert api.get("me", role=None, headers=bearer(token["token"])).get_json()["role"] == "viewer"

    detail = api.get(f"staff/{user['id']}", role="admin").get_json()
    assert [t["name"] for t in detail["tokens"]] == ["grafana"]
    assert "token" not in detail["tokens"][0]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert (
        api.post(
            f"staff/{user['id']}/tokens", role="admin", json={"name": "old", "expires_at": past}
        ).status_code
        == 422
    )
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    expiring = api.post(
        f"staff/{user['id']}/tokens", role="admin", json={"name": "ci", "expires_at": soon}
    ).get_json()
    with rt.db.transaction() as session:
        row = session.get(ApiToken, expiring["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert api.get("me", role=None, headers=bearer(expiring["token"])).status_code == 401
    inactive = api.get(
        f"staff/{user['id']}/tokens", role="admin", query={"active": "false"}
    ).get_json()
    assert [t["name"] for t in inactive["items"]] == ["ci"]

    revoked = api.delete(f"staff/{user['id']}/tokens/{token['id']}", role="admin")
    assert revoked.status_code == 200 and revoked.get_json()["active"] is False
    assert api.get("me", role=None, headers=bearer(token["token"])).status_code == 401
    assert api.delete(f"staff/{user['id']}/tokens/{token['id']}", role="admin").status_code == 200
    assert api.delete(f"staff/{user['id']}/tokens/999999", role="admin").status_code == 404

    fresh = api.post(f"staff/{user['id']}/tokens", role="admin", json={"name": "x"}).get_json()
    api.patch(f"staff/{user['id']}", role="admin", json={"active": False})
    assert api.get("me", role=None, headers=bearer(fresh["token"])).status_code == 401
    refused = api.post(f"staff/{user['id']}/tokens", role="admin", json={"name": "y"})
    assert refused.status_code == 409
    with rt.db.session() as session:
        hashes = session.scalars(select(ApiToken.token_hash)).all()
        assert fresh["token"] not in hashes


def test_audit_log(api: ApiClient) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    api.post("queues", role="editor", json={"key": "t-audited", "name": "Audited", "team": "cse"})
    api.patch("queues/t-audited", role="editor", json={"name": "Audited again"})
    entries = api.get(
        "audit", role="viewer", query={"entity_type": "queue", "entity_id": "t-audited"}
    ).get_json()
    assert [e["action"] for e in entries["items"]] == ["queue.update", "queue.create"]
    newest = entries["items"][0]
    assert newest["actor"] == "editor@support.example"
    assert newest["before"]["name"] == "Audited" and newest["after"]["name"] == "Audited again"
    prefix = api.get(
        "audit",
        role="viewer",
        # Other tests share the database and may have changed queues in the last second.
        query={"action": "queue", "since": started.isoformat(), "entity_id": "t-audited"},
    )
    assert {e["action"] for e in prefix.get_json()["items"]} == {"queue.create", "queue.update"}
    exact = api.get("audit", role="viewer", query={"action": "queue.create"}).get_json()
    assert {e["action"] for e in exact["items"]} == {"queue.create"}
    mine = api.get("audit", role="viewer", query={"actor": "EDITOR@support.example"}).get_json()
    assert mine["total"] >= 2 and {e["actor"] for e in mine["items"]} == {"editor@support.example"}
    until = api.get("audit", role="viewer", query={"until": started.isoformat()}).get_json()
    assert all(e["entity_id"] != "t-audited" for e in until["items"])
    paged = api.get("audit", role="viewer", query={"per_page": 1}).get_json()
    assert len(paged["items"]) == 1 and paged["pages"] == paged["total"]
