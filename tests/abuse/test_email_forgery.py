"""Issue 12 items 1, 2 and 7, as a review found them still open: forged verdicts and threads.

DKIM-Signature tags read loosely, encoded words decoded inside authentication headers, a
sender's own Authentication-Results believed on the providers' paths, Received-SPF read without
its quoting, and automatic mail joining a thread it merely names. Over HTTP through the app, on
SQLite and PostgreSQL; the attacker owns evil.example, whose mail passes for evil.example.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from router.store.db import Database
from tests.abuse.conftest import POSTMARK, SENDGRID, basic
from tests.abuse.test_email_senders import (  # the module's app and its fixtures, shared
    ALICE,
    OURS,
    SUPPORT,
    client,  # noqa: F401
    clock_untouched,
    contact_of,
    db,  # noqa: F401
    mail_app,  # noqa: F401
    mailgun_parsed,
    not_routed_as_alice,
    open_contact,
    passing,
    post_mailgun,
    post_mime,
    raw_mail,
)


def post_sendgrid(client: FlaskClient, fields: dict[str, str]) -> TestResponse:
    return client.post(
        "/email/inbound/sendgrid",
        data=fields,
        headers={"Authorization": basic(*SENDGRID)},
        content_type="multipart/form-data",
    )


def post_postmark(client: FlaskClient, document: dict[str, Any]) -> TestResponse:
    return client.post(
        "/email/inbound/postmark", json=document, headers={"Authorization": basic(*POSTMARK)}
    )


def postmark_json(received_spf: str, *more: tuple[str, str]) -> tuple[str, dict[str, Any]]:
    """Return (Message-ID, a Postmark document from alice with this topmost Received-SPF)."""
    message_id = f"<{uuid.uuid4().hex}@mail.example>"
    headers = [("Received-SPF", received_spf), *more, ("Message-ID", message_id)]
    return message_id, {
        "From": ALICE,
        "FromFull": {"Email": ALICE, "Name": ""},
        "To": SUPPORT,
        "Subject": "[Sev1] Nobody can log in",
        "TextBody": "SSO is down.",
        "MessageID": str(uuid.uuid4()),
        "Headers": [{"Name": name, "Value": value} for name, value in headers],
    }


# -- DKIM-Signature tags (RFC 6376 3.2): names are case-sensitive, each tag once -----------------

FORGED_SIGNATURES = [
    # D= is an unknown tag to a verifier (ignored); d=evil.example is what Mailgun checked.
    "v=1; a=rsa-sha256; c=relaxed/relaxed; D=acme.example; d=evil.example; s=s1; "
    "h=from:to:subject; bh=xx; b=yy",
    # A tag twice makes the signature invalid: which d= passed is unknown.
    "v=1; a=rsa-sha256; d=acme.example; d=evil.example; s=s1; bh=xx; b=yy",
    # Not a tag list at all after d=.
    "v=1; a=rsa-sha256; d=acme.example; s=s1; bh=xx; b=yy; garbage",
    "v=1; a=rsa-sha256; d=acme.example;; s=s1; bh=xx; b=yy",
]


@pytest.mark.parametrize("signature", FORGED_SIGNATURES)
def test_a_dkim_signature_is_read_as_a_strict_tag_list(
    client: FlaskClient, db: Database, signature: str
) -> None:
    message_id, fields = mailgun_parsed(
        ALICE,
        sender="bounce@evil.example",
        spf="Fail",
        dkim="Pass",
        more_headers=[["DKIM-Signature", signature]],
    )
    answer = post_mailgun(client, fields).get_json()
    not_routed_as_alice(db, answer, message_id)
    assert answer["reason"] == "sender_not_verified" and answer["replies"] == []
    # The same signature in Mailgun's raw-MIME route.
    message_id, raw = raw_mail(ALICE, extra=f"DKIM-Signature: {signature}")
    body_mime = {"body-mime": raw.decode(), "sender": "bounce@evil.example"}
    answer = post_mailgun(
        client, {**body_mime, "X-Mailgun-Spf": "Fail", "X-Mailgun-Dkim-Check-Result": "Pass"}
    ).get_json()
    not_routed_as_alice(db, answer, message_id)


def test_an_upper_case_d_tag_cannot_stop_a_contacts_clock(
    client: FlaskClient, db: Database
) -> None:
    contact = open_contact(client, db)
    _, fields = mailgun_parsed(
        "ops@support.example",
        sender="bounce@evil.example",
        more_headers=[
            ["DKIM-Signature", "v=1; a=rsa-sha256; D=support.example; d=evil.example; s=s1; b=y"]
        ],
    )
    subject = f"Re: [#{contact.reference}] fixed, closing"
    headers = json.loads(fields["message-headers"])
    headers = [[n, subject if n == "Subject" else v] for n, v in headers]
    fields.update(subject=subject, **{"message-headers": json.dumps(headers)})
    answer = post_mailgun(client, fields).get_json()
    assert answer["contact"] != contact.reference, answer
    clock_untouched(db, contact)


def test_a_well_formed_signature_still_names_its_domain(client: FlaskClient, db: Database) -> None:
    signature = "v=1; a=rsa-sha256; d = acme.example ; s=s1;\r\n\tbh=ab+c/d==; b=xy\r\n z==;"
    message_id, fields = mailgun_parsed(
        ALICE, sender="bounce@esp.example", more_headers=[["DKIM-Signature", signature]]
    )
    answer = post_mailgun(client, fields).get_json()
    assert answer["status"] == "waiting", answer
    assert contact_of(db, message_id).account_id == "acme"


# -- encoded words are never decoded in a header read for verification ------------------------


@pytest.mark.parametrize(
    "signature",
    [
        "v=1; a=rsa-sha256; zz==?utf-8?q?1=3Bd=3Dacme.example?=; d=evil.example; s=s1; b=yy",
        "v=1; a=rsa-sha256; zz==?utf-8?q?1=3Bd=3Dacme.example?=; s=s1; bh=xx; b=yy",
    ],
)
def test_an_encoded_word_in_a_dkim_signature_is_not_decoded(
    client: FlaskClient, db: Database, signature: str
) -> None:
    message_id, raw = raw_mail(ALICE, extra=f"DKIM-Signature: {signature}")
    fields = {
        "body-mime": raw.decode(),
        "sender": "bounce@evil.example",
        "X-Mailgun-Spf": "Pass",
        "X-Mailgun-Dkim-Check-Result": "Pass",
    }
    answer = post_mailgun(client, fields).get_json()
    not_routed_as_alice(db, answer, message_id)
    message_id, fields = mailgun_parsed(
        ALICE, sender="bounce@evil.example", more_headers=[["DKIM-Signature", signature]]
    )
    answer = post_mailgun(client, fields).get_json()
    not_routed_as_alice(db, answer, message_id)


def test_an_encoded_word_in_our_hosts_results_is_not_decoded(
    client: FlaskClient, db: Database
) -> None:
    # The attacker's MAIL FROM local part, copied by our MTA into its own header.
    results = (
        f"{OURS}; spf=pass smtp.mailfrom==?utf-8?q?x=3B_dmarc=3Dpass_header.from=3Dacme.example"
        "_policy.x=3D?=@evil.example; dkim=none; dmarc=none header.from=acme.example"
    )
    message_id, raw = raw_mail(ALICE, results=results)
    answer = post_mime(client, raw).get_json()
    not_routed_as_alice(db, answer, message_id)
    assert answer["reason"] == "sender_not_verified"


# -- a sender's own Authentication-Results count on no provider's path ----------------------


FORGED_RESULTS = passing("acme.example")


def test_mailgun_ignores_authentication_results(client: FlaskClient, db: Database) -> None:
    message_id, fields = mailgun_parsed(
        ALICE,
        sender="bounce@evil.example",
        spf="Fail",
        dkim="Fail",
        more_headers=[["Authentication-Results", FORGED_RESULTS]],
    )
    not_routed_as_alice(db, post_mailgun(client, fields).get_json(), message_id)
    message_id, raw = raw_mail(ALICE, results=FORGED_RESULTS)
    fields = {"body-mime": raw.decode(), "sender": "bounce@evil.example", "X-Mailgun-Spf": "Fail"}
    not_routed_as_alice(db, post_mailgun(client, fields).get_json(), message_id)


def test_sendgrid_ignores_authentication_results(client: FlaskClient, db: Database) -> None:
    verdicts = {
        "SPF": "fail",
        "dkim": "{@evil.example : pass}",
        "envelope": json.dumps({"to": [SUPPORT], "from": "bounce@evil.example"}),
    }
    message_id, raw = raw_mail(ALICE, results=FORGED_RESULTS)
    head = raw.split(b"\r\n\r\n", 1)[0].decode() + "\r\n"
    parsed = {"headers": head, "from": ALICE, "to": SUPPORT, "subject": "x", "text": "hi"}
    answer = post_sendgrid(client, {**parsed, **verdicts}).get_json()
    not_routed_as_alice(db, answer, message_id)
    message_id, raw = raw_mail(ALICE, results=FORGED_RESULTS)
    answer = post_sendgrid(client, {"email": raw.decode(), **verdicts}).get_json()
    not_routed_as_alice(db, answer, message_id)


def test_postmark_ignores_authentication_results(client: FlaskClient, db: Database) -> None:
    failed = "Fail (x) identity=mailfrom; envelope-from=bounce@evil.example"
    message_id, document = postmark_json(failed, ("Authentication-Results", FORGED_RESULTS))
    not_routed_as_alice(db, post_postmark(client, document).get_json(), message_id)
    message_id, raw = raw_mail(ALICE, results=FORGED_RESULTS)
    _, document = postmark_json(failed)
    answer = post_postmark(client, {**document, "RawEmail": raw.decode()}).get_json()
    not_routed_as_alice(db, answer, message_id)


def test_raw_mime_from_our_mta_still_believes_our_host(client: FlaskClient, db: Database) -> None:
    message_id, raw = raw_mail(ALICE, results=FORGED_RESULTS)
    assert post_mime(client, raw).get_json()["status"] == "waiting"
    assert contact_of(db, message_id).account_id == "acme"


# -- Received-SPF is a key=value list with quoted strings (RFC 7208 9.1) -------------------------


@pytest.mark.parametrize(
    ("received_spf", "believed"),
    [
        # The quoted envelope-from holds what looks like a second one: evil.example is the domain.
        (
            "Pass (sender SPF authorized) identity=mailfrom; client-ip=203.0.113.9; "
            'helo=mx.evil.example; envelope-from="\\"x;envelope-from=y@acme.example;\\"@evil.example"'
            "; receiver=inbound.postmarkapp.com",
            False,
        ),
        # A key twice: which one the check was about is unknown.
        (
            "Pass identity=mailfrom; envelope-from=x@evil.example; envelope-from=alice@acme.example",
            False,
        ),
        ('Pass identity=mailfrom; helo="a;envelope-from=alice@acme.example"', False),
        ('Pass identity=mailfrom; envelope-from=alice@acme.example"x"', False),
        # A quoted address, and comments between pairs, are read as what they are.
        ('Pass (ok) identity=mailfrom; (why) envelope-from="alice@acme.example"', True),
        (
            "Pass (a (nested) comment; envelope-from=x@evil.example) "
            "envelope-from=alice@acme.example; identity=mailfrom;",
            True,
        ),
    ],
)
def test_received_spf_is_parsed_with_its_quoting(
    client: FlaskClient, db: Database, received_spf: str, believed: bool
) -> None:
    message_id, document = postmark_json(received_spf)
    answer = post_postmark(client, document).get_json()
    if believed:
        assert answer["status"] == "waiting", answer
    else:
        not_routed_as_alice(db, answer, message_id)


# -- automatic mail joins a contact only about a message we sent ------------------------------


def test_an_outsiders_auto_reply_naming_a_customers_message_is_kept_apart(
    client: FlaskClient, db: Database
) -> None:
    contact = open_contact(client, db)
    message_id, raw = raw_mail(
        "mallory@evil.example",
        subject="hello",
        extra=f"In-Reply-To: {contact.external_id}\r\nAuto-Submitted: auto-replied",
        body="Call +1 555 0100 to fix your SSO.",
    )
    answer = post_mime(client, raw).get_json()
    assert answer["outcome"] == "created" and answer["contact"] != contact.reference, answer
    assert answer["status"] == "recorded" and answer["replies"] == []
    kinds = [event.kind for event in contact_of(db, contact.external_id).events]
    assert "email_automatic" not in kinds
    assert contact_of(db, message_id).account_id is None


def test_a_bounce_quoting_a_customers_message_is_kept_apart(
    client: FlaskClient, db: Database
) -> None:
    contact = open_contact(client, db)
    for part in (
        f"Content-Type: message/rfc822\r\n\r\nMessage-ID: {contact.external_id}\r\nSubject: x\r\n\r\nx",
        f"Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: {contact.external_id}\r\n",
    ):
        message_id = f"<{uuid.uuid4().hex}@evil.example>"
        raw = (
            f"From: mallory@evil.example\r\nTo: {SUPPORT}\r\nSubject: Undeliverable: hello\r\n"
            f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=BB\r\n\r\n"
            "--BB\r\nContent-Type: text/plain\r\n\r\nPay the invoice at http://evil.example\r\n"
            f"--BB\r\n{part}\r\n--BB--\r\n"
        ).encode()
        answer = post_mime(client, raw).get_json()
        assert answer["outcome"] == "created" and answer["contact"] != contact.reference, answer
        assert answer["status"] == "recorded"
    kinds = [event.kind for event in contact_of(db, contact.external_id).events]
    assert "email_automatic" not in kinds


def test_a_quoted_message_id_threads_nobody_but_a_bounce_of_our_own_mail(
    client: FlaskClient, db: Database
) -> None:
    message_id, raw = raw_mail(f"Alice <{ALICE}>", results=passing("acme.example"))
    answer = post_mime(client, raw).get_json()
    contact = contact_of(db, message_id)
    ours = answer["replies"][0]["message_id"]
    # A verified admin quoting her own message as an attachment does not thread by it.
    quoting, raw = raw_mail(
        f"Alice <{ALICE}>",
        subject="see the attached",
        results=passing("acme.example"),
        extra="MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB",
        body=(
            "--BB\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--BB\r\n"
            f"Content-Type: message/rfc822\r\n\r\nMessage-ID: {message_id}\r\n\r\nx\r\n--BB--"
        ),
    )
    assert post_mime(client, raw).get_json()["outcome"] == "created"
    assert contact_of(db, quoting).id != contact.id
    # A bounce of our acknowledgement is threaded onto its contact, quoting our Message-ID.
    bounce = (
        f"From: MAILER-DAEMON@mx.acme.example\r\nTo: {SUPPORT}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{uuid.uuid4().hex}@mx>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {SUPPORT}\r\nMessage-ID: {ours}\r\n--b--\r\n"
    ).encode()
    answer = post_mime(client, bounce).get_json()
    assert answer["outcome"] == "threaded" and answer["contact"] == contact.reference, answer
    # An out-of-office answering our acknowledgement too.
    _, raw = raw_mail(
        f"Alice <{ALICE}>",
        subject="Automatic reply: away",
        extra=f"In-Reply-To: {ours}\r\nAuto-Submitted: auto-replied",
    )
    answer = post_mime(client, raw).get_json()
    assert answer["outcome"] == "threaded" and answer["contact"] == contact.reference, answer
    kinds = [event.kind for event in contact_of(db, message_id).events]
    assert kinds.count("email_automatic") == 2
