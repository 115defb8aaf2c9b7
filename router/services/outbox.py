"""Send the email outbox: claim a due row, hand it to the mailer, record the attempt, back off.

A reply is written to the outbox (``EmailOutbox``, ``pending`` and due at once) in the same
transaction as the message that owes it; sending happens afterwards, here. Each attempt claims
its row with a lease, so two senders (the background thread, the retry job) never send one row
at the same time, and ends on the contact's timeline: ``email_sent``, ``email_send_failed``
(with the next attempt, backing off from a minute to six hours) or ``email_send_abandoned``
(a permanent refusal or the last attempt, also raised as an ops event). Delivery is at least
once: a crash between the SMTP hand-off and recording it repeats that one reply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError

from config.settings import Settings
from router.mailer import Mailer, MailError, mailer_from_settings
from router.store.db import Database
from router.store.models import ContactEvent, OpsEvent
from router.store.models.email import EmailOutbox

if TYPE_CHECKING:
    from router.runtime import Runtime

log = logging.getLogger(__name__)

FIRST_BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=6)
# Pauses between tries to record a send's outcome (seconds); then the error propagates.
RECORD_RETRY_PAUSES = (0.5, 2.0)


@dataclass(frozen=True)
class Delivery:
    """One attempt to send an outbox row."""

    outbox_id: int
    sent: bool
    error: str | None = None


@dataclass(frozen=True)
class RetrySummary:
    """What a retry run did."""

    attempted: int
    sent: int
    failed: int


class OutboxSender:
    """Send the rows of the email outbox, at least once each, with retries and back-off."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        mailer: Mailer,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.mailer = mailer
        self.clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_runtime(cls, rt: Runtime, mailer: Mailer | None = None) -> OutboxSender:
        """Return the sender wired to a running app's store and mail settings."""
        return cls(rt.db, rt.settings, mailer or mailer_from_settings(rt.settings))

    def deliver(self, outbox_ids: Sequence[int]) -> list[Delivery]:
        """Send these outbox rows now; after a success, also retry a few that are due."""
        deliveries = [d for d in (self._attempt(i) for i in outbox_ids) if d is not None]
        if deliveries and all(d.sent for d in deliveries):
            # The mail server is answering: a good moment to clear earlier failures.
            self.retry_due(limit=10)
        return deliveries

    def retry_due(self, limit: int = 100) -> RetrySummary:
        """Send the pending outbox rows whose next attempt is due."""
        now = self.clock()
        with self.db.session() as session:
            due = session.scalars(
                select(EmailOutbox.id)
                .where(EmailOutbox.status == "pending", EmailOutbox.next_attempt_at <= now)
                .order_by(EmailOutbox.next_attempt_at)
                .limit(limit)
            ).all()
        results = [d for d in (self._attempt(i) for i in due) if d is not None]
        sent = sum(1 for d in results if d.sent)
        return RetrySummary(attempted=len(results), sent=sent, failed=len(results) - sent)

    def _attempt(self, outbox_id: int) -> Delivery | None:
        """Claim one pending row, send it, record the outcome; None if another sender has it."""
        compose = self._claim(outbox_id)
        if compose is None:
            return None
        error: MailError | None = None
        try:
            self.mailer.send(self.mailer.compose(**compose))
        except MailError as exc:
            error = exc
        return self._record_attempt(outbox_id, error)

    def _claim(self, outbox_id: int) -> dict[str, Any] | None:
        """Lease a due row and count the attempt; return what to compose, None if not ours."""
        now = self.clock()
        lease = timedelta(seconds=max(300, 3 * self.settings.smtp_timeout_seconds))
        with self.db.transaction() as session:
            claimed = session.execute(
                update(EmailOutbox)
                .where(
                    EmailOutbox.id == outbox_id,
                    EmailOutbox.status == "pending",
                    or_(EmailOutbox.next_attempt_at.is_(None), EmailOutbox.next_attempt_at <= now),
                )
                .values(next_attempt_at=now + lease, attempts=EmailOutbox.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return None
            row = session.get(EmailOutbox, outbox_id)
            assert row is not None
            headers = dict(row.headers)
            in_reply_to = headers.pop("In-Reply-To", None)
            references = str(headers.pop("References", "")).split()
            return {
                "to": row.to_address,
                "to_name": row.to_name,
                "subject": row.subject,
                "text": row.body_text,
                "message_id": row.message_id,
                "in_reply_to": in_reply_to,
                "references": references,
                "headers": {str(k): str(v) for k, v in headers.items()},
            }

    def _record_attempt(self, outbox_id: int, error: MailError | None) -> Delivery:
        """Record a send's outcome, retrying briefly if the store is busy or away.

        A reply the mail server took but that is left unrecorded is sent again when its lease
        ends, so a short lock (another process's long write) is worth waiting out.
        """
        for pause in RECORD_RETRY_PAUSES:
            try:
                return self._record_attempt_once(outbox_id, error)
            except OperationalError as exc:
                log.warning("email %s: outcome not recorded yet (%s)", outbox_id, exc.orig)
                time.sleep(pause)
        return self._record_attempt_once(outbox_id, error)

    def _record_attempt_once(self, outbox_id: int, error: MailError | None) -> Delivery:
        """Mark the row sent, due again after a back-off, or abandoned; note it on the timeline."""
        done = self.clock()
        with self.db.transaction() as session:
            row = session.get(EmailOutbox, outbox_id)
            assert row is not None
            summary = {"kind": row.kind, "to": row.to_address, "message_id": row.message_id}
            if error is None:
                row.status, row.sent_at, row.next_attempt_at = "sent", done, None
                row.last_error = None
                event = ("email_sent", {**summary, "attempt": row.attempts})
            elif error.permanent or row.attempts >= self.settings.email_send_max_attempts:
                row.status, row.next_attempt_at, row.last_error = "failed", None, str(error)
                event = (
                    "email_send_abandoned",
                    {**summary, "attempt": row.attempts, "error": str(error)},
                )
                session.add(
                    OpsEvent(
                        at=done,
                        kind="email_send_abandoned",
                        severity="error",
                        message=(
                            f"gave up sending the {row.kind} to {row.to_address} after "
                            f"{row.attempts} attempt(s): {error}"
                        ),
                        data={**summary, "contact_id": row.contact_id},
                    )
                )
            else:
                backoff = min(FIRST_BACKOFF * 2 ** (row.attempts - 1), MAX_BACKOFF)
                row.next_attempt_at, row.last_error = done + backoff, str(error)
                event = (
                    "email_send_failed",
                    {
                        **summary,
                        "attempt": row.attempts,
                        "error": str(error),
                        "next_attempt_at": row.next_attempt_at.isoformat(),
                    },
                )
            if row.contact_id is not None:
                session.add(
                    ContactEvent(
                        contact_id=row.contact_id,
                        at=done,
                        kind=event[0],
                        actor="router",
                        data=event[1],
                    )
                )
        if error is not None:
            log.warning("email %s to contact %s not sent: %s", outbox_id, row.contact_id, error)
        return Delivery(
            outbox_id=outbox_id, sent=error is None, error=str(error) if error else None
        )


def retry_email_outbox(rt: Runtime, limit: int = 100) -> RetrySummary:
    """Send the due replies of the email outbox (for the CLI and the scheduler)."""
    return OutboxSender.from_runtime(rt).retry_due(limit=limit)
