"""Each provider's endpoint with real-looking payloads: authentication, parsing, limits, storage."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from channels.email.replies import local_time
from router.core.checklist import LABELS
from router.store.db import Database
from router.store.models import Contact
from router.store.models.email import EmailMessage as StoredEmail
from router.store.models.email import WebhookReplayToken
from tests.functional.email.conftest import (
    MAILGUN_KEY,
    MIME_TOKEN,
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    SENDGRID_PASSWORD,
    SENDGRID_USER,
    SUPPORT,
    Inbox,
    basic,
    events,
    mailgun_signature,
    message,
    new_id,
    post_mime,
    post_multipart,
    post_sendgrid_raw,
    sendgrid_public_key,
    sendgrid_sign,
    stored_contact,
)

pytestmark = pytest.mark.usefixtures("demo")


def counts(db: Database) -> tuple[int, int]:
    with db.session() as session:
        contacts = session.scalar(select(func.count()).select_from(Contact)) or 0
        stored = session.scalar(select(func.count()).where(StoredEmail.direction == "in")) or 0
        return contacts, stored


# --- raw MIME ----------------------------------------------------------------------------


def test_raw_mime_new_contact_is_routed_and_acknowledged(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    msg = message(
        subject="[Sev1] Agent fails on all Windows laptops",
        body=(
            "Since 08:30 EST today the agent on 40 Windows laptops in our Sales group stopped "
            "reporting, so no policies apply. We tried restarting the agent service and rebooting "
            'two of them. The error message is "Agent failed to connect (0x80070005)".\n\n'
            "-- \nAlice Admin\nAcme Corp IT\n"
        ),
        attachments=[("jcagent.log", "text/plain", b"2026-11-27 09:00 windows agent start\n")],
    )
    response = post_mime(client, msg)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["outcome"] == "created" and answer["status"] == "waiting"
    assert answer["queue"] == "cse-windows"

    contact = stored_contact(db, str(msg["Message-ID"]))
    assert contact.reference == answer["contact"]
    assert (contact.account_id, contact.tier, contact.severity, contact.topic) == (
        "acme",
        "premium",
        "S1",
        "windows",
    )
    assert contact.category == "break-fix" and contact.from_address == "alice@acme.example"
    assert contact.due_at == contact.received_at + timedelta(hours=1)
    assert contact.checklist == {
        "description": True,
        "troubleshooting": True,
        "recognised_at": True,
        "errors": True,
        "resources": True,
        "agent_logs": True,
    }
    kinds = [event.kind for event in events(db, contact.id)]
    assert kinds == ["received", "routed", "sla_started", "email_sent"]
    received = events(db, contact.id)[0].data
    assert received["attachments"] == [{"name": "jcagent.log", "type": "text/plain", "size": 37}]
    assert received["classification"]["severity_marker"] == "Sev1"

    (ack,) = inbox.to("alice@acme.example")
    body = ack.get_content()
    assert ack["Subject"] == f"Re: [#{contact.reference}] [Sev1] Agent fails on all Windows laptops"
    assert ack["In-Reply-To"] == msg["Message-ID"] and ack["Auto-Submitted"] == "auto-replied"
    assert f"opened request {contact.reference}" in body
    assert contact.due_at is not None
    assert f"First response: by {local_time(contact.due_at, 'America/New_York')}." in body
    assert "Thank you for including everything" in body
    assert (
        answer["replies"][0]["sent"] is True
        and answer["replies"][0]["message_id"] == ack["Message-ID"]
    )


def test_raw_mime_non_utf8_mail_is_stored_readably(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    raw = (
        b"Authentication-Results: mx.router.example; dmarc=pass header.from=globex.example\r\n"
        b"From: =?koi8-r?b?8MXU0g==?= <bob@globex.example>\r\n"
        b"To: support@router.example\r\n"
        b"Subject: =?iso-2022-jp?b?GyRCJSglaSE8GyhC?= agent\r\n"
        b"Message-ID: <jis-1@globex.example>\r\n"
        b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b'--outer\r\nContent-Type: multipart/alternative; boundary="inner"\r\n\r\n'
        b"--inner\r\nContent-Type: text/plain; charset=windows-1252\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"=93Agent failed=94 \x00since 09:00=85\r\n"
        b"--inner\r\nContent-Type: text/html; charset=koi8-r\r\n\r\n<p>\xf4\xc5\xd3\xd4</p>\r\n"
        b"--inner--\r\n"
        b"--outer\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.log\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nbG9nIGxpbmU=\r\n"
        b"--outer--\r\n"
    )
    response = post_mime(client, raw)
    assert response.status_code == 200, response.get_json()
    contact = stored_contact(db, "<jis-1@globex.example>")
    assert contact.subject == "エラー agent"
    with db.session() as session:
        stored = session.scalar(
            select(StoredEmail).where(StoredEmail.message_id == "<jis-1@globex.example>")
        )
        assert stored is not None
        assert stored.data["from_name"] == "Петр"
        assert stored.data["text"].strip() == "“Agent failed” since 09:00…"
        assert "Тест" in stored.data["html"]
        assert stored.data["attachments"] == [
            {"name": "résumé.log", "type": "application/octet-stream", "size": 8}
        ]
    assert len(inbox.to("bob@globex.example")) == 1


def test_raw_mime_authentication_and_malformed_bodies(
    client: FlaskClient, db: Database, other_app: Any
) -> None:
    msg = message()
    assert post_mime(client, msg, token="wrong").status_code == 401
    no_token = client.post("/email/inbound/mime", data=msg.as_bytes())
    assert no_token.status_code == 401 and "bearer token" in no_token.get_json()["message"]
    for body, reason in [(b"", "empty"), (b"no headers at all\r\n", "no header fields")]:
        response = post_mime(client, body)
        assert response.status_code == 400 and reason in response.get_json()["message"]
    form = client.post(
        "/email/inbound/mime",
        data={"email": "x"},
        headers={"Authorization": f"Bearer {MIME_TOKEN}"},
        content_type="multipart/form-data",
    )
    assert form.status_code == 415
    unconfigured = post_mime(other_app(inbound_mime_token=None), msg)
    assert (
        unconfigured.status_code == 403
        and "INBOUND_MIME_TOKEN" in unconfigured.get_json()["message"]
    )
    assert counts(db) == (0, 0)


def test_oversize_messages_are_refused_with_413(db: Database, other_app: Any) -> None:
    small = other_app(email_max_message_bytes=4096)
    big = message(body="x" * 5000)
    response = post_mime(small, big)
    assert response.status_code == 413
    assert "4096-byte limit" in response.get_json()["message"]
    assert post_sendgrid_raw(small, big).status_code == 413
    assert post_mime(small, message()).status_code == 200  # under the limit
    assert counts(db) == (1, 1)


# --- SendGrid ----------------------------------------------------------------------------


def sendgrid_parsed_fields(message_id: str, text: bytes, charset: str) -> list[tuple[str, bytes]]:
    headers = (
        "Received: by mx.sendgrid.net with SMTP id abc\n"
        f"Message-ID: {message_id}\n"
        "Date: Fri, 27 Nov 2026 10:00:00 -0500\n"
        "From: =?utf-8?q?Alice_Admin?= <alice@acme.example>\n"
        f"To: {SUPPORT}\n"
        "Subject: =?utf-8?q?Agent_d=C3=A9faillant_on_Windows?=\n"
    )
    return [
        ("headers", headers.encode()),
        ("dkim", b"{@acme.example : pass}"),
        ("to", SUPPORT.encode()),
        ("from", b"Alice Admin <alice@acme.example>"),
        ("subject", "Agent défaillant on Windows".encode()),
        ("text", text),
        ("html", b"<p>" + text + b"</p>"),
        ("sender_ip", b"203.0.113.5"),
        ("envelope", json.dumps({"to": [SUPPORT], "from": "alice@acme.example"}).encode()),
        ("attachments", b"2"),
        (
            "attachment-info",
            json.dumps(
                {
                    "attachment1": {
                        "filename": "jcagent.log",
                        "name": "jcagent.log",
                        "type": "text/plain",
                    },
                    "attachment2": {
                        "filename": "screenshot.png",
                        "name": "screenshot.png",
                        "type": "image/png",
                    },
                }
            ).encode(),
        ),
        (
            "charsets",
            json.dumps(
                {
                    "to": "UTF-8",
                    "html": charset,
                    "subject": "UTF-8",
                    "from": "UTF-8",
                    "text": charset,
                }
            ).encode(),
        ),
        ("SPF", b"pass"),
        ("spam_score", b"0.1"),
    ]


def test_sendgrid_parsed_mode_with_a_non_utf8_body(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    message_id = new_id()
    text = "Le déploiement échoue depuis ce matin sur nos postes Windows.".encode("iso-8859-1")
    response = post_multipart(
        client,
        "/email/inbound/sendgrid",
        sendgrid_parsed_fields(message_id, text, "iso-8859-1"),
        files=[
            ("attachment1", "jcagent.log", "text/plain", b"agent log on windows 11\n"),
            ("attachment2", "screenshot.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32),
        ],
        headers=basic(SENDGRID_USER, SENDGRID_PASSWORD),
    )
    assert response.status_code == 200, response.get_json()
    contact = stored_contact(db, message_id)
    assert contact.subject == "Agent défaillant on Windows"
    assert contact.status == "waiting" and contact.topic == "windows"
    assert contact.checklist["agent_logs"] is True and contact.checklist["errors"] is True
    with db.session() as session:
        stored = session.scalar(select(StoredEmail).where(StoredEmail.message_id == message_id))
        assert stored is not None and stored.provider == "sendgrid"
        assert (
            stored.data["text"] == "Le déploiement échoue depuis ce matin sur nos postes Windows."
        )
        auth = stored.data["auth"]
        assert (auth["spf"], auth["dkim"], auth["dmarc"]) == ("pass", "pass", "none")
        assert stored.data["sender"]["verified"] is True
        assert "aligned with acme.example (sendgrid)" in stored.data["sender"]["why"]
        assert [a["name"] for a in stored.data["attachments"]] == ["jcagent.log", "screenshot.png"]
    assert len(inbox.to("alice@acme.example")) == 1


def test_sendgrid_raw_mode_and_credentials(
    client: FlaskClient, db: Database, inbox: Inbox, other_app: Any
) -> None:
    msg = message(subject="[Sev2] MacBook enrolment fails", body="Our macOS devices fail to enrol.")
    wrong = post_sendgrid_raw(client, msg, auth=(SENDGRID_USER, "wrong-password"))
    assert (
        wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == 'Basic realm="sendgrid"'
    )
    assert counts(db) == (0, 0)
    response = post_sendgrid_raw(client, msg)
    assert response.status_code == 200
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert (contact.severity, contact.topic, contact.queue_key) == ("S2", "mac", "cse-mac")
    assert len(inbox.to("alice@acme.example")) == 1
    unconfigured = post_sendgrid_raw(
        other_app(sendgrid_basic_user=None, sendgrid_basic_password=None), message()
    )
    assert (
        unconfigured.status_code == 403
        and "SENDGRID_BASIC_USER" in unconfigured.get_json()["message"]
    )
    not_a_form = client.post(
        "/email/inbound/sendgrid", json={}, headers=basic(SENDGRID_USER, SENDGRID_PASSWORD)
    )
    assert not_a_form.status_code == 415
    empty = post_multipart(
        client,
        "/email/inbound/sendgrid",
        [("SPF", b"pass")],
        headers=basic(SENDGRID_USER, SENDGRID_PASSWORD),
    )
    assert empty.status_code == 400 and "neither 'email'" in empty.get_json()["message"]
    bad_json = post_multipart(
        client,
        "/email/inbound/sendgrid",
        [("from", b"alice@acme.example"), ("charsets", b"{not json")],
        headers=basic(SENDGRID_USER, SENDGRID_PASSWORD),
    )
    assert bad_json.status_code == 400 and "charsets" in bad_json.get_json()["message"]
    assert counts(db) == (1, 1)


def test_sendgrid_signed_webhook(db: Database, other_app: Any) -> None:
    signed = other_app(
        sendgrid_basic_user=None,
        sendgrid_basic_password=None,
        sendgrid_webhook_public_key=sendgrid_public_key(),
    )

    def post(fields: list[tuple[str, bytes]], timestamp: int, tamper: bool = False) -> Any:
        boundary = "sgBoundary42"
        body = (
            b"".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                + value
                + b"\r\n"
                for name, value in fields
            )
            + f"--{boundary}--\r\n".encode()
        )
        signature = sendgrid_sign(str(timestamp).encode() + body)
        return signed.post(
            "/email/inbound/sendgrid",
            data=body + (b" " if tamper else b""),
            content_type=f"multipart/form-data; boundary={boundary}",
            headers={
                "X-Twilio-Email-Event-Webhook-Signature": signature,
                "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
            },
        )

    msg = message()
    fields = [("email", msg.as_bytes()), ("SPF", b"pass"), ("dkim", b"{@acme.example : pass}")]
    now = int(time.time())
    assert post(fields, now, tamper=True).status_code == 401
    stale = post(fields, now - 3600)
    assert stale.status_code == 401 and "freshness" in stale.get_json()["message"]
    unsigned = signed.post(
        "/email/inbound/sendgrid",
        data={"email": msg.as_string()},
        content_type="multipart/form-data",
    )
    assert unsigned.status_code == 401
    assert counts(db) == (0, 0)
    assert post(fields, now).status_code == 200
    assert counts(db) == (1, 1)


# --- Mailgun -----------------------------------------------------------------------------


def mailgun_fields(
    message_id: str, sender: str = "bob@globex.example", spf: str = "Pass"
) -> list[tuple[str, bytes]]:
    headers = [
        ["Received", "by mxa.mailgun.org with SMTP"],
        ["Message-Id", message_id],
        ["Date", "Fri, 27 Nov 2026 17:00:00 +0200"],
        ["From", f"Bob <{sender}>"],
        ["To", SUPPORT],
        ["Subject", "[Sev1] AD sync stopped"],
        ["X-Mailgun-Spf", spf],
        ["X-Mailgun-Dkim-Check-Result", "Pass"],
    ]
    return [
        ("recipient", SUPPORT.encode()),
        ("sender", sender.encode()),
        ("from", f"Bob <{sender}>".encode()),
        ("subject", b"[Sev1] AD sync stopped"),
        ("body-plain", b"AD sync stopped syncing users this morning.\n"),
        ("stripped-text", b"AD sync stopped syncing users this morning."),
        ("body-html", b"<p>AD sync stopped syncing users this morning.</p>"),
        ("message-headers", json.dumps(headers).encode()),
        ("Message-Id", message_id.encode()),
        ("X-Mailgun-Spf", spf.encode()),
        ("X-Mailgun-Dkim-Check-Result", b"Pass"),
        ("attachment-count", b"1"),
    ]


def post_mailgun(
    client: FlaskClient, fields: list[tuple[str, bytes]], signature: dict[str, str]
) -> Any:
    signed = fields + [(name, value.encode()) for name, value in signature.items()]
    files = [("attachment-1", "adsync.log", "text/plain", b"adsync: sync cycle failed\n")]
    return post_multipart(client, "/email/inbound/mailgun", signed, files=files)


def test_mailgun_good_stale_replayed_and_bad_signatures(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    message_id = new_id("globex.example")
    fields = mailgun_fields(message_id)
    now = int(time.time())

    stale = post_mailgun(client, fields, mailgun_signature(timestamp=now - 3600))
    assert stale.status_code == 401 and "stale" in stale.get_json()["message"]
    future = post_mailgun(client, fields, mailgun_signature(timestamp=now + 3600))
    assert future.status_code == 401 and "future" in future.get_json()["message"]
    bad = post_mailgun(client, fields, mailgun_signature(key="some-other-key-0123456789"))
    assert bad.status_code == 401 and "does not match" in bad.get_json()["message"]
    unsigned = post_multipart(client, "/email/inbound/mailgun", fields)
    assert (
        unsigned.status_code == 401
        and "missing Mailgun signature" in unsigned.get_json()["message"]
    )
    assert counts(db) == (0, 0)

    signature = mailgun_signature()
    good = post_mailgun(client, fields, signature)
    assert good.status_code == 200, good.get_json()
    contact = stored_contact(db, message_id)
    assert (contact.account_id, contact.tier, contact.severity, contact.topic) == (
        "globex",
        "standard",
        "S1",
        "directory",
    )
    assert contact.checklist["service_logs"] is True
    (ack,) = inbox.to("bob@globex.example")
    assert contact.due_at is not None
    assert local_time(contact.due_at, "Asia/Jerusalem") in ack.get_content()
    assert (
        LABELS["troubleshooting"] in ack.get_content()
        and LABELS["service_logs"] not in ack.get_content()
    )

    # Mailgun re-sending the same delivery (its 2xx was lost) is answered as stored, once.
    resent = post_mailgun(client, fields, signature)
    assert resent.status_code == 200, resent.get_json()
    # The same signed token on a different message is a replay.
    other = post_mailgun(client, mailgun_fields(new_id("globex.example")), signature)
    assert other.status_code == 403 and "replayed" in other.get_json()["message"]
    assert counts(db) == (1, 1)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookReplayToken)) == 1
    assert len(inbox.messages) == 1


def test_mailgun_unconfigured_and_malformed(
    client: FlaskClient, db: Database, other_app: Any
) -> None:
    fields = mailgun_fields(new_id("globex.example"))
    unconfigured = post_mailgun(other_app(mailgun_signing_key=None), fields, mailgun_signature())
    assert (
        unconfigured.status_code == 403
        and "MAILGUN_SIGNING_KEY" in unconfigured.get_json()["message"]
    )
    broken = [
        (name, b"[not json" if name == "message-headers" else value) for name, value in fields
    ]
    response = post_mailgun(client, broken, mailgun_signature())
    assert response.status_code == 400 and "message-headers" in response.get_json()["message"]
    no_sender = [(n, v) for n, v in fields if n not in ("from", "message-headers")]
    assert post_mailgun(client, no_sender, mailgun_signature()).status_code == 400
    assert counts(db) == (0, 0)


def test_mailgun_raw_mime_route(client: FlaskClient, db: Database) -> None:
    msg = message(
        sender="Bob <bob@globex.example>",
        subject="Linux agent crash",
        body="The agent crashes on ubuntu.",
    )
    fields = [
        ("body-mime", msg.as_bytes()),
        ("sender", b"bob@globex.example"),
        ("X-Mailgun-Spf", b"Pass"),
    ]
    assert post_mailgun(client, fields, mailgun_signature()).status_code == 200
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert (contact.account_id, contact.topic) == ("globex", "linux")


# --- Postmark ----------------------------------------------------------------------------


def postmark_document(message_id: str, sender: str = "carol@initech.example") -> dict[str, Any]:
    return {
        "FromName": "Carol",
        "MessageStream": "inbound",
        "From": sender,
        "FromFull": {"Email": sender, "Name": "Carol", "MailboxHash": ""},
        "To": f'"Support" <{SUPPORT}>',
        "ToFull": [{"Email": SUPPORT, "Name": "Support", "MailboxHash": ""}],
        "Cc": "",
        "CcFull": [],
        "OriginalRecipient": SUPPORT,
        "Subject": "SSO login fails with SAML error",
        "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019b",
        "ReplyTo": "",
        "MailboxHash": "",
        "Date": "Fri, 27 Nov 2026 15:00:00 +0000",
        "TextBody": "Since yesterday SAML SSO fails for all users with error: invalid audience.",
        "HtmlBody": "<p>Since yesterday SAML SSO fails for all users.</p>",
        "StrippedTextReply": "",
        "Tag": "",
        "Headers": [
            {"Name": "Return-Path", "Value": f"<{sender}>"},
            {
                "Name": "Received-SPF",
                "Value": "Pass (sender SPF authorized) identity=mailfrom; client-ip=203.0.113.9; "
                f"envelope-from={sender}; receiver=inbound.postmarkapp.com",
            },
            {"Name": "Message-ID", "Value": message_id},
            {"Name": "X-Spam-Status", "Value": "No"},
        ],
        "Attachments": [
            {
                "Name": "error.png",
                "Content": base64.b64encode(b"\x89PNG fake").decode(),
                "ContentType": "image/png",
                "ContentLength": 9,
            }
        ],
    }


def test_postmark_good_and_bad_credentials(
    client: FlaskClient, db: Database, inbox: Inbox, other_app: Any
) -> None:
    message_id = new_id("initech.example")
    document = postmark_document(message_id)
    wrong = client.post(
        "/email/inbound/postmark", json=document, headers=basic(POSTMARK_USER, "nope")
    )
    assert (
        wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == 'Basic realm="postmark"'
    )
    missing = client.post("/email/inbound/postmark", json=document)
    assert missing.status_code == 401
    assert counts(db) == (0, 0)

    good = client.post(
        "/email/inbound/postmark", json=document, headers=basic(POSTMARK_USER, POSTMARK_PASSWORD)
    )
    assert good.status_code == 200, good.get_json()
    contact = stored_contact(db, message_id)
    assert (contact.account_id, contact.tier, contact.topic, contact.status) == (
        "initech",
        "trial",
        "identity",
        "waiting",
    )
    assert contact.due_at is None and contact.checklist["errors"] is True
    (ack,) = inbox.to("carol@initech.example")
    assert (
        "First response: there is none: trial support has no contractual first-response time"
        in ack.get_content()
    )
    unconfigured = other_app(postmark_basic_user=None).post(
        "/email/inbound/postmark", json=document
    )
    assert (
        unconfigured.status_code == 403
        and "POSTMARK_BASIC_USER" in unconfigured.get_json()["message"]
    )


def test_postmark_mail_with_a_lone_surrogate_is_kept_not_refused(
    client: FlaskClient, db: Database
) -> None:
    # The staff API refuses lone surrogates (400); a provider's mail must not be dropped for one.
    message_id = new_id("initech.example")
    document = postmark_document(message_id)
    document["Subject"] = "SSO fails \ud800 since today"
    body = json.dumps(document).encode()
    assert b"\\ud800" in body
    response = client.post(
        "/email/inbound/postmark",
        data=body,
        content_type="application/json",
        headers=basic(POSTMARK_USER, POSTMARK_PASSWORD),
    )
    assert response.status_code == 200, response.get_json()
    assert stored_contact(db, message_id).subject == "SSO fails \ufffd since today"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "must be a JSON object"),
        (b'{"Subject": "no sender"}', "application/json", 400, "no 'From'"),
        (
            b'{"From": "carol@initech.example", "Subject": 5}',
            "application/json",
            400,
            "'Subject' must be a string",
        ),
        (
            b'{"From": "carol@initech.example", "Attachments": "x"}',
            "application/json",
            400,
            "'Attachments' must be a list",
        ),
        (b"From: a@b\r\n\r\nx", "message/rfc822", 415, "expected application/json"),
    ],
)
def test_postmark_malformed_payloads(
    client: FlaskClient, db: Database, body: bytes, content_type: str, status: int, reason: str
) -> None:
    response = client.post(
        "/email/inbound/postmark",
        data=body,
        content_type=content_type,
        headers=basic(POSTMARK_USER, POSTMARK_PASSWORD),
    )
    assert response.status_code == status and reason in response.get_json()["message"]
    assert counts(db) == (0, 0)


def test_mailgun_key_in_settings_is_not_logged(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    fields = mailgun_fields(new_id("globex.example"))
    with caplog.at_level("DEBUG"):
        post_mailgun(client, fields, mailgun_signature())
        post_mime(client, message())
    assert MAILGUN_KEY not in caplog.text and MIME_TOKEN not in caplog.text
