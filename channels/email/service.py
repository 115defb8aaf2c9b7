"""Email intake: thread replies, store new mail through the one intake path, owe and send replies.

A new message goes through ``IntakeService.intake_with_follow_up``: the contact, the message
itself and the reply it is owed (an outbox row) are stored in one transaction, idempotent on the
Message-ID, so a provider retry finds the work done. Replies are sent only after that commit; a
failed send stays in the outbox and is retried (``retry_due``, run by ``flask --app app email
retry-outbox`` or the scheduler, and piggy-backed on the next successful send), each attempt on
the contact's timeline. Delivery is at least once: a crash between the SMTP hand-off and
recording it repeats that one reply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from channels.email.authentication import SenderCheck, check_sender
from channels.email.checklist import missing_labels
from channels.email.classify import Classification, ClassifierRules, classify, contact_reference
from channels.email.normalise import InboundEmail
from channels.email.replies import ReplyText, acknowledgement, deflection, rejection
from config.policy import Policy
from config.settings import Settings
from router.core.domain import Category, Channel, ContactStatus, Severity
from router.intake import (
    ContactRequest,
    IntakeMode,
    IntakeResult,
    IntakeService,
    ReplyAuthor,
    Sender,
    StoredContact,
    StoredDecision,
    reply_author,
)
from router.mailer import Mailer, MailError, mailer_from_settings
from router.runtime import Runtime
from router.services import ratelimit
from router.services.contact_changes import mark_answered
from router.store.db import Database
from router.store.models import Contact, ContactEvent, OpsEvent
from router.store.models.email import EmailMessage, EmailOutbox, WebhookReplayToken

log = logging.getLogger(__name__)

# Contacts a reply may be threaded onto; a rejected, deflected or recorded contact is not a
# conversation, so mail "replying" to one goes through intake again.
THREADABLE = frozenset({ContactStatus.WAITING, ContactStatus.ACCEPTED, ContactStatus.RESOLVED})
# Rejections worth explaining, all of a verified sender (intake refuses an unverified one
# first, as sender_not_verified): anyone else may be forged, and gets no backscatter.
EXPLAINED_REJECTIONS = frozenset({"not_an_admin", "inactive_admin", "not_admin_of_account"})
# The shared bucket (router/services/ratelimit.py) that caps rejections across all senders.
REJECTIONS_BUCKET = "email:rejections"
MAX_BACKOFF = timedelta(hours=6)
# Pauses between tries to record a send's outcome (seconds); then the error propagates.
RECORD_RETRY_PAUSES = (0.5, 2.0)
FIRST_BACKOFF = timedelta(minutes=1)
REPLY_HEADERS = {
    # RFC 3834: mark our replies as automatic, and ask Exchange not to answer them.
    "Auto-Submitted": "auto-replied",
    "X-Auto-Response-Suppress": "All",
}
_MAX_CONTACT_ID = 2**31 - 1

_rules_cache: dict[int, tuple[Policy, ClassifierRules]] = {}
# Run for every inbound message, so built once.
_MESSAGE_BY_ID = select(EmailMessage).where(EmailMessage.message_id == bindparam("message_id"))


class ReplayedToken(Exception):
    """The webhook's one-time token was used before."""


@dataclass(frozen=True)
class PlannedReply:
    """A reply written to the outbox for this message."""

    outbox_id: int
    kind: str
    to: str
    subject: str
    body: str
    message_id: str


@dataclass(frozen=True)
class Receipt:
    """What became of an inbound message."""

    outcome: str  # created, threaded, duplicate, own_message
    contact_id: int | None
    reference: str | None
    status: str | None
    reason: str | None = None
    queue: str | None = None
    due_at: datetime | None = None
    replies: tuple[PlannedReply, ...] = ()
    suppressed: tuple[str, ...] = ()

    @classmethod
    def for_contact(cls, outcome: str, contact: Contact, **extra: Any) -> Receipt:
        """Return the receipt of a message stored on ``contact``."""
        return cls(
            outcome=outcome,
            contact_id=contact.id,
            reference=contact.reference,
            status=contact.status,
            queue=contact.queue_key,
            due_at=contact.due_at,
            **extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the receipt as the endpoints answer it."""
        return {
            "outcome": self.outcome,
            "contact": self.reference,
            "status": self.status,
            "reason": self.reason,
            "queue": self.queue,
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "suppressed": list(self.suppressed),
        }


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


@dataclass(frozen=True)
class _Thread:
    contact_id: int | None
    by: str | None
    candidate: str | None = None  # a reference the message named but may not join, and why
    why_not: str | None = None
    staff: bool = False  # a verified staff member's reply: the contact's first response


def classifier_rules(policy: Policy) -> ClassifierRules:
    """Return the compiled keyword rules of ``policy`` (compiled once per policy object)."""
    cached = _rules_cache.get(id(policy))
    if cached is None or cached[0] is not policy:
        cached = (policy, ClassifierRules.from_policy(policy))
        _rules_cache[id(policy)] = cached
    return cached[1]


class EmailChannel:
    """Store inbound email as contacts (or timeline entries) and send the replies they are owed."""

    def __init__(
        self,
        db: Database,
        intake: IntakeService,
        policy: Policy,
        settings: Settings,
        mailer: Mailer,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.intake = intake
        self.policy = policy
        self.settings = settings
        self.mailer = mailer
        self.clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_runtime(cls, rt: Runtime, mailer: Mailer | None = None) -> EmailChannel:
        """Return the channel wired to a running app's collaborators."""
        return cls(
            rt.db, rt.intake, rt.policy, rt.settings, mailer or mailer_from_settings(rt.settings)
        )

    # --- inbound -------------------------------------------------------------------------

    def receive(
        self, email: InboundEmail, now: datetime, *, replay_token: tuple[str, str] | None = None
    ) -> Receipt:
        """Store ``email`` once: as a reply on its contact, or as a new contact via intake."""
        try:
            return self._receive(email, now, replay_token)
        except IntegrityError:
            # A concurrent delivery of the same message (or token) won: this pass sees it.
            return self._receive(email, now, replay_token)

    def _receive(
        self, email: InboundEmail, now: datetime, token: tuple[str, str] | None
    ) -> Receipt:
        sender = self.check_sender(email)
        if email.automatic_by_subject and sender.verified:
            # A proven sender's "Delivery failure: password resets never arrive" is a request:
            # only the structure (null sender, report, Auto-Submitted, ...) outweighs that.
            email = replace(email, automatic=None, automatic_by_subject=False)
        with self.db.session() as session:
            existing = session.scalar(_MESSAGE_BY_ID, {"message_id": email.message_id})
            duplicate = _duplicate(session, existing) if existing is not None else None
            # A message already stored is answered as stored, even on a reused token: the
            # provider re-sending a delivery whose 2xx it lost must not be refused for hours.
            # A reused token on anything new is a replay.
            seen = token is not None and _token_seen(session, token)
            if duplicate is None and seen:
                raise ReplayedToken
            if duplicate is None:
                thread = self._thread(session, email, sender)
                classification = classify(
                    email.subject, email.text, email.attachments, classifier_rules(self.policy)
                )
        if duplicate is not None:
            if token is not None and not seen:
                with self.db.transaction() as writer:
                    _remember_token(writer, token, now, self.settings)
            return duplicate
        if thread.contact_id is not None:
            return self._append(email, sender, thread, classification, now, token)

        def complete(stored: StoredContact) -> Receipt:
            session, contact, result = stored.session, stored.contact, stored.result
            return self._complete(
                session, email, sender, classification, contact, result, now, token
            )

        request = self._request(email, sender, classification, thread, now)
        return self.intake.intake_with_follow_up(request, complete)[1]

    def check_sender(self, email: InboundEmail) -> SenderCheck:
        """Return whether the message's From: address is proven by an aligned pass."""
        return check_sender(
            email.from_address,
            email.from_problem,
            email.auth.verdicts,
            email.auth.results_headers,
            self.settings.trusted_authserv_ids,
        )

    def _thread(self, session: Session, email: InboundEmail, sender: SenderCheck) -> _Thread:
        """Find the contact a reply belongs to, and whether this sender may add to it."""
        named = [*email.in_reply_to, *reversed(email.references)]
        # Anyone can mark mail automatic (Auto-Submitted, an "Undeliverable:" subject) and quote
        # any Message-ID in an attached part, so those name a contact only through a message we
        # sent (a bounce or an auto-reply to our acknowledgement), never one we received.
        any_message = set() if email.automatic else set(named)
        candidates = [*named, *email.embedded_message_ids]
        contact: Contact | None = None
        by: str | None = None
        if candidates:
            rows = session.execute(
                select(
                    EmailMessage.message_id, EmailMessage.contact_id, EmailMessage.direction
                ).where(
                    EmailMessage.message_id.in_(candidates[:200]),
                    EmailMessage.contact_id.is_not(None),
                )
            ).all()
            known = {
                message_id: contact_id
                for message_id, contact_id, direction in rows
                if direction == "out" or message_id in any_message
            }
            for message_id in candidates:
                if message_id in known:
                    contact, by = session.get(Contact, known[message_id]), "headers"
                    break
        if contact is None:
            reference = contact_reference(email.subject)
            if reference is not None and reference <= _MAX_CONTACT_ID:
                contact, by = session.get(Contact, reference), "subject"
        if contact is None:
            return _Thread(None, None)
        if ContactStatus(contact.status) not in THREADABLE:
            return _Thread(None, None, contact.reference, f"the contact is {contact.status}")
        if email.automatic:
            if by == "headers":
                return _Thread(contact.id, by)  # a bounce or auto-reply to a message we sent
            why = "automatic mail joins a contact only by naming a message we sent"
            return _Thread(None, None, contact.reference, why)
        author = reply_author(
            session,
            contact,
            email.from_address,
            sender_trusted=sender.verified,
            staff_domains=self.settings.staff_email_domains,
        )
        if author is ReplyAuthor.STAFF:
            return _Thread(contact.id, by, staff=True)
        if author is ReplyAuthor.OUTSIDER:
            why = (
                "the sender may not add to it"
                if sender.verified
                else f"the sender is not verified ({sender.why})"
            )
            return _Thread(None, None, contact.reference, why)
        return _Thread(contact.id, by)

    def _append(
        self,
        email: InboundEmail,
        sender: SenderCheck,
        thread: _Thread,
        classification: Classification,
        now: datetime,
        token: tuple[str, str] | None,
    ) -> Receipt:
        """Add a reply to its contact's timeline; the contact's clock is left alone."""
        with self.db.transaction() as session:
            contact = session.get(Contact, thread.contact_id)
            assert contact is not None
            kind = "automatic" if email.automatic else "reply"
            session.add(_stored_message(email, sender, kind, contact.id, classification))
            added: list[str] = []
            if not email.automatic and contact.checklist:
                merged = dict(contact.checklist)
                for key, present in classification.checklist.items:
                    if present and merged.get(key) is False:
                        merged[key] = True
                        added.append(key)
                if added:
                    contact.checklist = merged
            session.add(
                ContactEvent(
                    contact_id=contact.id,
                    at=now,
                    kind="email_automatic" if email.automatic else "email_reply",
                    actor=email.from_address or "unknown sender",
                    data={
                        **email.summary(),
                        "sender": sender.to_dict(),
                        "threaded_by": thread.by,
                        "checklist_added": added,
                        "severity_marker": classification.severity_marker,
                    },
                )
            )
            if thread.staff:
                # Staff answered the customer by email: that is the first response (SPEC 2.3).
                mark_answered(
                    session, contact, now, actor=email.from_address or "", now=now, accept=False
                )
            if token is not None:
                _remember_token(session, token, now, self.settings)
            return Receipt.for_contact("threaded", contact)

    def _request(
        self,
        email: InboundEmail,
        sender: SenderCheck,
        classification: Classification,
        thread: _Thread,
        now: datetime,
    ) -> ContactRequest:
        details: dict[str, Any] = {
            **email.summary(),
            "sender": sender.to_dict(),
            "classification": classification.to_dict(),
        }
        if thread.candidate:
            details["not_threaded"] = {"contact": thread.candidate, "why": thread.why_not}
        tags = {"severity-unstated"} if classification.severity_marker is None else set()
        return ContactRequest(
            channel=Channel.EMAIL,
            external_id=email.message_id,
            received_at=now,
            sender=Sender(
                admin_email=email.from_address,
                verified=sender.verified,
                account_hints=tuple(
                    hint for hint in (email.mailbox_hash, classification.account_hint) if hint
                ),
                from_address=email.from_address,
            ),
            mode=IntakeMode.RECORD_ONLY if email.automatic is not None else IntakeMode.ROUTE,
            subject=email.subject[:500] or None,
            severity=classification.severity,
            category=classification.category,
            topic=classification.topic,
            tags=frozenset(tags),
            checklist={} if email.automatic else classification.checklist.to_dict(),
            details=details,
        )

    def _complete(
        self,
        session: Session,
        email: InboundEmail,
        sender: SenderCheck,
        classification: Classification,
        contact: Contact,
        result: IntakeResult,
        now: datetime,
        token: tuple[str, str] | None,
    ) -> Receipt:
        """Store the message with its contact and owe the reply (in intake's transaction)."""
        session.add(_stored_message(email, sender, "inbound", contact.id, classification))
        session.flush()  # a concurrent duplicate fails here, before any reply is owed
        replies, suppressed = self._plan_reply(
            session, email, sender, classification, contact, now, new_contact=result.created
        )
        if token is not None:
            _remember_token(session, token, now, self.settings)
        return Receipt.for_contact(
            "created",
            contact,
            reason=result.reason,
            replies=tuple(replies),
            suppressed=tuple(suppressed),
        )

    # --- replies owed ----------------------------------------------------------------------

    def _plan_reply(
        self,
        session: Session,
        email: InboundEmail,
        sender: SenderCheck,
        classification: Classification,
        contact: Contact,
        now: datetime,
        *,
        new_contact: bool,
    ) -> tuple[list[PlannedReply], list[str]]:
        """Write the reply this message is owed to the outbox, or record why there is none."""
        if email.automatic:
            return [], []  # loop safety: automatic mail is recorded, never answered
        status = ContactStatus(contact.status)
        recipient = email.from_address
        if status is ContactStatus.REJECTED:
            reason = StoredDecision.of(contact.decision).rejected
            kind = "rejection"
            if not sender.verified or reason not in EXPLAINED_REJECTIONS or recipient is None:
                why = (
                    f"the sender is not verified and may be forged ({sender.why})"
                    if not sender.verified
                    else f"no reply for a contact rejected as {reason}"
                )
                return [], [self._suppress(session, contact, kind, recipient, why, now)]
            period = timedelta(hours=self.settings.email_rejection_reply_hours)
            bucket = int(now.timestamp() // period.total_seconds())
            dedupe = f"rejection:{recipient}:{bucket}"
        elif status is ContactStatus.DEFLECTED:
            kind, dedupe = "deflection", f"deflection:{contact.id}"
        elif status in (ContactStatus.WAITING, ContactStatus.ACCEPTED):
            kind, dedupe = "acknowledgement", f"acknowledgement:{contact.id}"
        else:
            return [], []
        assert recipient is not None
        if kind == "rejection" and (
            _sent_since(session, recipient, now - period, 1, kind)
            or session.scalar(select(EmailOutbox.id).where(EmailOutbox.dedupe_key == dedupe))
        ):
            why = (
                "an explanation was already sent to this address in the last "
                f"{self.settings.email_rejection_reply_hours} hours"
            )
            return [], [self._suppress(session, contact, kind, recipient, why, now)]
        if not new_contact and session.scalar(
            select(EmailOutbox.id).where(EmailOutbox.dedupe_key == dedupe)
        ):
            return [], []  # owed already (a delivery that raced this one wrote it)
        if email.suppress_reply:
            why = "the sender asked for no automatic replies (X-Auto-Response-Suppress)"
            return [], [self._suppress(session, contact, kind, recipient, why, now)]
        limit = self.settings.email_max_replies_per_hour
        if _sent_since(session, recipient, now - timedelta(hours=1), limit) >= limit:
            why = f"loop breaker: {limit} automatic replies to this address in the last hour"
            return [], [self._suppress(session, contact, kind, recipient, why, now)]
        if kind == "rejection" and not self._rejection_allowed(session, now):
            cap = self.settings.email_max_rejections_per_hour
            why = (
                f"rejection cap: {cap} explanations to all senders per hour "
                "(EMAIL_MAX_REJECTIONS_PER_HOUR)"
            )
            return [], [self._suppress(session, contact, kind, recipient, why, now)]

        try:
            text = self._render(kind, email, classification, contact)
        except Exception:
            # A bug in composing the reply must not cost the customer their request: the
            # contact and message are kept (the provider would otherwise retry for ever), and
            # the missing reply is on the timeline for staff.
            log.exception("email %s: the %s could not be composed", email.message_id, kind)
            why = f"the {kind} could not be composed (an error was logged)"
            return [], [self._suppress(session, contact, kind, recipient, why, now)]
        message_id = self.mailer.new_message_id()
        original = email.headers.get("message-id")
        references = [*email.references, email.message_id]
        headers = {
            **REPLY_HEADERS,
            "X-Contact-Router": kind,
            "In-Reply-To": original or email.message_id,
            "References": " ".join(references[-20:]),
        }
        row = EmailOutbox(
            dedupe_key=dedupe,
            kind=kind,
            contact_id=contact.id,
            to_address=recipient,
            # A rejection names nobody: the display name is the sender's to choose (backscatter).
            to_name=email.from_name[:200] if email.from_name and kind != "rejection" else None,
            message_id=message_id,
            subject=text.subject,
            body_text=text.body,
            headers=headers,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(row)
        session.add(
            EmailMessage(
                message_id=message_id,
                direction="out",
                kind=kind,
                contact_id=contact.id,
                provider="router",
                from_address=self.settings.mail_from.lower(),
                to_addresses=[recipient],
                subject=text.subject,
                in_reply_to=email.message_id,
                references=references[-20:],
                data={"outbox": True},
                at=now,
            )
        )
        session.flush()
        return [PlannedReply(row.id, kind, recipient, text.subject, text.body, message_id)], []

    def _rejection_allowed(self, session: Session, now: datetime) -> bool:
        """Take one rejection from the allowance all web processes share (False: none left)."""
        cap = self.settings.email_max_rejections_per_hour
        if cap <= 0:
            return False
        limit = ratelimit.RateLimit.per_window(cap, 3600)
        return ratelimit.take(session, REJECTIONS_BUCKET, limit, now=now).allowed

    def _suppress(
        self,
        session: Session,
        contact: Contact,
        kind: str,
        recipient: str | None,
        why: str,
        now: datetime,
    ) -> str:
        session.add(
            ContactEvent(
                contact_id=contact.id,
                at=now,
                kind="email_reply_suppressed",
                actor="router",
                data={"kind": kind, "to": recipient, "reason": why},
            )
        )
        return why

    def _render(
        self,
        kind: str,
        email: InboundEmail,
        classification: Classification,
        contact: Contact,
    ) -> ReplyText:
        signature = f"-- \n{self.settings.mail_from_name}\n{self.settings.mail_from}"
        if kind == "rejection":
            # Nothing the sender wrote is echoed (subject, name): a rejection is not a relay.
            return rejection(
                period_hours=self.settings.email_rejection_reply_hours, signature=signature
            )
        if kind == "deflection":
            return deflection(
                reference=contact.reference,
                subject=email.subject,
                recipient_name=email.from_name,
                help_center_url=self.settings.help_center_url,
                signature=signature,
            )
        account = contact.account
        timezone = (
            account.timezone
            if account is not None
            else self.policy.regions[self.policy.default_region].timezone
        )
        severity = Severity(contact.severity)
        return acknowledgement(
            reference=contact.reference,
            subject=email.subject,
            recipient_name=email.from_name,
            severity=severity,
            severity_stated=classification.severity_marker is not None,
            severity_definition=self.policy.severities[severity].definition.rstrip("."),
            due_at=contact.due_at,
            timezone=timezone,
            no_commitment_reason=self._no_commitment(contact),
            missing=missing_labels(dict(contact.checklist or {})),
            signature=signature,
        )

    def _no_commitment(self, contact: Contact) -> str:
        if contact.tier == "trial":
            return (
                "there is none: trial support has no contractual first-response time, but an "
                "engineer will reply as soon as possible."
            )
        try:
            category = Category(contact.category)
        except ValueError:
            category = Category.BREAK_FIX
        if category not in self.policy.sla_categories:
            label = self.policy.categories[category].label
            return (
                f'there is none: requests of this kind ("{label}") have no first-response '
                "commitment, but the right team will reply as soon as possible."
            )
        return (
            "there is none for this request under your support plan, but we will reply as soon "
            "as possible."
        )

    # --- outbound ---------------------------------------------------------------------------

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
            compose = {
                "to": row.to_address,
                "to_name": row.to_name,
                "subject": row.subject,
                "text": row.body_text,
                "message_id": row.message_id,
                "in_reply_to": in_reply_to,
                "references": references,
                "headers": {str(k): str(v) for k, v in headers.items()},
            }
        error: MailError | None = None
        try:
            self.mailer.send(self.mailer.compose(**compose))
        except MailError as exc:
            error = exc
        return self._record_attempt(outbox_id, error)

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
    return EmailChannel.from_runtime(rt).retry_due(limit=limit)


def _duplicate(session: Session, existing: EmailMessage) -> Receipt:
    """Answer a message stored before (a provider retry), or one of our own coming back."""
    contact = session.get(Contact, existing.contact_id) if existing.contact_id else None
    outcome = "own_message" if existing.direction == "out" else "duplicate"
    if contact is None:
        return Receipt(outcome=outcome, contact_id=None, reference=None, status=None)
    return Receipt.for_contact(outcome, contact)


def _stored_message(
    email: InboundEmail,
    sender: SenderCheck,
    kind: str,
    contact_id: int,
    classification: Classification,
) -> EmailMessage:
    return EmailMessage(
        message_id=email.message_id,
        direction="in",
        kind=kind,
        contact_id=contact_id,
        provider=email.provider,
        from_address=email.from_address,
        to_addresses=list(email.to),
        subject=email.subject,
        in_reply_to=email.in_reply_to[0] if email.in_reply_to else None,
        references=list(email.references),
        data={
            "from_name": email.from_name,
            "cc": list(email.cc),
            "text": email.text,
            "html": email.html,
            "attachments": [attachment.to_dict() for attachment in email.attachments],
            "headers": dict(email.headers),
            "auth": email.auth.to_dict(),
            "sender": sender.to_dict(),
            "from_problem": email.from_problem,
            "automatic": email.automatic,
            "envelope_from": email.envelope_from,
            "message_id_generated": email.message_id_generated,
            "embedded_message_ids": list(email.embedded_message_ids),
            "size": email.size,
            "capped": list(email.capped),
            "classification": classification.to_dict(),
        },
    )


def _sent_statement(*, of_kind: bool) -> Any:
    """Count up to ``most`` replies to an address since an instant (built once, bounded)."""
    sent = select(EmailOutbox.id).where(
        EmailOutbox.to_address == bindparam("recipient"),
        EmailOutbox.created_at > bindparam("since", type_=EmailOutbox.created_at.type),
    )
    if of_kind:
        sent = sent.where(EmailOutbox.kind == bindparam("kind"))
    return select(func.count()).select_from(sent.limit(bindparam("most")).subquery())


_SENT = _sent_statement(of_kind=False)
_SENT_OF_KIND = _sent_statement(of_kind=True)


def _sent_since(
    session: Session, recipient: str, since: datetime, most: int, kind: str | None = None
) -> int:
    """Return how many replies went to ``recipient`` since ``since``, counting up to ``most``."""
    params: dict[str, Any] = {"recipient": recipient, "since": since, "most": most}
    if kind is None:
        return int(session.connection().scalar(_SENT, params) or 0)
    return int(session.connection().scalar(_SENT_OF_KIND, {**params, "kind": kind}) or 0)


def _token_seen(session: Session, token: tuple[str, str]) -> bool:
    provider, value = token
    return (
        session.scalar(
            select(WebhookReplayToken.id).where(
                WebhookReplayToken.provider == provider, WebhookReplayToken.token == value
            )
        )
        is not None
    )


def _remember_token(
    session: Session, token: tuple[str, str], now: datetime, settings: Settings
) -> None:
    """Record a one-time token, and forget those too old to pass the freshness check anyway."""
    provider, value = token
    window = timedelta(seconds=2 * settings.email_webhook_max_age_seconds)
    session.execute(
        delete(WebhookReplayToken)
        .where(WebhookReplayToken.provider == provider, WebhookReplayToken.seen_at < now - window)
        .execution_options(synchronize_session=False)
    )
    session.add(WebhookReplayToken(provider=provider, token=value, seen_at=now))
