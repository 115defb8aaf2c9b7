"""Email intake: the one flow per inbound message, from parsed mail to contact and owed reply.

A reply to a contact is stored on its timeline (threads.py). Any other message goes through
``IntakeService.intake_with_follow_up``: the contact, the message itself and the reply it is
owed (an outbox row, reply_plan.py) are stored in one transaction, idempotent on the
Message-ID, so a provider retry finds the work done. Replies are sent only after that commit,
by ``router.services.outbox`` (the channel's ``outbox``): a failed send stays in the outbox and
is retried by ``flask --app app email retry-outbox`` or the scheduler.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from channels.email.authentication import SenderCheck, check_sender
from channels.email.classify import Classification, ClassifierRules, classify
from channels.email.normalise import InboundEmail
from channels.email.receipt import Receipt
from channels.email.replay_tokens import ReplayedToken, Token, remember_token, token_seen
from channels.email.reply_plan import ReplyPlanner
from channels.email.stored import duplicate, find_stored, stored_message
from channels.email.threads import Thread, find_thread, store_reply
from config.policy import Policy
from config.settings import Settings
from router.core.domain import Channel
from router.intake import (
    ContactRequest,
    IntakeMode,
    IntakeResult,
    IntakeService,
    Sender,
    StoredContact,
)
from router.mailer import Mailer, mailer_from_settings
from router.runtime import Runtime
from router.services.outbox import OutboxSender
from router.store.db import Database
from router.store.models import Contact

_rules_cache: dict[int, tuple[Policy, ClassifierRules]] = {}


def classifier_rules(policy: Policy) -> ClassifierRules:
    """Return the compiled keyword rules of ``policy`` (compiled once per policy object)."""
    cached = _rules_cache.get(id(policy))
    if cached is None or cached[0] is not policy:
        cached = (policy, ClassifierRules.from_policy(policy))
        _rules_cache[id(policy)] = cached
    return cached[1]


class EmailService:
    """Store inbound email as contacts (or timeline entries) and owe the replies they are due."""

    def __init__(
        self,
        db: Database,
        intake: IntakeService,
        policy: Policy,
        settings: Settings,
        mailer: Mailer,
    ) -> None:
        self.db = db
        self.intake = intake
        self.policy = policy
        self.settings = settings
        self.replies = ReplyPlanner(settings, policy, mailer)
        # Where the owed replies leave from: sent inline, by the background sender or the retry.
        self.outbox = OutboxSender(db, settings, mailer)

    @classmethod
    def from_runtime(cls, rt: Runtime, mailer: Mailer | None = None) -> EmailService:
        """Return the channel wired to a running app's collaborators."""
        return cls(
            rt.db, rt.intake, rt.policy, rt.settings, mailer or mailer_from_settings(rt.settings)
        )

    def receive(
        self, email: InboundEmail, now: datetime, *, replay_token: Token | None = None
    ) -> Receipt:
        """Store ``email`` once: as a reply on its contact, or as a new contact via intake."""
        try:
            return self._receive(email, now, replay_token)
        except IntegrityError:
            # A concurrent delivery of the same message (or token) won: this pass sees it.
            return self._receive(email, now, replay_token)

    def check_sender(self, email: InboundEmail) -> SenderCheck:
        """Return whether the message's From: address is proven by an aligned pass."""
        return check_sender(
            email.from_address,
            email.from_problem,
            email.auth.verdicts,
            email.auth.results_headers,
            self.settings.trusted_authserv_ids,
        )

    def _receive(self, email: InboundEmail, now: datetime, token: Token | None) -> Receipt:
        sender = self.check_sender(email)
        if email.automatic_by_subject and sender.verified:
            # A proven sender's "Delivery failure: password resets never arrive" is a request:
            # only the structure (null sender, report, Auto-Submitted, ...) outweighs that.
            email = replace(email, automatic=None, automatic_by_subject=False)
        with self.db.session() as session:
            existing = find_stored(session, email.message_id)
            seen_before = duplicate(session, existing) if existing is not None else None
            # A message already stored is answered as stored, even on a reused token: the
            # provider re-sending a delivery whose 2xx it lost must not be refused for hours.
            # A reused token on anything new is a replay.
            seen = token is not None and token_seen(session, token)
            if seen_before is None and seen:
                raise ReplayedToken
            if seen_before is None:
                thread = find_thread(session, email, sender, self.settings.staff_email_domains)
                classification = classify(
                    email.subject, email.text, email.attachments, classifier_rules(self.policy)
                )
        if seen_before is not None:
            if token is not None and not seen:
                with self.db.transaction() as writer:
                    remember_token(writer, token, now, self.settings)
            return seen_before
        if thread.contact_id is not None:
            return self._append(email, sender, thread, classification, now, token)

        def complete(stored: StoredContact) -> Receipt:
            session, contact, result = stored.session, stored.contact, stored.result
            return self._complete(
                session, email, sender, classification, contact, result, now, token
            )

        request = self._request(email, sender, classification, thread, now)
        return self.intake.intake_with_follow_up(request, complete)[1]

    def _append(
        self,
        email: InboundEmail,
        sender: SenderCheck,
        thread: Thread,
        classification: Classification,
        now: datetime,
        token: Token | None,
    ) -> Receipt:
        """Add a reply to its contact's timeline, in one transaction with the token."""
        with self.db.transaction() as session:
            contact = store_reply(session, email, sender, thread, classification, now)
            if token is not None:
                remember_token(session, token, now, self.settings)
            return Receipt.for_contact("threaded", contact)

    def _request(
        self,
        email: InboundEmail,
        sender: SenderCheck,
        classification: Classification,
        thread: Thread,
        now: datetime,
    ) -> ContactRequest:
        """Return what intake is asked to decide about a message that joins no contact."""
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
        token: Token | None,
    ) -> Receipt:
        """Store the message with its contact and owe the reply (in intake's transaction)."""
        session.add(stored_message(email, sender, "inbound", contact.id, classification))
        session.flush()  # a concurrent duplicate fails here, before any reply is owed
        replies, suppressed = self.replies.plan(
            session, email, sender, classification, contact, now, new_contact=result.created
        )
        if token is not None:
            remember_token(session, token, now, self.settings)
        return Receipt.for_contact(
            "created",
            contact,
            reason=result.reason,
            replies=tuple(replies),
            suppressed=tuple(suppressed),
        )
