"""An email attached to a provider's parsed post (message/rfc822) is a file, never a 400.

SendGrid and Mailgun post a parsed message as a form whose files are its attachments; a
forwarded email, or the returned message of a bounce, is one of them. The form used to be
refused as "nested parts" (400), so the provider retried and then dropped the mail.
"""

from __future__ import annotations

import json
import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from router.store.db import Database
from router.store.models.email import EmailMessage as StoredEmail
from tests.functional.email.conftest import (
    SENDGRID_PASSWORD,
    SENDGRID_USER,
    SUPPORT,
    Inbox,
    basic,
    mailgun_signature,
    new_id,
    post_multipart,
    stored_contact,
)

pytestmark = pytest.mark.usefixtures("demo")

FORWARDED = (
    b"From: bob@partner.example\r\nTo: alice@acme.example\r\nSubject: the error\r\n"
    b"Message-ID: <x1@partner.example>\r\n\r\nError text\r\n"
)
# An attached message of 12,000 parts nested 2,000 deep: not walked while reading the form.
BOMB = (
    b"From: bob@partner.example\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=a0\r\n\r\n"
    + b"".join(
        b"--a%d\r\nContent-Type: multipart/mixed; boundary=a%d\r\n\r\n" % (i - 1, i)
        for i in range(1, 2000)
    )
    + b"".join(b"--a1999\r\n\r\nx\r\n" for _ in range(12_000))
    + b"--a1999--\r\n"
)


def sendgrid_post(
    client: FlaskClient,
    message_id: str,
    attached: bytes,
    *,
    sender: str = "alice@acme.example",
    envelope: str = "alice@acme.example",
    subject: str = "[Sev2] see the attached mail",
) -> dict[str, object]:
    head = f"From: {sender}\nTo: {SUPPORT}\nSubject: {subject}\nMessage-ID: {message_id}\n"
    fields = [
        ("headers", head.encode()),
        ("from", sender.encode()),
        ("to", SUPPORT.encode()),
        ("subject", subject.encode()),
        ("text", b"The user says the agent fails; the mail is attached."),
        ("SPF", b"pass"),
        ("envelope", json.dumps({"to": [SUPPORT], "from": envelope}).encode()),
        ("attachments", b"1"),
    ]
    response = post_multipart(
        client,
        "/email/inbound/sendgrid",
        fields,
        files=[("attachment1", "forwarded.eml", "message/rfc822", attached)],
        headers=basic(SENDGRID_USER, SENDGRID_PASSWORD),
    )
    assert response.status_code == 200, response.get_data()[:300]
    answer = response.get_json()
    assert isinstance(answer, dict)
    return answer


def mailgun_post(client: FlaskClient, message_id: str, attached: bytes) -> dict[str, object]:
    subject = "[Sev2] see the attached mail"
    pairs = [
        ["From", "alice@acme.example"],
        ["To", SUPPORT],
        ["Subject", subject],
        ["Message-Id", message_id],
    ]
    fields = {
        "recipient": SUPPORT,
        "sender": "alice@acme.example",
        "from": "alice@acme.example",
        "subject": subject,
        "body-plain": "The user says the agent fails; the mail is attached.",
        "message-headers": json.dumps(pairs),
        "Message-Id": message_id,
        "X-Mailgun-Spf": "Pass",
        "attachment-count": "1",
        **mailgun_signature(),
    }
    response = post_multipart(
        client,
        "/email/inbound/mailgun",
        [(name, value.encode()) for name, value in fields.items()],
        files=[("attachment-1", "forwarded.eml", "message/rfc822", attached)],
    )
    assert response.status_code == 200, response.get_data()[:300]
    answer = response.get_json()
    assert isinstance(answer, dict)
    return answer


def attachments(db: Database, message_id: str) -> list[tuple[str, str]]:
    with db.session() as session:
        stored = session.scalar(select(StoredEmail).where(StoredEmail.message_id == message_id))
        assert stored is not None
        return [(a["name"], a["type"]) for a in stored.data["attachments"]]


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun"])
def test_a_verified_admins_mail_with_an_attached_email_is_routed(
    client: FlaskClient, db: Database, inbox: Inbox, provider: str
) -> None:
    message_id = new_id()
    post = sendgrid_post if provider == "sendgrid" else mailgun_post
    answer = post(client, message_id, FORWARDED)
    assert answer["outcome"] == "created" and answer["status"] == "waiting", answer
    assert stored_contact(db, message_id).queue_key is not None
    assert attachments(db, message_id) == [("forwarded.eml", "message/rfc822")]
    assert len(inbox.to("alice@acme.example")) == 1  # acknowledged


def test_a_parsed_bounce_carrying_the_returned_message_is_recorded(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    message_id = new_id("mx.acme.example")
    answer = sendgrid_post(
        client,
        message_id,
        FORWARDED,
        sender="MAILER-DAEMON@mx.acme.example",
        envelope="",
        subject="Undelivered Mail Returned to Sender",
    )
    assert answer["status"] == "recorded" and answer["replies"] == [], answer
    assert inbox.messages == []


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun"])
def test_an_attached_email_is_not_walked_while_the_form_is_read(
    client: FlaskClient, db: Database, provider: str
) -> None:
    message_id = new_id()
    post = sendgrid_post if provider == "sendgrid" else mailgun_post
    started = time.monotonic()
    answer = post(client, message_id, BOMB)
    assert time.monotonic() - started < 3.0  # the form's own parts are all that is counted
    assert answer["status"] == "waiting", answer
    assert attachments(db, message_id) == [("forwarded.eml", "message/rfc822")]
