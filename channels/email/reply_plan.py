"""The reply an inbound message is owed: an acknowledgement, an explanation, or none, and why.

A new contact that waits (or was accepted) is acknowledged, a deflected one pointed to the help
centre, and a verified sender rejected for a reason worth explaining told why, once a day per
address. Automatic mail is never answered, and a reply the sender asked not to get, one past
the loop breaker or past the hourly cap on explanations is recorded on the timeline instead
(``email_reply_suppressed``). An owed reply is written to the outbox in the caller's
transaction; ``router.services.outbox`` sends it after the commit. The words are replies.py's.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from channels.email.authentication import SenderCheck
from channels.email.checklist import missing_labels
from channels.email.classify import Classification
from channels.email.normalise import InboundEmail
from channels.email.receipt import PlannedReply
from channels.email.replies import ReplyText, acknowledgement, deflection, rejection
from config.policy import Policy
from config.settings import Settings
from router.core.domain import Category, ContactStatus, Severity
from router.intake import StoredDecision
from router.mailer import Mailer
from router.services import ratelimit
from router.store.models import Contact, ContactEvent
from router.store.models.email import EmailMessage, EmailOutbox

log = logging.getLogger(__name__)

# The reply each outcome of intake is owed; other outcomes (recorded mail) get none.
REPLY_KIND = {
    ContactStatus.REJECTED: "rejection",
    ContactStatus.DEFLECTED: "deflection",
    ContactStatus.WAITING: "acknowledgement",
    ContactStatus.ACCEPTED: "acknowledgement",
}
# Rejections worth explaining, all of a verified sender (intake refuses an unverified one
# first, as sender_not_verified): anyone else may be forged, and gets no backscatter.
EXPLAINED_REJECTIONS = frozenset({"not_an_admin", "inactive_admin", "not_admin_of_account"})
# The shared bucket (router/services/ratelimit.py) that caps rejections across all senders.
REJECTIONS_BUCKET = "email:rejections"
REPLY_HEADERS = {
    # RFC 3834: mark our replies as automatic, and ask Exchange not to answer them.
    "Auto-Submitted": "auto-replied",
    "X-Auto-Response-Suppress": "All",
}


class ReplyPlanner:
    """Decide the reply a new contact's message is owed and write it to the outbox."""

    def __init__(self, settings: Settings, policy: Policy, mailer: Mailer) -> None:
        self.settings = settings
        self.policy = policy
        self.mailer = mailer  # for the replies' Message-IDs, fixed when the row is written

    def plan(
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
        kind = REPLY_KIND.get(ContactStatus(contact.status))
        if kind is None:
            return [], []
        recipient = email.from_address
        if kind == "rejection":
            why = self._rejection_withheld(session, contact, sender, recipient, now)
            if why is not None:
                return [], [_suppress(session, contact, kind, recipient, why, now)]
        assert recipient is not None
        dedupe = self._dedupe_key(kind, contact, recipient, now)
        if not new_contact and _owed_already(session, dedupe):
            return [], []  # owed already (a delivery that raced this one wrote it)
        why = self._withheld(session, kind, email, recipient, now)
        if why is not None:
            return [], [_suppress(session, contact, kind, recipient, why, now)]
        try:
            text = self._render(kind, email, classification, contact)
        except Exception:
            # A bug in composing the reply must not cost the customer their request: the
            # contact and message are kept (the provider would otherwise retry for ever), and
            # the missing reply is on the timeline for staff.
            log.exception("email %s: the %s could not be composed", email.message_id, kind)
            why = f"the {kind} could not be composed (an error was logged)"
            return [], [_suppress(session, contact, kind, recipient, why, now)]
        return [self._write(session, kind, dedupe, email, contact, recipient, text, now)], []

    def _dedupe_key(self, kind: str, contact: Contact, recipient: str, now: datetime) -> str:
        """Return the key that makes a reply owed once: per contact, or per address and period."""
        if kind != "rejection":
            return f"{kind}:{contact.id}"
        period = timedelta(hours=self.settings.email_rejection_reply_hours)
        bucket = int(now.timestamp() // period.total_seconds())
        return f"rejection:{recipient}:{bucket}"

    def _rejection_withheld(
        self,
        session: Session,
        contact: Contact,
        sender: SenderCheck,
        recipient: str | None,
        now: datetime,
    ) -> str | None:
        """Return why a rejection is not explained (forgeable, not worth it, or already told)."""
        reason = StoredDecision.of(contact.decision).rejected
        if not sender.verified or reason not in EXPLAINED_REJECTIONS or recipient is None:
            return (
                f"the sender is not verified and may be forged ({sender.why})"
                if not sender.verified
                else f"no reply for a contact rejected as {reason}"
            )
        hours = self.settings.email_rejection_reply_hours
        dedupe = self._dedupe_key("rejection", contact, recipient, now)
        if _sent_since(
            session, recipient, now - timedelta(hours=hours), 1, "rejection"
        ) or _owed_already(session, dedupe):
            return f"an explanation was already sent to this address in the last {hours} hours"
        return None

    def _withheld(
        self, session: Session, kind: str, email: InboundEmail, recipient: str, now: datetime
    ) -> str | None:
        """Return why no reply goes out although one is owed: asked not to, or over a cap."""
        if email.suppress_reply:
            return "the sender asked for no automatic replies (X-Auto-Response-Suppress)"
        limit = self.settings.email_max_replies_per_hour
        if _sent_since(session, recipient, now - timedelta(hours=1), limit) >= limit:
            return f"loop breaker: {limit} automatic replies to this address in the last hour"
        if kind == "rejection" and not self._rejection_allowed(session, now):
            cap = self.settings.email_max_rejections_per_hour
            return (
                f"rejection cap: {cap} explanations to all senders per hour "
                "(EMAIL_MAX_REJECTIONS_PER_HOUR)"
            )
        return None

    def _rejection_allowed(self, session: Session, now: datetime) -> bool:
        """Take one rejection from the allowance all web processes share (False: none left)."""
        cap = self.settings.email_max_rejections_per_hour
        if cap <= 0:
            return False
        limit = ratelimit.RateLimit.per_window(cap, 3600)
        return ratelimit.take(session, REJECTIONS_BUCKET, limit, now=now).allowed

    def _write(
        self,
        session: Session,
        kind: str,
        dedupe: str,
        email: InboundEmail,
        contact: Contact,
        recipient: str,
        text: ReplyText,
        now: datetime,
    ) -> PlannedReply:
        """Add the reply to the outbox, and as an outgoing message on the contact's thread."""
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
        return PlannedReply(row.id, kind, recipient, text.subject, text.body, message_id)

    def _render(
        self,
        kind: str,
        email: InboundEmail,
        classification: Classification,
        contact: Contact,
    ) -> ReplyText:
        """Return the reply's words, with what the contact, its account and the policy say."""
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
        """Return why an acknowledgement promises no first-response time, in plain words."""
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


def _suppress(
    session: Session,
    contact: Contact,
    kind: str,
    recipient: str | None,
    why: str,
    now: datetime,
) -> str:
    """Put the reply that is not sent, and why, on the contact's timeline; return the why."""
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


def _owed_already(session: Session, dedupe: str) -> bool:
    """Return whether the outbox holds a reply under this key already."""
    return (
        session.scalar(select(EmailOutbox.id).where(EmailOutbox.dedupe_key == dedupe)) is not None
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
