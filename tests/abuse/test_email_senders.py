"""Issue 12 items 1 and 2: forged email senders, and outsiders stopping a contact's SLA clock.

Every attack goes over HTTP through the app (raw MIME, SendGrid, Mailgun, Postmark), on SQLite and
PostgreSQL. The app believes the Authentication-Results of one receiving host (ours) and treats
support.example as the staff domain; the attacker owns evil.example, whose mail passes SPF, DKIM
and DMARC for evil.example as real attacker mail would.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from router.runtime import EXTENSION_KEY
from router.services.demo import DEMO_STAFF_EMAIL
from router.services.logins import create_staff, issue_token
from router.store.db import Database
from router.store.models import Contact, ContactEvent
from router.store.models.email import EmailMessage
from tests.abuse.conftest import POSTMARK, SENDGRID, abuse_settings, basic
from tests.abuse.conftest import mailgun_signature as signed
from tests.conftest import AppCache
from tests.reliability.harness import MIME_TOKEN

OURS = "mx.router.example"
SUPPORT = "support@router.example"
ALICE = "alice@acme.example"  # an active admin of acme (premium)


@pytest.fixture(scope="module")
def mail_app(apps: AppCache, abuse_store: str) -> Iterator[Flask]:
    """Yield an app that trusts our receiving host and knows the staff domain."""
    application = apps.get(
        abuse_settings(
            abuse_store,
            email_trusted_authserv_ids=OURS,
            email_staff_domains="support.example",
            email_max_rejections_per_hour=10_000,
            # Alice is acknowledged throughout the module: the loop breaker must not hold one back.
            email_max_replies_per_hour=10_000,
        )
    )
    yield application
    application.extensions[EXTENSION_KEY].db.dispose()


@pytest.fixture
def client(mail_app: Flask) -> FlaskClient:
    return mail_app.test_client()


@pytest.fixture
def db(mail_app: Flask) -> Database:
    database: Database = mail_app.extensions[EXTENSION_KEY].db
    return database


def passing(domain: str, host: str = OURS) -> str:
    """Return the Authentication-Results a host adds for mail that passed for ``domain``."""
    return (
        f"{host}; spf=pass smtp.mailfrom=bounce@{domain}; dkim=pass header.d={domain}; "
        f"dmarc=pass header.from={domain}"
    )


def raw_mail(
    *from_values: str,
    subject: str = "[Sev1] Nobody can log in",
    results: str | None = None,
    extra: str = "",
    to: str = SUPPORT,
    body: str = "SSO is down for everyone since 09:00.",
) -> tuple[str, bytes]:
    """Return (Message-ID, raw message) with these From: values, as our MTA hands it over."""
    message_id = f"<{uuid.uuid4().hex}@mail.example>"
    lines = [f"Authentication-Results: {results}"] if results else []
    lines += [f"From: {value}" for value in from_values]
    lines += [
        f"To: {to}",
        f"Subject: {subject}",
        "Date: Mon, 07 Dec 2026 10:00:00 +0000",
        f"Message-ID: {message_id}",
    ]
    if extra:
        lines.append(extra)
    text = "\r\n".join(lines) + "\r\n\r\n" + body + "\r\n"
    return message_id, text.encode()


def post_mime(client: FlaskClient, raw: bytes) -> TestResponse:
    return client.post(
        "/email/inbound/mime",
        data=raw,
        headers={"Authorization": f"Bearer {MIME_TOKEN}", "Content-Type": "message/rfc822"},
    )


def post_mailgun(client: FlaskClient, fields: dict[str, str]) -> TestResponse:
    return client.post("/email/inbound/mailgun", data={**fields, **signed()})


def mailgun_parsed(
    from_value: str, *, sender: str, spf: str = "Pass", dkim: str = "Pass", **extra: Any
) -> tuple[str, dict[str, str]]:
    """Return (Message-ID, a Mailgun parsed-mode post) as Mailgun forwards it."""
    message_id = f"<{uuid.uuid4().hex}@mail.example>"
    headers = [
        ["From", from_value],
        ["To", SUPPORT],
        ["Subject", "[Sev1] Nobody can log in"],
        ["Message-Id", message_id],
        *extra.pop("more_headers", []),
    ]
    return message_id, {
        "recipient": SUPPORT,
        "sender": sender,
        "from": from_value,
        "subject": "[Sev1] Nobody can log in",
        "body-plain": "SSO is down.",
        "message-headers": json.dumps(headers),
        "Message-Id": message_id,
        "X-Mailgun-Spf": spf,
        "X-Mailgun-Dkim-Check-Result": dkim,
        **extra,
    }


def contact_of(db: Database, message_id: str) -> Contact:
    with db.session() as session:
        contact = session.scalar(
            select(Contact).where(Contact.channel == "email", Contact.external_id == message_id)
        )
        assert contact is not None, message_id
        _ = contact.events
        return contact


def not_routed_as_alice(db: Database, answer: dict[str, Any], message_id: str) -> Contact:
    contact = contact_of(db, message_id)
    assert answer["status"] == "rejected" and answer["queue"] is None, answer
    assert contact.account_id is None and contact.due_at is None
    return contact


# -- item 1: who the sender is ------------------------------------------------------------------

DISPLAY_NAME_TRICKS = [
    "alice@acme.example <mallory@evil.example>",
    "alice@acme.example (Alice) <mallory@evil.example>",
    "=?utf-8?q?alice=40acme.example=3E=2C?= <mallory@evil.example>",
]


@pytest.mark.parametrize("from_value", DISPLAY_NAME_TRICKS)
def test_a_display_name_never_wins_over_raw_mime(
    client: FlaskClient, db: Database, from_value: str
) -> None:
    message_id, raw = raw_mail(from_value, results=passing("evil.example"))
    answer = post_mime(client, raw).get_json()
    contact = not_routed_as_alice(db, answer, message_id)
    assert answer["reason"] == "not_an_admin"
    assert contact.from_address == "mallory@evil.example"


@pytest.mark.parametrize("from_value", DISPLAY_NAME_TRICKS)
def test_a_display_name_never_wins_over_mailgun(
    client: FlaskClient, db: Database, from_value: str
) -> None:
    message_id, fields = mailgun_parsed(from_value, sender="bounce@evil.example")
    answer = post_mailgun(client, fields).get_json()
    contact = not_routed_as_alice(db, answer, message_id)
    assert contact.from_address == "mallory@evil.example"
    # The same trick in Mailgun's raw-MIME route.
    message_id, raw = raw_mail(from_value, results=passing("evil.example"))
    body_mime = {"body-mime": raw.decode(), "sender": "bounce@evil.example"}
    answer = post_mailgun(client, {**body_mime, "X-Mailgun-Spf": "Pass"}).get_json()
    assert not_routed_as_alice(db, answer, message_id).from_address == "mallory@evil.example"


@pytest.mark.parametrize(
    "from_value",
    [
        "=?utf-8?b?YWxpY2VAYWNtZS5leGFtcGxl?=",
        "<=?utf-8?q?alice?=@acme.example>",
        "Alice <=?utf-8?b?YWxpY2U=?=@acme.example>",
    ],
)
def test_an_encoded_word_in_the_address_is_refused(
    client: FlaskClient, db: Database, from_value: str
) -> None:
    message_id, raw = raw_mail(from_value, results=passing("acme.example"))
    answer = post_mime(client, raw).get_json()
    not_routed_as_alice(db, answer, message_id)
    assert answer["reason"] == "sender_not_verified" and answer["replies"] == []

    message_id, fields = mailgun_parsed(from_value, sender="alice@acme.example")
    answer = post_mailgun(client, fields).get_json()
    not_routed_as_alice(db, answer, message_id)
    assert answer["reason"] == "sender_not_verified"


def test_two_from_headers_are_never_verified(client: FlaskClient, db: Database) -> None:
    # DMARC passed for the attacker's From:; the first From: names the admin.
    message_id, raw = raw_mail(ALICE, "mallory@evil.example", results=passing("evil.example"))
    answer = post_mime(client, raw).get_json()
    contact = not_routed_as_alice(db, answer, message_id)
    assert answer["reason"] == "sender_not_verified" and answer["replies"] == []
    assert "2 From: headers" in contact.events[0].data["sender"]["why"]

    message_id, fields = mailgun_parsed(
        ALICE, sender="bounce@evil.example", more_headers=[["From", "mallory@evil.example"]]
    )
    answer = post_mailgun(client, fields).get_json()
    not_routed_as_alice(db, answer, message_id)
    assert answer["reason"] == "sender_not_verified"


def test_a_mailgun_pass_for_an_unrelated_domain_is_not_believed(
    client: FlaskClient, db: Database
) -> None:
    message_id, fields = mailgun_parsed(
        f"Alice <{ALICE}>",
        sender="bounce@attacker.example",
        more_headers=[["DKIM-Signature", "v=1; a=rsa-sha256; d=attacker.example; s=k; b=x"]],
    )
    answer = post_mailgun(client, fields).get_json()
    not_routed_as_alice(db, answer, message_id)
    assert answer["reason"] == "sender_not_verified" and answer["replies"] == []


@pytest.mark.parametrize(
    "results",
    [
        None,  # nothing said: no longer "believed unless a check fails"
        passing("acme.example", host="mx.evil.example"),  # a host we do not trust
        f"{OURS}; spf=neutral smtp.mailfrom=acme.example; dkim=none",
        f"{OURS}; dkim=pass header.d=evil.example; spf=pass smtp.mailfrom=x@evil.example",
    ],
)
def test_raw_mime_is_believed_only_on_a_trusted_aligned_pass(
    client: FlaskClient, db: Database, results: str | None
) -> None:
    message_id, raw = raw_mail(f"Alice <{ALICE}>", results=results)
    answer = post_mime(client, raw).get_json()
    not_routed_as_alice(db, answer, message_id)
    assert answer["reason"] == "sender_not_verified" and answer["replies"] == []


def test_an_aligned_pass_from_our_host_is_believed(client: FlaskClient, db: Database) -> None:
    # A forged header below ours (the sender's own) changes nothing; ours is the topmost.
    message_id, raw = raw_mail(
        f"Alice <{ALICE}>",
        results=f"{OURS}; dkim=pass header.d=mail.acme.example",
        extra="Authentication-Results: mx.router.example; dmarc=fail header.from=evil.example",
    )
    answer = post_mime(client, raw).get_json()
    assert answer["status"] == "waiting" and answer["queue"], answer
    assert contact_of(db, message_id).account_id == "acme"


# -- each provider's verdict fields -------------------------------------------------------------


def sendgrid_parsed(envelope_from: str, dkim: str, spf: str = "pass") -> tuple[str, list[Any]]:
    message_id = f"<{uuid.uuid4().hex}@mail.example>"
    headers = f"From: Alice <{ALICE}>\nTo: {SUPPORT}\nMessage-ID: {message_id}\n"
    return message_id, [
        ("headers", headers),
        ("from", f"Alice <{ALICE}>"),
        ("to", SUPPORT),
        ("subject", "[Sev2] Agent offline"),
        ("text", "The agent is offline."),
        ("envelope", json.dumps({"to": [SUPPORT], "from": envelope_from})),
        ("SPF", spf),
        ("dkim", dkim),
    ]


@pytest.mark.parametrize(
    ("envelope_from", "dkim", "spf", "believed"),
    [
        (ALICE, "{@acme.example : pass}", "pass", True),
        ("bounce@esp.example", "{@acme.example : pass}", "softfail", True),  # DKIM aligned
        ("bounce@mail.acme.example", "none", "pass", True),  # SPF aligned (subdomain)
        ("bounce@attacker.example", "{@attacker.example : pass}", "pass", False),
        (ALICE, "{@acme.example : fail}", "fail", False),
    ],
)
def test_sendgrid_verdict_fields(
    client: FlaskClient,
    db: Database,
    envelope_from: str,
    dkim: str,
    spf: str,
    believed: bool,
) -> None:
    _, fields = sendgrid_parsed(envelope_from, dkim, spf)
    answer = client.post(
        "/email/inbound/sendgrid",
        data=dict(fields),
        headers={"Authorization": basic(*SENDGRID)},
        content_type="multipart/form-data",
    ).get_json()
    assert (answer["status"] == "waiting") is believed, answer
    if not believed:
        assert answer["reason"] == "sender_not_verified"
    # The same verdicts on SendGrid's raw mode (no header of a trusted host in the message).
    _, raw = raw_mail(f"Alice <{ALICE}>")
    raw_fields = {
        "email": raw.decode(),
        "envelope": json.dumps({"to": [SUPPORT], "from": envelope_from}),
        "SPF": spf,
        "dkim": dkim,
    }
    answer = client.post(
        "/email/inbound/sendgrid",
        data=raw_fields,
        headers={"Authorization": basic(*SENDGRID)},
        content_type="multipart/form-data",
    ).get_json()
    assert (answer["status"] == "waiting") is believed, answer


@pytest.mark.parametrize(
    ("sender", "spf", "dkim", "signatures", "believed"),
    [
        (ALICE, "Pass", "None", [], True),
        ("bounce@esp.example", "Pass", "Pass", ["d=acme.example"], True),
        ("bounce@esp.example", "Pass", "Pass", [], False),  # DKIM pass, but for which domain?
        ("bounce@esp.example", "Pass", "Pass", ["d=acme.example", "d=esp.example"], False),
        (ALICE, "Fail", "Fail", ["d=acme.example"], False),
    ],
)
def test_mailgun_verdict_fields(
    client: FlaskClient,
    db: Database,
    sender: str,
    spf: str,
    dkim: str,
    signatures: list[str],
    believed: bool,
) -> None:
    more = [["DKIM-Signature", f"v=1; a=rsa-sha256; {tag}; s=k; b=x"] for tag in signatures]
    _, fields = mailgun_parsed(
        f"Alice <{ALICE}>", sender=sender, spf=spf, dkim=dkim, more_headers=more
    )
    answer = post_mailgun(client, fields).get_json()
    assert (answer["status"] == "waiting") is believed, answer


def postmark_document(received_spf: str | None, raw: bytes | None = None) -> dict[str, Any]:
    message_id = f"<{uuid.uuid4().hex}@mail.example>"
    headers = [{"Name": "Message-ID", "Value": message_id}]
    if received_spf is not None:
        headers.insert(0, {"Name": "Received-SPF", "Value": received_spf})
    document: dict[str, Any] = {
        "From": ALICE,
        "FromFull": {"Email": ALICE, "Name": "Alice"},
        "To": SUPPORT,
        "Subject": "[Sev2] Agent offline",
        "TextBody": "The agent is offline.",
        "MessageID": str(uuid.uuid4()),
        "Headers": headers,
    }
    if raw is not None:
        document["RawEmail"] = raw.decode()
    return document


@pytest.mark.parametrize(
    ("received_spf", "believed"),
    [
        ("Pass (sender SPF authorized) identity=mailfrom; envelope-from=alice@acme.example", True),
        ("Pass (sender SPF authorized) identity=mailfrom; envelope-from=x@attacker.example", False),
        ("Pass identity=helo; envelope-from=alice@acme.example", False),
        ("SoftFail identity=mailfrom; envelope-from=alice@acme.example", False),
        (None, False),
    ],
)
def test_postmark_verdict_fields(
    client: FlaskClient, db: Database, received_spf: str | None, believed: bool
) -> None:
    auth = {"Authorization": basic(*POSTMARK)}
    answer = client.post(
        "/email/inbound/postmark", json=postmark_document(received_spf), headers=auth
    ).get_json()
    assert (answer["status"] == "waiting") is believed, answer
    # RawEmail included: the same verdict counts for the raw message.
    _, raw = raw_mail(f"Alice <{ALICE}>")
    answer = client.post(
        "/email/inbound/postmark", json=postmark_document(received_spf, raw), headers=auth
    ).get_json()
    assert (answer["status"] == "waiting") is believed, answer


def test_staff_see_that_a_sender_was_not_verified(
    client: FlaskClient, db: Database, mail_app: Flask
) -> None:
    message_id, raw = raw_mail(f"Alice <{ALICE}>", results=passing("acme.example", "mx.evil"))
    post_mime(client, raw)
    contact = contact_of(db, message_id)
    token = issue_token(db, DEMO_STAFF_EMAIL, name=f"t-{uuid.uuid4().hex[:8]}").token
    detail = client.get(
        f"/api/v1/contacts/{contact.id}", headers={"Authorization": f"Bearer {token}"}
    ).get_json()
    assert detail["sender"]["verified"] is False
    assert "no SPF, DKIM or DMARC pass aligned with acme.example" in detail["sender"]["why"]
    assert detail["decision"] == {"rejected": "sender_not_verified"}
    with db.session() as session:
        stored = session.scalar(select(EmailMessage).where(EmailMessage.message_id == message_id))
        assert stored is not None and stored.data["sender"]["verified"] is False
    # The console's contact page says so too.
    console = mail_app.test_client()
    page = console.get("/console/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    viewer, password = f"viewer-{uuid.uuid4().hex[:8]}@support.example", uuid.uuid4().hex
    create_staff(db, viewer, "viewer", password=password)
    login = {"email": viewer, "password": password, "csrf_token": csrf[1]}
    assert console.post("/console/login", data=login).status_code == 302
    html = console.get(f"/console/contacts/{contact.id}").get_data(as_text=True)
    assert 'id="sender-not-verified"' in html and "sender not verified" in html


# -- item 2: the SLA clock --------------------------------------------------------------------


def open_contact(client: FlaskClient, db: Database) -> Contact:
    """Open a premium contact as alice (verified), with a running SLA clock."""
    message_id, raw = raw_mail(f"Alice <{ALICE}>", results=passing("acme.example"))
    assert post_mime(client, raw).get_json()["status"] == "waiting"
    contact = contact_of(db, message_id)
    assert contact.sla_state == "ok" and contact.first_response_at is None
    return contact


def clock_untouched(db: Database, contact: Contact) -> None:
    after = contact_of(db, contact.external_id)
    assert after.first_response_at is None and after.sla_state == "ok"
    assert after.status == "waiting"
    kinds = [event.kind for event in after.events]
    assert "first_response" not in kinds and "email_reply" not in kinds


@pytest.mark.parametrize(
    ("from_value", "results"),
    [
        # The published attack: a staff-looking display name, the attacker's own passing domain.
        ("ops@support.example (Support) <mallory@evil.example>", passing("evil.example")),
        # A real staff address in the staff domain, but nothing proves it.
        ("Ops <ops@support.example>", None),
        ("Ops <ops@support.example>", passing("support.example", host="mx.evil.example")),
        # A verified sender of the staff domain who is not an active staff member.
        ("Eve <eve@support.example>", passing("support.example")),
    ],
)
def test_an_outsider_cannot_stop_a_contacts_clock(
    client: FlaskClient, db: Database, from_value: str, results: str | None
) -> None:
    contact = open_contact(client, db)
    message_id, raw = raw_mail(
        from_value, subject=f"Re: [#{contact.reference}] fixed, closing", results=results
    )
    answer = post_mime(client, raw).get_json()
    assert answer["outcome"] == "created" and answer["contact"] != contact.reference, answer
    assert answer["status"] == "rejected" and answer["queue"] is None
    clock_untouched(db, contact)
    # Kept apart, not lost: a separate, unrouted contact that says what it tried.
    kept = contact_of(db, message_id)
    assert kept.events[0].data["not_threaded"]["contact"] == contact.reference


def test_a_verified_staff_reply_records_the_first_response(
    client: FlaskClient, db: Database
) -> None:
    contact = open_contact(client, db)
    _, raw = raw_mail(
        "Ops <ops@support.example>",
        subject=f"Re: [#{contact.reference}] we are on it",
        results=passing("support.example"),
    )
    answer = post_mime(client, raw).get_json()
    assert answer["outcome"] == "threaded" and answer["contact"] == contact.reference
    after = contact_of(db, contact.external_id)
    assert after.first_response_at is not None and after.sla_state == "met"


def test_only_a_verified_admin_of_the_account_adds_to_its_thread(
    client: FlaskClient, db: Database
) -> None:
    contact = open_contact(client, db)
    subject = f"Re: [#{contact.reference}] more details"
    # Alice, unverified: kept apart.
    message_id, raw = raw_mail(f"Alice <{ALICE}>", subject=subject)
    assert post_mime(client, raw).get_json()["outcome"] == "created"
    assert (
        contact_of(db, message_id)
        .events[0]
        .data["not_threaded"]["why"]
        .startswith("the sender is not verified")
    )
    # Bob, a verified admin of another account: not onto acme's contact.
    _, raw = raw_mail(
        "Bob <bob@globex.example>", subject=subject, results=passing("globex.example")
    )
    assert post_mime(client, raw).get_json()["contact"] != contact.reference
    clock_untouched(db, contact)
    # Alice, verified: threaded (and the clock still runs: a customer's reply is no response).
    _, raw = raw_mail(f"Alice <{ALICE}>", subject=subject, results=passing("acme.example"))
    answer = post_mime(client, raw).get_json()
    assert answer["outcome"] == "threaded" and answer["contact"] == contact.reference
    after = contact_of(db, contact.external_id)
    assert after.first_response_at is None and after.sla_state == "ok"
    with db.session() as session:
        replies = session.scalars(
            select(ContactEvent.actor).where(
                ContactEvent.contact_id == contact.id, ContactEvent.kind == "email_reply"
            )
        ).all()
    assert replies == [ALICE]


def test_a_partner_admin_reaches_a_managed_customer_only_when_verified(
    client: FlaskClient, db: Database
) -> None:
    # erin (northwind, a partner) names contoso, a customer northwind manages.
    message_id, raw = raw_mail(
        "Erin <erin@northwind.example>",
        subject="[Sev3] Devices not enrolling",
        results=passing("northwind.example"),
        to="support+contoso@router.example",
    )
    answer = post_mime(client, raw).get_json()
    assert answer["status"] == "waiting", answer
    contact = contact_of(db, message_id)
    assert (contact.account_id, contact.via_partner_id) == ("contoso", "northwind")
    message_id, raw = raw_mail(
        "Erin <erin@northwind.example>",
        subject="[Sev3] Devices not enrolling",
        body="Account: Contoso\r\nThe devices do not enrol.",
    )
    assert post_mime(client, raw).get_json()["reason"] == "sender_not_verified"
