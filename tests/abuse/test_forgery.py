"""Forged signatures and tokens: every webhook and the portal refuse them, and store nothing.

Each case sits beside the genuine request it imitates, which is accepted, so a refusal proves
the forgery was spotted (not that the request was broken in some other way).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from channels.voice.signature import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER, sign
from router.runtime import EXTENSION_KEY
from router.services.logins import issue_token
from router.store.models import Admin
from tests.abuse.conftest import (
    MAILGUN_KEY,
    POSTMARK,
    SENDGRID,
    Guard,
    basic,
    mailgun_signature,
)
from tests.reliability.harness import (
    ACME_PIN,
    ADMIN,
    MIME_TOKEN,
    PORTAL_SECRET,
    PUBLIC,
    SECRET_KEY,
    TWILIO_TOKEN,
    email,
    gather_action,
    mime_message,
    portal_token,
    voice,
    voice_params,
)

# -- Twilio signatures --------------------------------------------------------------------------


def _signed_post(
    client: FlaskClient, target: str, params: dict[str, str], headers: dict[str, str]
) -> TestResponse:
    return client.post(target, data=params, headers=headers, base_url=PUBLIC)


def _forgeries(
    target: str, params: dict[str, str]
) -> dict[str, tuple[str, dict[str, str], dict[str, str]]]:
    """Return (what is sent, to where, with which headers) for each way of forging ``params``."""
    genuine = sign(TWILIO_TOKEN, PUBLIC + target, params)
    path, _, query = target.partition("?")
    other_call = {**params, "CallSid": f"CA{uuid.uuid4().hex}"}
    return {
        "no signature": (target, params, {}),
        "empty signature": (target, params, {SIGNATURE_HEADER: ""}),
        "garbage signature": (target, params, {SIGNATURE_HEADER: "not-base64!" * 40}),
        "wrong auth token": (
            target,
            params,
            {SIGNATURE_HEADER: sign("guessed-token-0123456789", PUBLIC + target, params)},
        ),
        "signed over http": (
            target,
            params,
            {
                SIGNATURE_HEADER: sign(
                    TWILIO_TOKEN, PUBLIC.replace("https", "http") + target, params
                )
            },
        ),
        "signed for another host": (
            target,
            params,
            {SIGNATURE_HEADER: sign(TWILIO_TOKEN, "https://evil.example" + target, params)},
        ),
        "signed for another path": (
            target,
            params,
            {SIGNATURE_HEADER: sign(TWILIO_TOKEN, PUBLIC + "/voice/fallback", params)},
        ),
        "query changed after signing": (
            path + "?" + urlencode({"step": "9"}),
            params,
            {SIGNATURE_HEADER: genuine},
        )
        if query
        else (path + "?step=1", params, {SIGNATURE_HEADER: genuine}),
        "digits changed after signing": (
            target,
            {**params, "Digits": "000000"},
            {SIGNATURE_HEADER: genuine},
        ),
        "parameter added after signing": (
            target,
            {**params, "Extra": "1"},
            {SIGNATURE_HEADER: genuine},
        ),
        "another call's signature": (target, other_call, {SIGNATURE_HEADER: genuine}),
        "unknown SharedKey": (
            target,
            params,
            {
                SIGNATURE_HEADER: genuine,
                SIGNATURE_SETTINGS_HEADER: "key=forged,algorithm=HMAC_SHA256",
            },
        ),
        "SharedKey claimed with the auth token": (
            target,
            params,
            {
                SIGNATURE_HEADER: sign(TWILIO_TOKEN, PUBLIC + target, params, "HMAC_SHA256"),
                SIGNATURE_SETTINGS_HEADER: "key=default,algorithm=HMAC_SHA256",
            },
        ),
    }


def test_forged_twilio_signatures_are_refused(abuse_app: Flask, guard: Guard) -> None:
    client = abuse_app.test_client()
    params = voice_params(f"CA{uuid.uuid4().hex}", "+13035557000")
    # The same webhook at two steps: a new call, and its PIN step.
    for target, sent in (
        ("/voice/incoming", params),
        ("/voice/pin?step=1", {**params, "Digits": ACME_PIN}),
    ):
        for name, (forged_target, forged_params, headers) in _forgeries(target, sent).items():
            before = guard.counts()
            response = _signed_post(client, forged_target, forged_params, headers)
            assert response.status_code == 403, name
            assert guard.counts() == before, name
            # The refusal names the problem without echoing the signature or the body.
            assert SIGNATURE_HEADER.lower() not in response.get_data(as_text=True).lower()
        genuine = voice(target, sent)
        accepted = client.open(genuine.path, **genuine.client_kwargs())
        assert accepted.status_code == 200
        if target == "/voice/incoming":
            assert "/voice/pin" in gather_action(accepted.data)


# -- email provider credentials -----------------------------------------------------------------


def test_forged_email_credentials_are_refused(abuse_app: Flask, guard: Guard) -> None:
    client = abuse_app.test_client()
    message_id, raw = mime_message()
    refused = {
        "no credentials": {"Content-Type": "message/rfc822"},
        "wrong bearer token": {
            "Content-Type": "message/rfc822",
            "Authorization": "Bearer " + MIME_TOKEN[::-1],
        },
        "token as Basic": {
            "Content-Type": "message/rfc822",
            "Authorization": basic("mime", MIME_TOKEN),
        },
        "token prefix": {
            "Content-Type": "message/rfc822",
            "Authorization": "Bearer " + MIME_TOKEN[:-1],
        },
    }
    for name, headers in refused.items():
        before = guard.counts()
        response = client.post("/email/inbound/mime", data=raw, headers=headers)
        assert response.status_code == 401, name
        assert guard.counts() == before
    postmark = {"From": ADMIN, "Subject": "x", "MessageID": uuid.uuid4().hex, "TextBody": "x"}
    for user, password in (("", ""), (POSTMARK[0], "wrong"), ("other", POSTMARK[1])):
        before = guard.counts()
        response = client.post(
            "/email/inbound/postmark",
            json=postmark,
            headers={"Authorization": basic(user, password)},
        )
        assert response.status_code == 401
        assert guard.counts() == before
    for user, password in ((SENDGRID[0], "wrong"), ("", "")):
        before = guard.counts()
        response = client.post(
            "/email/inbound/sendgrid",
            data={"from": ADMIN, "subject": "x", "text": "x"},
            headers={"Authorization": basic(user, password)},
        )
        assert response.status_code == 401
        assert guard.counts() == before
    genuine = email(raw, message_id)
    assert client.open(genuine.path, **genuine.client_kwargs()).status_code == 200


def test_mailgun_forged_stale_and_replayed_signatures_are_refused(
    abuse_app: Flask, guard: Guard
) -> None:
    client = abuse_app.test_client()
    message_id = f"<{uuid.uuid4().hex}@acme.example>"
    fields = {
        "sender": ADMIN,
        "from": ADMIN,
        "subject": "AD sync stopped",
        "body-plain": "x",
        "Message-Id": message_id,
    }
    fresh = mailgun_signature()
    forged = {
        "wrong key": {
            **fresh,
            "signature": mailgun_signature(token=fresh["token"], timestamp=fresh["timestamp"])[
                "signature"
            ][::-1],
        },
        "signature of another token": {**fresh, "token": uuid.uuid4().hex},
        "stale timestamp": mailgun_signature(timestamp=str(int(time.time()) - 3600)),
        "timestamp from the future": mailgun_signature(timestamp=str(int(time.time()) + 3600)),
        "not a timestamp": mailgun_signature(timestamp="yesterday"),
        "missing signature": {"timestamp": fresh["timestamp"], "token": fresh["token"]},
    }
    for name, signature in forged.items():
        before = guard.counts()
        response = client.post("/email/inbound/mailgun", data={**fields, **signature})
        assert response.status_code in (400, 401, 403), (name, response.status_code)
        assert guard.counts() == before, name
    assert client.post("/email/inbound/mailgun", data={**fields, **fresh}).status_code == 200
    # A captured signature reused for another message is a replay: refused, nothing stored.
    before = guard.counts()
    other = {**fields, "Message-Id": f"<{uuid.uuid4().hex}@acme.example>", "subject": "Forged"}
    replayed = client.post("/email/inbound/mailgun", data={**other, **fresh})
    assert replayed.status_code == 403
    assert guard.counts() == before
    assert MAILGUN_KEY not in replayed.get_data(as_text=True)
    # The very same delivery again (Mailgun re-sending one whose 2xx it lost) changes nothing.
    again = client.post("/email/inbound/mailgun", data={**fields, **fresh})
    assert again.status_code == 200 and again.json["outcome"] == "duplicate"
    assert guard.counts() == before


# -- portal tokens ------------------------------------------------------------------------------


def _unsigned(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _tampered(token: str, **changes: object) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.fixture(scope="session")
def inactive_admin(abuse_app: Flask) -> str:
    """An administrator the portal might still vouch for after they were deactivated."""
    db = abuse_app.extensions[EXTENSION_KEY].db
    with db.transaction() as session:
        session.add(Admin(account_id="acme", email="olga@acme.example", name="Olga", active=False))
    return "olga@acme.example"


def test_forged_and_unfit_portal_tokens_are_refused(
    abuse_app: Flask, guard: Guard, inactive_admin: str
) -> None:
    client = abuse_app.test_client()
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": ADMIN, "org": "acme", "iat": now, "exp": now + 300}
    staff_token = issue_token(abuse_app.extensions[EXTENSION_KEY].db, "ops@support.example").token
    forged = {
        "alg none": _unsigned(claims),
        "wrong secret": jwt.encode(
            claims, "a-guessed-portal-secret-0123456789abcdef", algorithm="HS256"
        ),
        "HS512 with the right secret": jwt.encode(claims, PORTAL_SECRET, algorithm="HS512"),
        "another of the service's secrets": jwt.encode(claims, SECRET_KEY, algorithm="HS256"),
        "signed by the Twilio token": jwt.encode(claims, TWILIO_TOKEN, algorithm="HS256"),
        "org changed after signing": _tampered(portal_token(), org="globex"),
        "sub changed after signing": _tampered(portal_token(), sub="bob@globex.example"),
        "expiry extended after signing": _tampered(
            portal_token(ttl=timedelta(seconds=-3600)), exp=now + 3600
        ),
        "expired": portal_token(ttl=timedelta(seconds=-600)),
        "no exp": jwt.encode({"sub": ADMIN, "org": "acme"}, PORTAL_SECRET, algorithm="HS256"),
        "no org": jwt.encode({"sub": ADMIN, "exp": now + 300}, PORTAL_SECRET, algorithm="HS256"),
        "issued in the future": jwt.encode(
            {**claims, "iat": now + 3600, "exp": now + 7200}, PORTAL_SECRET, algorithm="HS256"
        ),
        "exp as text": jwt.encode({**claims, "exp": "tomorrow"}, PORTAL_SECRET, algorithm="HS256"),
        "someone else's org": portal_token(ADMIN, "globex"),
        "not an admin": portal_token("mallory@evil.example", "acme"),
        "a deactivated admin": portal_token(inactive_admin, "acme"),
        "a staff API token": staff_token,
        "oversized": "a" * 10_000,
        "not a JWT": "Zm9vYmFy",
    }
    headers_only = {
        "no header": None,
        "Basic scheme": f"Basic {portal_token()}",
        "empty bearer": "Bearer ",
    }
    cases = {name: f"Bearer {token}" for name, token in forged.items()} | headers_only
    body = {"topic": "windows", "subject": "Agent down"}
    for name, authorization in cases.items():
        for path in ("/chat/sessions", "/portal/requests"):
            before = guard.counts()
            headers = {"Authorization": authorization} if authorization else {}
            response = client.post(path, json={**body, "description": "x"}, headers=headers)
            assert response.status_code == 401, (name, path, response.data)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert guard.counts() == before
    # The genuine token, and a partner's admin acting for an account the partner manages.
    assert (
        client.post(
            "/chat/sessions", json=body, headers={"Authorization": f"Bearer {portal_token()}"}
        ).status_code
        == 201
    )
    partner = portal_token("erin@northwind.example", "contoso")
    assert (
        client.post(
            "/chat/sessions", json=body, headers={"Authorization": f"Bearer {partner}"}
        ).status_code
        == 201
    )


def test_portal_tokens_open_nothing_in_the_staff_api_and_console(
    abuse_app: Flask, guard: Guard
) -> None:
    client = abuse_app.test_client()
    token = portal_token()
    before = guard.counts()
    for method, path in (
        ("GET", "/api/v1/contacts"),
        ("GET", "/api/v1/me"),
        ("POST", "/api/v1/queues"),
    ):
        response = client.open(
            path, method=method, json={}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, path
    assert (
        client.get("/console/contacts", headers={"Authorization": f"Bearer {token}"}).status_code
        == 302
    )
    assert guard.counts() == before


def test_console_refuses_forged_sessions_and_missing_csrf(abuse_app: Flask, guard: Guard) -> None:
    client = abuse_app.test_client()
    # A session cookie signed with another key is no session at all.
    from flask.sessions import SecureCookieSessionInterface

    forger = Flask("forger")
    forger.secret_key = "guessed-secret-key-0123456789"
    cookie = SecureCookieSessionInterface().get_signing_serializer(forger).dumps({"staff_id": 1})  # type: ignore[union-attr]
    client.set_cookie("session", cookie, domain="localhost")
    assert client.get("/console/contacts").status_code == 302
    # Logging in needs the form's CSRF token, even with the right password.
    login = {"email": "ops@support.example", "password": "demo-password-change-me"}
    assert client.post("/console/login", data=login).status_code == 400
    assert client.post("/console/login", data={**login, "csrf_token": "forged"}).status_code == 400
