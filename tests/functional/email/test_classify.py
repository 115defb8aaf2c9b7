"""Classification (severity, category, topic, attachments) and the intake checklist, from policy;
automatic mail (reports, auto-replies) recognised on every provider's path."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from channels.email import checklist
from channels.email.automatic import detect_automatic
from channels.email.classify import (
    ClassifierRules,
    classify,
    contact_reference,
    own_text,
    severity_of,
)
from channels.email.normalise import Attachment
from config.policy import Policy
from router.core.domain import Category, Severity, Topic
from router.store.db import Database
from router.store.models.email import EmailOutbox
from tests.functional.email.conftest import (
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    SENDGRID_PASSWORD,
    SENDGRID_USER,
    SUPPORT,
    Inbox,
    basic,
    mailgun_signature,
    new_id,
    post_mime,
    post_multipart,
    stored_messages,
)


@pytest.fixture(scope="module")
def rules(policy: Policy) -> ClassifierRules:
    return ClassifierRules.from_policy(policy)


@pytest.mark.parametrize(
    ("subject", "body", "severity", "marker"),
    [
        ("[Sev1] Everything is down", "", Severity.S1, "Sev1"),
        ("Sev 2: agent broken", "", Severity.S2, "Sev 2"),
        ("sev-1 outage", "", Severity.S1, "sev-1"),
        ("Severity 2 - login failures", "", Severity.S2, "Severity 2"),
        ("Severity: S1 - login failures", "", Severity.S1, "Severity: S1"),
        ("S3 minor question about policies", "", Severity.S3, "S3"),
        ("[S1] MFA rejected for all users", "", Severity.S1, "[S1]"),
        ("Login problem", "Impact: severity level 2 for our team", Severity.S2, "severity level 2"),
        ("Login problem", "We would rate this [S1].", Severity.S1, "[S1]"),
        # "S3" in a body is usually Amazon S3, not a severity; "Severity 10" is not one either.
        ("Backup problem", "Our S1 bucket in Amazon S3 is fine", Severity.S3, None),
        ("Severity 10 issue", "", Severity.S3, None),
        ("Agent question", "", Severity.S3, None),
        # The subject is read first.
        ("[Sev2] agent", "Severity 1", Severity.S2, "Sev2"),
    ],
)
def test_severity_markers(subject: str, body: str, severity: Severity, marker: str | None) -> None:
    assert severity_of(subject, body) == (severity, marker)


@pytest.mark.parametrize(
    ("subject", "body", "category"),
    [
        ("Agent fails to start", "", Category.BREAK_FIX),
        ("Question about our invoice", "The renewal amount looks wrong.", Category.LICENSING),
        ("Feature request: dark mode", "", Category.FEATURE_REQUEST),
        ("Help with Okta migration", "We plan to migrate 500 users.", Category.MIGRATION),
        ("SOC 2 security questionnaire", "", Category.SECURITY),
        ("Training for new admins", "Do you run a webinar?", Category.TRAINING),
        ("I want to escalate", "This is a complaint about response times.", Category.ESCALATION),
        ("Hello", "Nothing in particular", Category.BREAK_FIX),
    ],
)
def test_category_keywords_come_from_the_policy(
    rules: ClassifierRules, subject: str, body: str, category: Category
) -> None:
    assert classify(subject, body, [], rules).category is category


@pytest.mark.parametrize(
    ("subject", "body", "attachments", "topic"),
    [
        ("Agent fails on Windows 11", "", [], Topic.WINDOWS),
        ("MacBook enrolment", "Our macOS devices fail", [], Topic.MAC),
        ("SSO broken", "SAML login fails after the change", [], Topic.IDENTITY),
        ("Sync stopped", "", [Attachment("adsync.log", "text/plain", 10)], Topic.DIRECTORY),
        (
            "Import stopped",
            "",
            [Attachment("JumpCloud_AD_Integration.log", "text/plain", 10)],
            Topic.DIRECTORY,
        ),
        (
            "Agent broken",
            "",
            [Attachment("jcagent.log", "text/plain", 10, "2026 agent on windows")],
            Topic.WINDOWS,
        ),
        (
            "Agent broken",
            "",
            [Attachment("jcagent.log", "text/plain", 10, "Darwin kernel 23")],
            Topic.MAC,
        ),
        (
            "Agent broken",
            "It lives in /var/log on our ubuntu servers",
            [Attachment("jcagent.log", "text/plain", 10)],
            Topic.LINUX,
        ),
        (
            "Agent broken",
            "",
            [Attachment("C:\\Windows\\Temp\\jcagent.log", "text/plain", 10)],
            Topic.WINDOWS,
        ),
        ("Something odd", "", [], None),
    ],
)
def test_topics_from_keywords_and_attachment_names(
    rules: ClassifierRules,
    subject: str,
    body: str,
    attachments: list[Attachment],
    topic: Topic | None,
) -> None:
    assert classify(subject, body, attachments, rules).topic is topic


def test_quoted_text_and_signatures_are_ignored() -> None:
    body = (
        "New problem with macOS.\n"
        "> old quoted line about windows\n"
        "-- \nAlice, Acme (windows team)\n"
    )
    assert own_text(body) == "New problem with macOS."
    gmail = "Thanks!\n\nOn Fri, Nov 27, 2026 at 10:00 AM Support <support@router.example>\nwrote:\n> Severity: S1\n"
    assert own_text(gmail) == "Thanks!"
    outlook = "See log.\n\nFrom: Support <support@router.example>\nSent: Friday\nSubject: [Sev1]\n"
    assert own_text(outlook) == "See log."


def test_full_checklist_is_detected() -> None:
    text = (
        "Since this morning at 09:10 EST the agent on 40 laptops in the Sales group stopped "
        "reporting to the console and policies no longer apply to anyone in that department. "
        "We tried restarting the agent service and rebooting two machines. The error message "
        'is "Agent failed to connect (0x80070005)". Affected users: jane@acme.example.'
    )
    found = checklist.detect(
        text,
        [Attachment("jcagent.log", "text/plain", 10), Attachment("err.png", "image/png", 10)],
        category=Category.BREAK_FIX,
        topic=Topic.WINDOWS,
        agent_log_name="jcagent.log",
        service_log_names=["adsync.log"],
    )
    assert found.missing == ()
    assert found.to_dict() == {
        "description": True,
        "troubleshooting": True,
        "recognised_at": True,
        "errors": True,
        "resources": True,
        "agent_logs": True,
    }


def test_checklist_items_depend_on_category_and_topic() -> None:
    def keys(category: Category | None, topic: Topic | None) -> tuple[str, ...]:
        return checklist.applicable(category, topic)

    base = ("description", "troubleshooting", "recognised_at", "errors", "resources")
    assert keys(Category.BREAK_FIX, Topic.WINDOWS) == (*base, "agent_logs")
    assert keys(Category.BREAK_FIX, Topic.DIRECTORY) == (*base, "service_logs")
    assert keys(Category.BREAK_FIX, Topic.IDENTITY) == base
    assert keys(None, None) == (*base, "agent_logs")
    assert keys(Category.LICENSING, None) == ()


def test_a_terse_message_is_missing_most_items(rules: ClassifierRules) -> None:
    result = classify("AD sync broken", "Please help.", [], rules)
    assert result.topic is Topic.DIRECTORY
    assert result.checklist.missing == (
        "description",
        "troubleshooting",
        "recognised_at",
        "errors",
        "resources",
        "service_logs",
    )
    labels = checklist.missing_labels(result.checklist.to_dict())
    assert labels[-1].startswith("The service logs: AD Import")


def test_service_logs_are_found_by_attachment(rules: ClassifierRules) -> None:
    result = classify("AD sync broken", "x", [Attachment("adsync.log", "text/plain", 5)], rules)
    assert result.checklist.to_dict()["service_logs"] is True


@pytest.mark.parametrize(
    ("subject", "reference"),
    [
        ("Re: [#C-1042] Agent fails", 1042),
        ("Re: Agent fails [C-7]", 7),
        ("About (#C-12)", 12),
        ("Follow-up on #C-99", 99),
        ("Re: Agent fails", None),
        ("ABC-123 ticket", None),
    ],
)
def test_contact_references_in_subjects(subject: str, reference: int | None) -> None:
    assert contact_reference(subject) == reference


def test_an_account_line_names_the_managed_customer(rules: ClassifierRules) -> None:
    result = classify("Agent fails", "Hi,\nAccount: Contoso\nThe agent fails.", [], rules)
    assert result.account_hint == "Contoso"


# --- automatic mail: reports and auto-replies, from every provider's fields ----------------

EXCHANGE = "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.example"
DATE = "Fri, 27 Nov 2026 10:00:00 -0500"


@dataclass(frozen=True)
class Report:
    """One signal that a message is automatic, and nothing else that would give it away."""

    sender: str
    subject: str
    envelope: str  # "" is the null sender <>
    content_type: str = "text/plain; charset=utf-8"
    extra: tuple[tuple[str, str], ...] = ()


MULTIPART_REPORT = 'multipart/report; report-type=delivery-status; boundary="r"'
SIGNALS = {
    "null-envelope": Report("alice@acme.example", "Re: Agent down", ""),
    "multipart-report": Report(
        "alice@acme.example", "Re: Agent down", "alice@acme.example", MULTIPART_REPORT
    ),
    "exchange-sender": Report(EXCHANGE, "Unzustellbar: Agent down", EXCHANGE),
    # A subject alone makes mail automatic only from a sender nobody verified (a verified
    # admin may write "Unzustellbar: ..." about a problem): the envelope is not aligned.
    "german-subject": Report(
        "alice@acme.example", "Unzustellbar: Agent down", "bounces@relay.example"
    ),
    "french-auto-reply": Report(
        "alice@acme.example", "Réponse automatique : absent", "a@relay.example"
    ),
    "failed-recipients": Report(
        "alice@acme.example",
        "Re: Agent down",
        "a@acme.example",
        extra=(("X-Failed-Recipients", "x@y.example"),),
    ),
    "exchange-auto-reply": Report(
        "alice@acme.example",
        "Re: Agent down",
        "alice@acme.example",
        extra=(("X-MS-Exchange-Inbox-Rules-Loop", "alice@acme.example"),),
    ),
}
MODES = (
    "mime",
    "sendgrid-parsed",
    "sendgrid-raw",
    "mailgun-parsed",
    "mailgun-raw",
    "postmark-json",
    "postmark-raw",
)


def _header_pairs(report: Report, message_id: str, *, return_path: bool) -> list[tuple[str, str]]:
    pairs = [
        ("From", report.sender),
        ("To", SUPPORT),
        ("Subject", report.subject),
        ("Date", DATE),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
        ("Content-Type", report.content_type),
        *report.extra,
    ]
    if return_path:
        pairs.insert(0, ("Return-Path", f"<{report.envelope}>"))
    return pairs


def _body(report: Report) -> str:
    if report.content_type.startswith("multipart/report"):
        return (
            "--r\r\nContent-Type: text/plain\r\n\r\nDelivery has failed.\r\n"
            "--r\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.contoso.example\r\n\r\n"
            "Final-Recipient: rfc822; x@y.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            "--r--\r\n"
        )
    return "Die Nachricht konnte nicht zugestellt werden.\r\n"


def _raw(report: Report, message_id: str, *, return_path: bool) -> bytes:
    head = "".join(
        f"{n}: {v}\r\n" for n, v in _header_pairs(report, message_id, return_path=return_path)
    )
    return (head + "\r\n" + _body(report)).encode()


def _post(client: FlaskClient, mode: str, report: Report, message_id: str) -> Any:
    text = "Die Nachricht konnte nicht zugestellt werden."
    if mode == "mime":
        return post_mime(client, _raw(report, message_id, return_path=True))
    if mode.startswith("sendgrid"):
        common = [
            ("envelope", json.dumps({"to": [SUPPORT], "from": report.envelope}).encode()),
            ("SPF", b"pass"),
            ("dkim", b"none"),
            ("charsets", json.dumps({"subject": "UTF-8", "from": "UTF-8"}).encode()),
        ]
        if mode == "sendgrid-raw":
            fields = [("email", _raw(report, message_id, return_path=False)), *common]
        else:
            block = "".join(
                f"{n}: {v}\n" for n, v in _header_pairs(report, message_id, return_path=False)
            )
            fields = [
                ("headers", block.encode()),
                ("from", report.sender.encode()),
                ("to", SUPPORT.encode()),
                ("subject", report.subject.encode()),
                ("text", text.encode()),
                *common,
            ]
        return post_multipart(
            client,
            "/email/inbound/sendgrid",
            fields,
            headers=basic(SENDGRID_USER, SENDGRID_PASSWORD),
        )
    if mode.startswith("mailgun"):
        signature = [(k, v.encode()) for k, v in mailgun_signature().items()]
        common = [("sender", report.envelope.encode()), ("X-Mailgun-Spf", b"None"), *signature]
        if mode == "mailgun-raw":
            fields = [("body-mime", _raw(report, message_id, return_path=False)), *common]
        else:
            pairs = _header_pairs(report, message_id, return_path=False)
            fields = [
                ("recipient", SUPPORT.encode()),
                ("from", report.sender.encode()),
                ("subject", report.subject.encode()),
                ("body-plain", text.encode()),
                ("message-headers", json.dumps([list(pair) for pair in pairs]).encode()),
                *common,
            ]
        return post_multipart(client, "/email/inbound/mailgun", fields)
    document: dict[str, Any] = {"MessageID": uuid.uuid4().hex, "MailboxHash": ""}
    if mode == "postmark-raw":
        document["RawEmail"] = _raw(report, message_id, return_path=True).decode()
    else:
        pairs = _header_pairs(report, message_id, return_path=True)
        document.update(
            From=report.sender,
            FromFull={"Email": report.sender, "Name": ""},
            To=SUPPORT,
            Subject=report.subject,
            TextBody=text,
            Headers=[
                {"Name": n, "Value": v} for n, v in pairs if n not in ("From", "To", "Subject")
            ],
        )
    return client.post(
        "/email/inbound/postmark",
        json=document,
        headers=basic(POSTMARK_USER, POSTMARK_PASSWORD),
    )


@pytest.mark.parametrize("signal", list(SIGNALS))
@pytest.mark.parametrize("mode", MODES)
def test_reports_and_auto_replies_are_recognised_on_every_path(
    client: FlaskClient, db: Database, inbox: Inbox, mode: str, signal: str
) -> None:
    message_id = new_id("contoso.example")
    response = _post(client, mode, SIGNALS[signal], message_id)
    assert response.status_code == 200, response.get_data()[:300]
    assert response.get_json()["replies"] == []
    (stored,) = [m for m in stored_messages(db) if m.direction == "in"]
    assert stored.message_id == message_id
    assert stored.data["automatic"] is not None, f"{signal} via {mode} was taken for a person"
    with db.session() as session:
        assert session.scalars(select(EmailOutbox)).all() == []
    assert inbox.messages == []


@pytest.mark.parametrize("mode", MODES)
def test_a_person_is_not_taken_for_a_machine_on_any_path(
    client: FlaskClient, db: Database, mode: str
) -> None:
    message_id = new_id()
    person = Report("alice@acme.example", "Unzustellbare Mails: agent down?", "alice@acme.example")
    assert _post(client, mode, person, message_id).status_code == 200
    (stored,) = [m for m in stored_messages(db) if m.direction == "in"]
    assert stored.data["automatic"] is None


@pytest.mark.parametrize(
    ("headers", "sender", "subject", "automatic"),
    [
        (
            {"Content-Type": "multipart/report; report-type=delivery-status"},
            "a@x.example",
            "hi",
            "bounce",
        ),
        (
            {"Content-Type": "multipart/report; report-type=disposition-notification"},
            "a@x.example",
            "Read: hi",
            "read-receipt",
        ),
        ({"X-MS-Exchange-Message-Is-Ndr": ""}, "a@x.example", "hi", "bounce"),
        ({}, "postmaster@x.example", "hi", "bounce"),
        ({}, "no-reply@x.example", "Your invoice", "no-reply-sender"),
        ({}, "a@x.example", "Unzustellbar: hi", "bounce"),
        ({}, "a@x.example", "Non remis : hi", "bounce"),
        ({}, "a@x.example", "Niet bezorgd: hi", "bounce"),
        ({}, "a@x.example", "配信不能: hi", "bounce"),
        ({}, "a@x.example", "Automatische Antwort: hi", "auto-reply"),
        ({}, "a@x.example", "Respuesta automática: hi", "auto-reply"),
        ({}, "a@x.example", "自動返信: hi", "auto-reply"),
        ({"Precedence": "auto_reply"}, "a@x.example", "hi", "auto-reply"),
        ({}, "a@x.example", "Undeliverable: hi", "bounce"),
        ({}, "a@x.example", "Undeliverable items in my mailbox", None),
        ({}, "a@x.example", "Agent undeliverable logs question", None),
        ({}, "a@x.example", "Re: Unzustellbar", None),
    ],
)
def test_automatic_mail_by_its_structure_then_its_subject(
    headers: dict[str, str], sender: str, subject: str, automatic: str | None
) -> None:
    found, _ = detect_automatic(
        {name.lower(): (value,) for name, value in headers.items()},
        from_address=sender,
        subject=subject,
        content_type=None,
        envelope_from=sender,
        own_addresses=frozenset({SUPPORT}),
    )
    assert found == automatic


def test_mailgun_top_level_content_type_field_marks_a_report(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    # Without message-headers, Mailgun's own Content-Type field is what tells a report.
    message_id = new_id("contoso.example")
    signature = [(k, v.encode()) for k, v in mailgun_signature().items()]
    fields = [
        ("recipient", SUPPORT.encode()),
        ("sender", b"alice@acme.example"),
        ("from", b"alice@acme.example"),
        ("subject", b"Re: Agent down"),
        ("body-plain", b"Delivery has failed."),
        ("Message-Id", message_id.encode()),
        ("Content-Type", MULTIPART_REPORT.encode()),
        *signature,
    ]
    assert post_multipart(client, "/email/inbound/mailgun", fields).status_code == 200
    (stored,) = [m for m in stored_messages(db) if m.direction == "in"]
    assert stored.data["automatic"] == "bounce" and inbox.messages == []
