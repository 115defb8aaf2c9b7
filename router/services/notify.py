"""Deliver SLA notifications from the outbox: email through the mailer, signed webhooks.

The SLA sweep writes one ``Notification`` row per recipient in the same transaction as the
transition it reports, so nothing is lost if the process dies before sending. Delivery claims due
rows, sends each outside any transaction (a slow SMTP server or webhook never holds locks), and
records the outcome: sent; a failure retried with backoff; or, after the last attempt or a
permanent refusal, failed — on the contact's timeline and as an operator event. A failure never
stops the other deliveries, nor the sweep.

Webhooks are POSTed as JSON with ``X-Router-Signature: sha256=<hex>``, the HMAC-SHA256 of the
exact body bytes under NOTIFY_WEBHOOK_SECRET. The body carries a delivery id and ``sent_at``, so
receivers can drop duplicates (delivery is at least once) and stale replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import insert, or_, select, update

from router.core.calendar import as_utc
from router.mailer import Mailer, MailError
from router.store.db import Database
from router.store.models import ContactEvent, OpsEvent
from router.store.models.scheduler import Notification

log = logging.getLogger(__name__)

ACTOR = "notifier"
SIGNATURE_HEADER = "X-Router-Signature"
USER_AGENT = "contact-router-notifier/1"
# Retries back off 1, 2, 4 ... minutes, at most an hour apart.
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)
# A row claimed this long ago by a process that never reported back is delivered again.
CLAIM_TIMEOUT = timedelta(minutes=10)
_MAX_ERROR = 1000


class DeliveryError(Exception):
    """A notification was not accepted; ``permanent`` means retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def sign(secret: str, body: bytes) -> str:
    """Return the X-Router-Signature value for ``body``: sha256=<hex HMAC-SHA256>."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Return whether ``signature`` is the X-Router-Signature of ``body`` (constant time)."""
    return hmac.compare_digest(sign(secret, body), signature)


class WebhookPoster(Protocol):
    """Something that POSTs a signed JSON body to a URL."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body``; return the HTTP status, or raise DeliveryError."""
        ...


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Treat a redirect as a failure: a signed POST is never re-sent somewhere else."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class HttpWebhookPoster:
    """POST over HTTP(S) with a timeout; any answer but 2xx is a failure."""

    timeout: float = 5.0

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body`` to ``url``; return the 2xx status or raise DeliveryError."""
        if not url.startswith(("https://", "http://")):
            raise DeliveryError(f"not an http(s) URL: {url!r}", permanent=True)
        request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
        opener = urllib.request.build_opener(_NoRedirects)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                response.read(65536)
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            # 4xx other than 408/429 will not get better by themselves; retry the rest.
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise DeliveryError(f"HTTP {exc.code} {exc.reason}", permanent=permanent) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{type(exc).__name__}: {reason}") from exc
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}")
        return status


@dataclass(frozen=True)
class DeliveryResult:
    """What one delivery round did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, int]:
        """Return the counts as JSON-ready data."""
        return {"sent": self.sent, "retried": self.retried, "failed": self.failed}


@dataclass(frozen=True)
class _Claimed:
    id: int
    contact_id: int | None
    event: str
    channel: str
    target: str
    payload: dict[str, Any]
    attempts: int


class Notifier:
    """Deliver due notifications from the outbox and record each outcome."""

    def __init__(
        self,
        db: Database,
        mailer: Mailer,
        webhooks: WebhookPoster,
        *,
        webhook_secret: str | None,
        max_attempts: int = 8,
        batch_size: int = 100,
    ) -> None:
        self.db = db
        self.mailer = mailer
        self.webhooks = webhooks
        self.webhook_secret = webhook_secret
        self.max_attempts = max_attempts
        self.batch_size = batch_size

    def deliver_due(self, now: datetime) -> DeliveryResult:
        """Send every notification due at ``now``, batch by batch."""
        now = as_utc(now, "now")
        sent = retried = failed = 0
        while True:
            claimed = self._claim(now)
            for item in claimed:
                outcome = self._deliver(item, now)
                sent += outcome == "sent"
                retried += outcome == "retry"
                failed += outcome == "failed"
            if len(claimed) < self.batch_size:
                return DeliveryResult(sent=sent, retried=retried, failed=failed)

    def _claim(self, now: datetime) -> list[_Claimed]:
        """Mark up to one batch of due rows as being sent by this process, and return them."""
        due = or_(
            (Notification.status == "pending") & (Notification.next_attempt_at <= now),
            (Notification.status == "sending") & (Notification.claimed_at <= now - CLAIM_TIMEOUT),
        )
        with self.db.transaction() as session:
            ids = list(
                session.scalars(
                    select(Notification.id)
                    .where(due)
                    .order_by(Notification.next_attempt_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                return []
            # Conditional, so two deliverers never both take the same row.
            rows = session.execute(
                update(Notification)
                .where(Notification.id.in_(ids), due)
                .values(status="sending", claimed_at=now, attempts=Notification.attempts + 1)
                .returning(
                    Notification.id,
                    Notification.contact_id,
                    Notification.event,
                    Notification.channel,
                    Notification.target,
                    Notification.payload,
                    Notification.attempts,
                )
                .execution_options(synchronize_session=False)
            )
            return [_Claimed(*row) for row in rows]

    def _deliver(self, item: _Claimed, now: datetime) -> str:
        """Send one claimed notification and record what happened; never raises."""
        try:
            if item.channel == "email":
                provider_id = self._send_email(item, now)
            else:
                provider_id = self._send_webhook(item, now)
        except DeliveryError as exc:
            return self._record_failure(item, now, str(exc), permanent=exc.permanent)
        except Exception as exc:  # a bug or an unexpected library error must not stop the round
            log.exception("notification %d: unexpected error", item.id)
            return self._record_failure(item, now, f"{type(exc).__name__}: {exc}", permanent=False)
        with self.db.transaction() as session:
            session.execute(
                update(Notification)
                .where(Notification.id == item.id)
                .values(status="sent", sent_at=now, provider_id=provider_id[:255], last_error=None)
            )
            if item.contact_id is not None:
                session.execute(
                    insert(ContactEvent),
                    [
                        {
                            "contact_id": item.contact_id,
                            "at": now,
                            "kind": "notified",
                            "actor": ACTOR,
                            "data": {
                                "event": item.event,
                                "channel": item.channel,
                                "target": item.target,
                                "notification_id": item.id,
                                "attempt": item.attempts,
                            },
                        }
                    ],
                )
        return "sent"

    def _record_failure(self, item: _Claimed, now: datetime, error: str, *, permanent: bool) -> str:
        error = error[:_MAX_ERROR]
        final = permanent or item.attempts >= self.max_attempts
        log.warning(
            "notification %d (%s %s to %s) attempt %d failed%s: %s",
            item.id,
            item.event,
            item.channel,
            item.target,
            item.attempts,
            "; giving up" if final else "; will retry",
            error,
        )
        delay = min(FIRST_RETRY * 2 ** (item.attempts - 1), LONGEST_RETRY)
        with self.db.transaction() as session:
            session.execute(
                update(Notification)
                .where(Notification.id == item.id)
                .values(
                    status="failed" if final else "pending",
                    last_error=error,
                    next_attempt_at=now if final else now + delay,
                    claimed_at=None,
                )
            )
            if final:
                data = {
                    "event": item.event,
                    "channel": item.channel,
                    "target": item.target,
                    "notification_id": item.id,
                    "attempts": item.attempts,
                    "error": error,
                }
                if item.contact_id is not None:
                    session.execute(
                        insert(ContactEvent),
                        [
                            {
                                "contact_id": item.contact_id,
                                "at": now,
                                "kind": "notification_failed",
                                "actor": ACTOR,
                                "data": data,
                            }
                        ],
                    )
                session.execute(
                    insert(OpsEvent),
                    [
                        {
                            "at": now,
                            "kind": "notification_failed",
                            "severity": "warning",
                            "message": (
                                f"{item.event} {item.channel} notification to {item.target} "
                                f"abandoned after {item.attempts} attempt(s): {error}"
                            ),
                            "data": data,
                        }
                    ],
                )
        return "failed" if final else "retry"

    def _send_email(self, item: _Claimed, now: datetime) -> str:
        subject, text = render_email(item.payload)
        try:
            message = self.mailer.compose(
                to=item.target,
                subject=subject,
                text=text,
                date=now,
                headers={
                    # RFC 3834: auto-responders must not answer this message.
                    "Auto-Submitted": "auto-generated",
                    "X-Router-Event": item.event,
                    "X-Router-Delivery": str(item.id),
                },
            )
            return self.mailer.send(message)
        except MailError as exc:
            raise DeliveryError(str(exc), permanent=exc.permanent) from exc

    def _send_webhook(self, item: _Claimed, now: datetime) -> str:
        if not self.webhook_secret:
            raise DeliveryError("NOTIFY_WEBHOOK_SECRET is not set; no webhook is sent unsigned")
        document = {
            **item.payload,
            "delivery": {"id": item.id, "attempt": item.attempts, "sent_at": now.isoformat()},
        }
        body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(self.webhook_secret, body),
            "X-Router-Event": item.event,
            "X-Router-Delivery": str(item.id),
        }
        status = self.webhooks.post(item.target, body, headers)
        return f"HTTP {status}"


def render_email(payload: Mapping[str, Any]) -> tuple[str, str]:
    """Return the subject and plain-text body of an SLA notification."""
    contact = payload.get("contact") or {}
    sla = contact.get("sla") or {}
    account = contact.get("account") or {}
    breached = payload.get("event") == "sla.breached"
    what = "SLA breached" if breached else "SLA warning"
    subject = (
        f"[{what}] {contact.get('reference')} {contact.get('severity')} "
        f"{account.get('name') or contact.get('tier') or ''}: {contact.get('subject') or ''}"
    ).strip()
    lines = [
        (
            f"The first response to {contact.get('reference')} was due at {sla.get('due_at')} "
            "and has not been recorded."
            if breached
            else f"{contact.get('reference')} has used most of its first-response time: "
            f"it is due at {sla.get('due_at')}."
        ),
        "",
        f"Account:   {account.get('name') or '-'} ({account.get('id') or '-'})",
        f"Subject:   {contact.get('subject') or '-'}",
        f"Channel:   {contact.get('channel')}",
        f"Tier:      {contact.get('tier') or '-'}   Severity: {contact.get('severity')}",
        f"Queue:     {contact.get('queue') or '-'}   Priority: {contact.get('priority')}",
        f"Received:  {contact.get('received_at')}",
        f"Warning:   {sla.get('warning_at')}",
        f"Due:       {sla.get('due_at')}",
        f"SLA:       {sla.get('policy')}",
    ]
    escalation = payload.get("escalation")
    if escalation:
        queue, priority = escalation.get("queue") or {}, escalation.get("priority") or {}
        lines += [
            "",
            "Escalated: "
            f"priority {priority.get('from')} -> {priority.get('to')}, "
            f"queue {queue.get('from')} -> {queue.get('to')}",
        ]
    lines += ["", "-- ", "Sent automatically by the contact router's SLA monitor."]
    return subject, "\n".join(lines) + "\n"
