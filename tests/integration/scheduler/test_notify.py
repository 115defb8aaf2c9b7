"""Notifications: email through a local SMTP server, signed webhooks, retries and failures."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from router.core.domain import Severity
from router.services.notify import SIGNATURE_HEADER, render_email, sign, verify
from router.store.models import OpsEvent
from router.store.models.scheduler import Notification
from tests.integration.scheduler.conftest import (
    CSM,
    DUTY_MANAGER,
    WEBHOOK_SECRET,
    WINDOWS_LEAD,
    SmtpSink,
    WebhookSink,
    World,
    free_port,
    memory_notifier,
    smtp_notifier,
)

FRIDAY = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def test_warning_and_breach_reach_owners_csm_and_a_signed_webhook(
    world: World, smtp: SmtpSink, webhook: WebhookSink
) -> None:
    world.set_queue("cse-windows", webhook_url=webhook.url)
    notifier = smtp_notifier(world.db, smtp)
    contact_id = world.contact(FRIDAY, severity=Severity.S1)
    warning_at, due_at = FRIDAY + timedelta(minutes=45), FRIDAY + timedelta(hours=1)

    world.monitor.sweep(warning_at)
    assert notifier.deliver_due(warning_at).to_dict() == {"sent": 2, "retried": 0, "failed": 0}
    # Warnings go to the queue's owners and its webhook (the CSM hears of breaches only).
    [(rcpts, warning_mail)] = smtp.received
    assert rcpts == [WINDOWS_LEAD]
    assert warning_mail["Subject"] == (
        f"[SLA warning] C-{contact_id} S1 Acme Corp: Agent problem 1"
    )
    assert warning_mail["Auto-Submitted"] == "auto-generated"
    assert "due at 2026-11-27T16:00:00+00:00" in warning_mail.get_content()

    world.monitor.sweep(due_at)
    assert notifier.deliver_due(due_at).sent == 4
    assert sorted(r for rcpts, _ in smtp.received[1:] for r in rcpts) == sorted(
        [WINDOWS_LEAD, DUTY_MANAGER, CSM]
    )
    breach_mail = smtp.to(CSM)[0]
    assert breach_mail["Subject"].startswith(f"[SLA breached] C-{contact_id} S1 Acme Corp")
    body = breach_mail.get_content()
    assert "Escalated: priority 90 -> 100, queue cse-windows -> escalations" in body

    # Each webhook is signed over its exact body, which says what happened.
    assert len(webhook.received) == 2
    for headers, raw in webhook.received:
        assert verify(WEBHOOK_SECRET, raw, headers[SIGNATURE_HEADER])
        assert not verify("another-secret", raw, headers[SIGNATURE_HEADER])
        assert headers["Content-Type"] == "application/json"
    warning_doc, breach_doc = webhook.documents()
    assert warning_doc["event"] == "sla.warning" and breach_doc["event"] == "sla.breached"
    assert breach_doc["contact"]["reference"] == f"C-{contact_id}"
    assert breach_doc["contact"]["sla"]["due_at"] == due_at.isoformat()
    assert breach_doc["escalation"]["queue"] == {"from": "cse-windows", "to": "escalations"}
    assert breach_doc["delivery"]["sent_at"] == due_at.isoformat()

    # Delivery is recorded on the outbox and on the contact's timeline; nothing is sent twice.
    assert {n.status for n in world.notifications(contact_id)} == {"sent"}
    assert len(world.events(contact_id, "notified")) == 6
    assert notifier.deliver_due(due_at + timedelta(hours=1)).sent == 0
    assert len(smtp.received) == 4


def test_failures_are_retried_with_backoff_then_recorded(
    world: World, webhook: WebhookSink
) -> None:
    webhook.status = 503
    world.set_queue("cse-windows", webhook_url=webhook.url)
    dead_smtp = SmtpSink(host="127.0.0.1", port=free_port())  # nothing listens there
    notifier = smtp_notifier(world.db, dead_smtp, max_attempts=3)
    contact_id = world.contact(FRIDAY, severity=Severity.S1)
    now = FRIDAY + timedelta(hours=1)
    sweep = world.monitor.sweep(now)
    assert (sweep.breaches, sweep.notifications) == (1, 4)

    assert notifier.deliver_due(now).to_dict() == {"sent": 0, "retried": 4, "failed": 0}
    rows = world.notifications(contact_id)
    assert {(n.status, n.attempts) for n in rows} == {("pending", 1)}
    assert {n.next_attempt_at for n in rows} == {now + timedelta(minutes=1)}
    assert all(n.last_error for n in rows)
    webhook_row = next(n for n in rows if n.channel == "webhook")
    assert webhook_row.last_error == "HTTP 503 Service Unavailable"
    # Not due yet; then the second attempt, two minutes before the third.
    assert notifier.deliver_due(now + timedelta(seconds=30)).retried == 0
    assert notifier.deliver_due(now + timedelta(minutes=1)).retried == 4
    assert notifier.deliver_due(now + timedelta(minutes=2)).retried == 0
    assert notifier.deliver_due(now + timedelta(minutes=3)).to_dict() == {
        "sent": 0,
        "retried": 0,
        "failed": 4,
    }
    assert {(n.status, n.attempts) for n in world.notifications(contact_id)} == {("failed", 3)}
    assert len(world.events(contact_id, "notification_failed")) == 4
    with world.db.session() as session:
        ops = list(session.scalars(select(OpsEvent).where(OpsEvent.kind == "notification_failed")))
    assert len(ops) == 4 and "abandoned after 3 attempt(s)" in ops[0].message
    assert len(webhook.received) == 3  # the endpoint saw every attempt
    # The sweep was never disturbed, and abandoned rows are not picked up again.
    assert world.get(contact_id).sla_state == "breached"
    assert notifier.deliver_due(now + timedelta(days=1)).to_dict() == {
        "sent": 0,
        "retried": 0,
        "failed": 0,
    }


def test_a_refusing_webhook_fails_at_once_and_unsigned_webhooks_are_never_sent(
    world: World, webhook: WebhookSink
) -> None:
    webhook.status = 404
    world.set_queue("cse-windows", webhook_url=webhook.url)
    world.set_queue("escalations", webhook_url=webhook.url + "/escalations")
    world.contact(FRIDAY, severity=Severity.S1)
    now = FRIDAY + timedelta(minutes=45)
    world.monitor.sweep(now)
    notifier, _ = memory_notifier(world.db)
    result = notifier.deliver_due(now)
    assert (result.sent, result.failed) == (1, 1)  # the email went; the 404 is final

    unsigned, mail = memory_notifier(world.db, webhook_secret=None)
    world.monitor.sweep(FRIDAY + timedelta(hours=1))
    result = unsigned.deliver_due(FRIDAY + timedelta(hours=1))
    assert (result.sent, result.retried) == (3, 2)  # both queues' webhooks wait for a secret
    assert len(webhook.received) == 1  # only the first (refused) one ever left
    pending = [n for n in world.notifications() if n.status == "pending"]
    assert {n.last_error for n in pending} == {
        "NOTIFY_WEBHOOK_SECRET is not set; no webhook is sent unsigned"
    }
    assert {m["To"] for m in mail.sent} == {WINDOWS_LEAD, DUTY_MANAGER, CSM}


def test_a_claim_abandoned_by_a_dead_process_is_delivered_again(world: World) -> None:
    world.contact(FRIDAY, severity=Severity.S1)
    now = FRIDAY + timedelta(minutes=45)
    world.monitor.sweep(now)
    with world.db.transaction() as session:
        session.execute(update(Notification).values(status="sending", claimed_at=now, attempts=1))
    notifier, mail = memory_notifier(world.db)
    assert notifier.deliver_due(now + timedelta(minutes=5)).sent == 0  # perhaps still sending
    assert notifier.deliver_due(now + timedelta(minutes=10)).sent == 1
    [row] = world.notifications()
    assert (row.status, row.attempts, row.provider_id) == ("sent", 2, mail.sent[0]["Message-ID"])


def test_concurrent_deliverers_send_each_notification_once(world: World) -> None:
    for index in range(12):
        world.contact(FRIDAY + timedelta(seconds=index), severity=Severity.S1)
    now = FRIDAY + timedelta(hours=2)
    assert world.monitor.sweep(now).notifications == 36
    transport_lock = threading.Lock()
    sent: list[str] = []
    notifiers = []
    for _ in range(3):
        notifier, transport = memory_notifier(world.db)
        notifier.batch_size = 5
        notifiers.append((notifier, transport))
    threads = [threading.Thread(target=n.deliver_due, args=(now,)) for n, _ in notifiers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with transport_lock:
        for _, transport in notifiers:
            sent.extend(str(m["X-Router-Delivery"]) for m in transport.sent)
    assert sorted(sent) == sorted(str(n.id) for n in world.notifications())
    assert {n.status for n in world.notifications()} == {"sent"}


def test_signature_and_email_rendering() -> None:
    body = json.dumps({"event": "sla.breached"}).encode()
    signature = sign("s3cret", body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify("s3cret", body, signature)
    assert not verify("s3cret", body + b" ", signature)
    subject, text = render_email(
        {
            "event": "sla.warning",
            "contact": {
                "reference": "C-7",
                "severity": "S2",
                "subject": "VPN down",
                "tier": "standard",
                "account": None,
                "sla": {"due_at": "2026-11-27T16:00:00+00:00"},
            },
        }
    )
    assert subject == "[SLA warning] C-7 S2 standard: VPN down"
    assert "it is due at 2026-11-27T16:00:00+00:00" in text
