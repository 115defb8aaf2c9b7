"""End-to-end email flows: threading, duplicates, who may open, loop safety, sending and retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from channels.email.replies import local_time
from channels.email.reply_plan import ReplyPlanner
from channels.email.service import EmailService
from router.core.checklist import LABELS
from router.runtime import Runtime
from router.services.logins import create_staff
from router.services.outbox import OutboxSender
from router.store.db import Database
from router.store.models import Contact, OpsEvent
from router.store.models.email import EmailMessage as StoredEmail
from router.store.models.email import EmailOutbox
from tests.functional.email.conftest import (
    SUPPORT,
    Inbox,
    events,
    mailgun_signature,
    message,
    new_id,
    post_mime,
    post_multipart,
    post_sendgrid_raw,
    stored_contact,
)

pytestmark = pytest.mark.usefixtures("demo")


def contact_count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Contact)) or 0


def outbox(db: Database) -> list[EmailOutbox]:
    with db.session() as session:
        return list(session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)))


def kinds(db: Database, contact_id: int) -> list[str]:
    return [event.kind for event in events(db, contact_id)]


def test_replies_thread_onto_the_contact_without_restarting_its_clock(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    first = message(subject="[Sev2] Agent not reporting on Windows", body="It stopped.")
    assert post_mime(client, first).status_code == 200
    contact = stored_contact(db, str(first["Message-ID"]))
    (ack,) = inbox.to("alice@acme.example")
    assert LABELS["agent_logs"] in ack.get_content()

    # The customer answers the acknowledgement: In-Reply-To names our Message-ID.
    reply = message(
        subject=str(ack["Subject"]),
        body="Here is the log you asked for.\n\nOn Fri, Support wrote:\n> Severity: S1\n",
        headers={
            "In-Reply-To": str(ack["Message-ID"]),
            "References": f"{first['Message-ID']} {ack['Message-ID']}",
        },
        attachments=[("jcagent.log", "text/plain", b"windows agent log")],
    )
    answer = post_mime(client, reply).get_json()
    assert answer["outcome"] == "threaded" and answer["contact"] == contact.reference
    after = stored_contact(db, str(first["Message-ID"]))
    assert contact_count(db) == 1
    assert (after.received_at, after.due_at, after.sla_started_at) == (
        contact.received_at,
        contact.due_at,
        contact.sla_started_at,
    )
    assert after.checklist["agent_logs"] is True
    last = events(db, contact.id)[-1]
    assert last.kind == "email_reply" and last.actor == "alice@acme.example"
    assert last.data["threaded_by"] == "headers" and last.data["checklist_added"] == ["agent_logs"]
    assert last.data["attachments"] == [{"name": "jcagent.log", "type": "text/plain", "size": 17}]

    # A message naming the reference in its subject threads too (no headers needed).
    by_subject = message(subject=f"Update on [#{contact.reference}]", body="It is back now.")
    assert post_mime(client, by_subject).get_json()["outcome"] == "threaded"
    assert events(db, contact.id)[-1].data["threaded_by"] == "subject"
    assert contact_count(db) == 1
    assert len(inbox.messages) == 1  # replies on a thread are not acknowledged again


def test_a_staff_reply_is_the_first_response(
    client: FlaskClient, db: Database, rt: Runtime, inbox: Inbox
) -> None:
    create_staff(rt.db, "engineer@support.example", "editor")
    first = message(subject="[Sev1] Nobody can log in", body="SSO is down.")
    assert post_mime(client, first).status_code == 200
    contact = stored_contact(db, str(first["Message-ID"]))
    assert contact.first_response_at is None and contact.sla_state == "ok"
    (ack,) = inbox.to("alice@acme.example")

    # The engineer answers the customer; the support mailbox gets a copy.
    answer = message(
        sender="engineer@support.example",
        subject=f"Re: {ack['Subject']}",
        body="We are on it: please send the SAML response.",
        headers={"In-Reply-To": str(ack["Message-ID"])},
    )
    assert post_mime(client, answer).get_json()["outcome"] == "threaded"
    after = stored_contact(db, str(first["Message-ID"]))
    assert after.first_response_at is not None and after.sla_state == "met"
    assert kinds(db, contact.id)[-3:] == ["email_reply", "first_response", "sla_met"]
    assert contact_count(db) == 1
    assert inbox.to("engineer@support.example") == []  # no "who may open requests" reply


def test_a_stranger_cannot_join_a_thread_by_naming_its_reference(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    first = message()
    post_mime(client, first)
    contact = stored_contact(db, str(first["Message-ID"]))
    intruder = message(
        sender="mallory@evil.example", subject=f"Re: [#{contact.reference}] please add me"
    )
    answer = post_mime(client, intruder).get_json()
    assert answer["outcome"] == "created" and answer["status"] == "rejected"
    rejected = stored_contact(db, str(intruder["Message-ID"]))
    assert events(db, rejected.id)[0].data["not_threaded"] == {
        "contact": contact.reference,
        "why": "the sender may not add to it",
    }
    assert "email_reply" not in kinds(db, contact.id)


def test_the_same_message_delivered_twice_is_stored_once(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    msg = message()
    first = post_mime(client, msg).get_json()
    again = post_mime(client, msg).get_json()
    via_sendgrid = post_sendgrid_raw(client, msg).get_json()  # the same mail through another route
    assert first["outcome"] == "created"
    assert again["outcome"] == via_sendgrid["outcome"] == "duplicate"
    assert again["contact"] == via_sendgrid["contact"] == first["contact"]
    assert contact_count(db) == 1 and len(inbox.messages) == 1
    with db.session() as session:
        assert session.scalar(select(func.count()).where(StoredEmail.direction == "in")) == 1


def test_a_failure_storing_the_message_leaves_nothing_and_the_retry_stores_it_all(
    client: FlaskClient, db: Database, inbox: Inbox, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Contact, message and the reply owed are one transaction: never a contact without them."""
    msg = message()
    original = EmailService._complete

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("database went away"))

    monkeypatch.setattr(EmailService, "_complete", fail)
    failed = post_mime(client, msg)
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "60"
    assert contact_count(db) == 0 and inbox.messages == []
    monkeypatch.setattr(EmailService, "_complete", original)
    retried = post_mime(client, msg)
    assert retried.status_code == 200 and retried.get_json()["outcome"] == "created"
    assert contact_count(db) == 1 and len(inbox.messages) == 1


def test_a_non_admin_gets_one_explanation_and_nothing_is_routed(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    first = message(sender="Mallory <mallory@evil.example>", subject="Please reset my password")
    answer = post_mime(client, first).get_json()
    assert (answer["status"], answer["reason"], answer["queue"]) == (
        "rejected",
        "not_an_admin",
        None,
    )
    contact = stored_contact(db, str(first["Message-ID"]))
    assert contact.account_id is None and contact.due_at is None
    assert kinds(db, contact.id) == ["received", "rejected", "email_sent"]
    (explanation,) = inbox.to("mallory@evil.example")
    body = explanation.get_content()
    assert "only be opened by the active administrators" in body
    # Nothing the sender wrote comes back: not the subject, the name, or even the address.
    assert "password" not in body + str(explanation["Subject"])
    assert "Mallory" not in body + str(explanation["To"]) and "mallory" not in body
    assert explanation["Auto-Submitted"] == "auto-replied"

    second = message(sender="mallory@evil.example", subject="Hello again?")
    assert post_mime(client, second).get_json()["suppressed"] == [
        "an explanation was already sent to this address in the last 24 hours"
    ]
    again = stored_contact(db, str(second["Message-ID"]))
    assert again.status == "rejected" and kinds(db, again.id)[-1] == "email_reply_suppressed"
    assert len(inbox.to("mallory@evil.example")) == 1


def test_an_inactive_admin_is_told_too(client: FlaskClient, db: Database, inbox: Inbox) -> None:
    msg = message(sender="olga@acme.example")
    answer = post_mime(client, msg).get_json()
    assert (answer["status"], answer["reason"]) == ("rejected", "inactive_admin")
    assert len(inbox.to("olga@acme.example")) == 1


def test_the_free_tier_is_pointed_to_the_help_center(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    msg = message(sender="dave@umbrella.example", subject="Agent broken")
    answer = post_mime(client, msg).get_json()
    assert answer["status"] == "deflected"
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert contact.tier == "free" and contact.due_at is None
    (reply,) = inbox.to("dave@umbrella.example")
    assert "https://help.router.example" in reply.get_content()
    assert f"[#{contact.reference}]" in reply["Subject"]


def test_a_partner_admin_opens_a_request_for_a_managed_customer(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    msg = message(
        sender="Erin <erin@northwind.example>",
        to="support+contoso@router.example",
        subject="[Sev3] MDM policy not applied",
        body="Account: Contoso\nThe device policy is not applied.",
    )
    assert post_mime(client, msg).status_code == 200
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert (contact.account_id, contact.via_partner_id, contact.tier) == (
        "contoso",
        "northwind",
        "premium",
    )
    assert contact.account is not None and contact.account.timezone == "Australia/Sydney"
    (ack,) = inbox.to("erin@northwind.example")
    assert contact.due_at is not None
    assert local_time(contact.due_at, "Australia/Sydney") in ack.get_content()
    # Without a hint the partner's own account is meant.
    own = message(sender="erin@northwind.example", subject="Our own agent")
    post_mime(client, own)
    assert stored_contact(db, str(own["Message-ID"])).account_id == "northwind"


def test_standard_tier_due_time_is_in_the_accounts_time_zone(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    msg = message(
        sender="bob@globex.example",
        subject="Feature request: dark mode",
        body="We would like to see dark mode.",
    )
    post_mime(client, msg)
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert (contact.category, contact.queue_key, contact.checklist) == (
        "feature-request",
        "csm",
        {},
    )
    assert contact.severity == "S3" and "severity-unstated" in contact.tags  # for staff to re-grade
    (ack,) = inbox.to("bob@globex.example")
    body = ack.get_content()
    assert (
        'requests of this kind ("Roadmap and feature requests") have no first-response commitment'
        in body
    )
    assert "please reply with" not in body


@pytest.mark.parametrize(
    ("sender", "headers", "subject", "reason"),
    [
        (
            "alice@acme.example",
            {"Auto-Submitted": "auto-replied"},
            "Automatic reply: Agent",
            "auto-submitted",
        ),
        (
            "alice@acme.example",
            {"List-Id": "<it.acme.example>", "Precedence": "list"},
            "Weekly digest",
            "mailing-list",
        ),
        ("MAILER-DAEMON@mx.acme.example", {}, "Undelivered Mail Returned to Sender", "bounce"),
        (SUPPORT, {}, "Re: [#C-999] something", "own-message"),
    ],
)
def test_automatic_mail_is_recorded_and_never_answered(
    client: FlaskClient,
    db: Database,
    inbox: Inbox,
    sender: str,
    headers: dict[str, str],
    subject: str,
    reason: str,
) -> None:
    msg = message(sender=sender, subject=subject, headers=headers)
    answer = post_mime(client, msg).get_json()
    assert answer["status"] == "recorded" and answer["replies"] == []
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert contact.due_at is None and contact.queue_key is None
    assert kinds(db, contact.id) == ["received", "recorded"]
    assert events(db, contact.id)[0].data["automatic"] == reason
    assert inbox.messages == [] and outbox(db) == []


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("Out of Office: back Monday", "auto-reply"),
        ("Delivery failure: password reset emails from the console never arrive", "bounce"),
        ("Auto: user provisioning stopped", "auto-reply"),
    ],
)
def test_a_report_or_auto_reply_subject_alone_never_drops_a_verified_admins_request(
    client: FlaskClient, db: Database, inbox: Inbox, subject: str, reason: str
) -> None:
    # From a sender nobody verified, the subject is enough: recorded, never answered.
    forged = message(subject=subject, authenticated=False)
    answer = post_mime(client, forged).get_json()
    assert answer["status"] == "recorded" and answer["replies"] == []
    contact = stored_contact(db, str(forged["Message-ID"]))
    assert events(db, contact.id)[0].data["automatic"] == reason

    # The same words from a verified active admin are a request: routed and acknowledged.
    real = message(subject=subject)
    answer = post_mime(client, real).get_json()
    assert answer["outcome"] == "created" and answer["status"] == "waiting", answer
    assert [reply["kind"] for reply in answer["replies"]] == ["acknowledgement"]
    contact = stored_contact(db, str(real["Message-ID"]))
    assert contact.queue_key is not None and contact.due_at is not None
    assert events(db, contact.id)[0].data["automatic"] is None
    (ack,) = inbox.to("alice@acme.example")
    assert subject in str(ack["Subject"])


def test_a_bounce_of_our_acknowledgement_lands_on_the_contact(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    msg = message()
    post_mime(client, msg)
    contact = stored_contact(db, str(msg["Message-ID"]))
    (ack,) = inbox.messages
    bounce = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.acme.example>\r\n"
        b"To: " + SUPPORT.encode() + b"\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: " + new_id("mx.acme.example").encode() + b"\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nMailbox full.\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: "
        + str(ack["Message-ID"]).encode()
        + b"\r\n"
        b"--b--\r\n"
    )
    answer = post_mime(client, bounce).get_json()
    assert answer["outcome"] == "threaded" and answer["contact"] == contact.reference
    assert events(db, contact.id)[-1].kind == "email_automatic"
    assert len(inbox.messages) == 1 and contact_count(db) == 1


def test_a_sender_asking_for_no_auto_replies_is_routed_but_not_answered(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    msg = message(headers={"X-Auto-Response-Suppress": "All"})
    answer = post_mime(client, msg).get_json()
    assert answer["status"] == "waiting" and answer["replies"] == []
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert kinds(db, contact.id)[-1] == "email_reply_suppressed" and inbox.messages == []


def test_spf_or_dkim_failures_are_not_trusted(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    forged = message(authenticated=False)
    answer = post_sendgrid_raw(client, forged, spf="fail", dkim="{@acme.example : fail}").get_json()
    assert (answer["status"], answer["reason"]) == ("rejected", "sender_not_verified")
    contact = stored_contact(db, str(forged["Message-ID"]))
    assert kinds(db, contact.id) == ["received", "rejected", "email_reply_suppressed"]
    assert events(db, contact.id)[0].data["auth"]["spf"] == "fail"
    assert events(db, contact.id)[0].data["sender"]["verified"] is False

    dkim = message(sender="bob@globex.example", authenticated=False)
    fields = [
        ("body-mime", dkim.as_bytes()),
        ("sender", b"bounce@mailer.globex-lookalike.example"),
        ("X-Mailgun-Spf", b"Pass"),
        ("X-Mailgun-Dkim-Check-Result", b"Fail"),
    ]
    signed = fields + [(k, v.encode()) for k, v in mailgun_signature().items()]
    assert (
        post_multipart(client, "/email/inbound/mailgun", signed).get_json()["reason"]
        == "sender_not_verified"
    )

    header_verdict = message(
        authenticated=False,
        headers={
            "Authentication-Results": "mx.router.example; spf=fail smtp.mailfrom=acme.example; "
            "dkim=fail header.d=acme.example"
        },
    )
    assert post_mime(client, header_verdict).get_json()["reason"] == "sender_not_verified"
    # Nothing said at all ("believed unless a check fails" is gone): not verified either.
    silent = message(authenticated=False)
    assert post_mime(client, silent).get_json()["reason"] == "sender_not_verified"
    assert inbox.messages == []  # no backscatter to possibly forged addresses


def test_the_loop_breaker_caps_replies_per_recipient(
    client: FlaskClient, db: Database, inbox: Inbox, rt: Runtime, other_app: Any
) -> None:
    capped = other_app(email_max_replies_per_hour=2)
    answers = [post_mime(capped, message(subject=f"Agent issue {n}")).get_json() for n in range(3)]
    assert [len(a["replies"]) for a in answers] == [1, 1, 0]
    assert answers[2]["suppressed"] == [
        "loop breaker: 2 automatic replies to this address in the last hour"
    ]
    assert len(inbox.to("alice@acme.example")) == 2


def test_a_failed_send_keeps_the_contact_and_is_retried(
    client: FlaskClient, db: Database, inbox: Inbox, rt: Runtime
) -> None:
    inbox.refuse = 1  # the mail server says 451 once
    msg = message()
    response = post_mime(client, msg)
    assert response.status_code == 200
    assert response.get_json()["replies"][0]["sent"] is False
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert contact.status == "waiting" and inbox.messages == []
    failed = events(db, contact.id)[-1]
    assert failed.kind == "email_send_failed" and "451" in failed.data["error"]
    (row,) = outbox(db)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at is not None

    outbox_sender = OutboxSender.from_runtime(rt)
    assert outbox_sender.retry_due().attempted == 0  # not due yet (backs off one minute)
    outbox_sender.clock = lambda: datetime.now(UTC) + timedelta(minutes=2)
    summary = outbox_sender.retry_due()
    assert (summary.attempted, summary.sent) == (1, 1)
    (ack,) = inbox.to("alice@acme.example")
    assert ack["Message-ID"] == row.message_id  # the reply keeps the Message-ID it was stored with
    assert kinds(db, contact.id)[-2:] == ["email_send_failed", "email_sent"]
    assert outbox(db)[0].status == "sent"


def test_the_next_successful_send_also_clears_due_retries(
    client: FlaskClient, db: Database, inbox: Inbox, rt: Runtime
) -> None:
    inbox.refuse = 1
    post_mime(client, message(subject="first"))
    with rt.db.transaction() as session:  # make the failed reply due now
        for row in session.scalars(select(EmailOutbox)):
            row.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)
    post_mime(client, message(subject="second"))
    assert sorted(str(m["Subject"]) for m in inbox.messages) == [
        "Re: [#C-1] first",
        "Re: [#C-2] second",
    ]


def test_sends_are_abandoned_after_the_last_attempt(
    client: FlaskClient, db: Database, inbox: Inbox, other_app: Any
) -> None:
    once = other_app(email_send_max_attempts=1)
    inbox.refuse = 1
    msg = message()
    post_mime(once, msg)
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert kinds(db, contact.id)[-1] == "email_send_abandoned"
    assert outbox(db)[0].status == "failed"
    with db.session() as session:
        alert = session.scalar(select(OpsEvent).where(OpsEvent.kind == "email_send_abandoned"))
        assert (
            alert is not None
            and alert.severity == "error"
            and contact.reference not in alert.message
        )


def test_the_retry_command(app: Any, db: Database, inbox: Inbox, client: FlaskClient) -> None:
    inbox.refuse = 1
    post_mime(client, message())
    result = app.test_cli_runner().invoke(args=["email", "retry-outbox"])
    assert result.exit_code == 0 and "0 attempted" in result.output  # backing off
    with db.transaction() as session:
        for row in session.scalars(select(EmailOutbox)):
            row.next_attempt_at = datetime.now(UTC)
    result = app.test_cli_runner().invoke(args=["email", "retry-outbox"])
    assert "1 attempted, 1 sent" in result.output and len(inbox.messages) == 1


def test_an_unreachable_mail_server_never_loses_the_contact(
    client: FlaskClient, db: Database, other_app: Any
) -> None:
    from tests.functional.email.conftest import free_port

    down = other_app(smtp_port=free_port())
    msg = message()
    response = post_mime(down, msg)
    assert response.status_code == 200 and response.get_json()["status"] == "waiting"
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert "ConnectionRefusedError" in events(db, contact.id)[-1].data["error"]


def test_concurrent_deliveries_of_one_message_store_it_once(
    app: Any, db: Database, inbox: Inbox
) -> None:
    import threading

    msg = message()
    barrier = threading.Barrier(4)
    results: list[tuple[int, str]] = []

    def deliver() -> None:
        client = app.test_client()
        barrier.wait()
        response = post_mime(client, msg)
        results.append((response.status_code, response.get_json()["outcome"]))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [(200, "created")] + [(200, "duplicate")] * 3
    assert contact_count(db) == 1 and len(inbox.messages) == 1
    with db.session() as session:
        assert session.scalar(select(func.count()).where(StoredEmail.direction == "in")) == 1


def test_a_sent_reply_is_recorded_even_if_the_store_is_briefly_busy(
    client: FlaskClient, db: Database, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mail server took the reply; a locked store must not make us send it twice."""
    from router.services import outbox as outbox_service

    original = OutboxSender._record_attempt_once
    busy = [1]

    def locked_once(self: OutboxSender, *args: Any, **kwargs: Any) -> Any:
        if busy[0]:
            busy[0] -= 1
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(outbox_service, "RECORD_RETRY_PAUSES", (0.0, 0.0))
    monkeypatch.setattr(OutboxSender, "_record_attempt_once", locked_once)
    msg = message()
    answer = post_mime(client, msg).get_json()
    assert answer["replies"][0]["status"] == "sent" and busy == [0]
    (row,) = outbox(db)
    assert (row.status, row.attempts) == ("sent", 1) and len(inbox.messages) == 1


def test_a_reply_that_cannot_be_composed_does_not_cost_the_request(
    client: FlaskClient, db: Database, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a template bug")

    monkeypatch.setattr(ReplyPlanner, "_render", broken)
    msg = message()
    response = post_mime(client, msg)
    assert response.status_code == 200
    assert response.get_json()["suppressed"] == [
        "the acknowledgement could not be composed (an error was logged)"
    ]
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert contact.status == "waiting" and kinds(db, contact.id)[-1] == "email_reply_suppressed"
    assert outbox(db) == [] and inbox.messages == []
