"""Chat sessions and the Contact Support form: portal identity, intake, timeline, queue standing.

Every contact goes through the one intake path (``IntakeService.intake``); this service adds
what the portal needs around it: it checks who the token vouches for before anything is stored,
makes retries idempotent on the client's key, appends chat messages to the contact's timeline,
re-routes a SupportBot session to a human on hand-off, and says where the contact stands.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from channels.chat import forms, replies
from channels.chat.replies import Mode
from channels.chat.tokens import PortalClaims, TokenError, bearer_token, verify_portal_token
from config.policy import Policy
from config.settings import Settings
from router.core.calendar import as_utc
from router.core.domain import Category, Channel, ContactStatus, Severity, Tier, Topic
from router.intake import (
    ContactRequest,
    FollowUp,
    IdentityError,
    IntakeMode,
    IntakeResult,
    IntakeService,
    Sender,
    StoredContact,
    StoredDecision,
    identify_admin,
)
from router.services import waiting
from router.store.db import Database
from router.store.models import Account, Contact, ContactEvent, Queue

log = logging.getLogger("router.chat")

HANDOFF_SUFFIX = "#handoff"
_QUEUE_NAME = select(Queue.name).where(Queue.key == bindparam("key"))
_CLOSED = {ContactStatus.RESOLVED, ContactStatus.REJECTED, ContactStatus.RECORDED}
# Intake's reasons, as the portal is told them (the token was fine; the person is not).
_IDENTITY_REASONS = {
    "not_an_admin": ("unknown_admin", "no administrator has this email address"),
    "inactive_admin": ("inactive_admin", "this administrator is not active"),
    "not_admin_of_account": ("wrong_org", "this administrator cannot act for this account"),
    "unknown_account": ("wrong_org", "this administrator cannot act for this account"),
}


class AuthError(Exception):
    """The portal token or the person it names is refused (401)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


class NotFound(Exception):
    """No such chat session for this administrator (404)."""


class Conflict(Exception):
    """The request does not fit the session's state (409); ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


class KeyReused(Exception):
    """An Idempotency-Key came back with a different request (422)."""


class LimitReached(Exception):
    """The session has taken as many messages as it may (429)."""


@dataclass(frozen=True)
class PortalUser:
    """An active administrator the portal vouched for, acting for ``account_id``."""

    admin_id: int
    admin_email: str
    account_id: str
    via_partner_id: str | None


@dataclass(frozen=True)
class Outcome:
    """A response body and whether this request created something (201) or replayed (200)."""

    body: dict[str, Any]
    created: bool


def utcnow() -> datetime:
    """Return the current instant in UTC."""
    return datetime.now(UTC)


class ChatService:
    """Chat sessions and portal requests, over the one intake path."""

    def __init__(
        self,
        *,
        settings: Settings,
        policy: Policy,
        db: Database,
        intake: IntakeService,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.db = db
        self.intake = intake
        # Replaceable so tests (and tools) can fix "now"; everything here reads it once per call.
        self.clock = clock

    def now(self) -> datetime:
        """Return the service's current instant (aware, UTC)."""
        return as_utc(self.clock(), "clock()")

    # -- identity ----------------------------------------------------------------------------

    def verify(self, authorization: str | None) -> PortalClaims:
        """Verify the portal token alone (signature, algorithm, claims, expiry); no store access."""
        try:
            return verify_portal_token(
                bearer_token(authorization),
                secret=self.settings.portal_jwt_secret,
                now=self.now(),
                leeway=timedelta(seconds=self.settings.portal_jwt_leeway_seconds),
                max_lifetime=timedelta(seconds=self.settings.portal_token_max_lifetime_seconds),
            )
        except TokenError as exc:
            raise AuthError(exc.reason, exc.message) from None

    def authenticate(self, authorization: str | None) -> PortalUser:
        """Verify the portal token and that it names an active admin of its org; store nothing."""
        claims = self.verify(authorization)
        with self.db.session() as session:
            return self._portal_user(session, claims)

    def _portal_user(self, session: Session, claims: PortalClaims) -> PortalUser:
        """Return the active admin ``claims`` name, acting for its org; raise AuthError if none."""
        try:
            identity = identify_admin(
                session, account_id=claims.account_id, admin_email=claims.admin_email
            )
        except IdentityError as exc:
            raise _auth_error(exc.reason) from None
        assert identity.admin is not None  # the token names an admin
        return PortalUser(
            admin_id=identity.admin.id,
            admin_email=identity.admin.email,
            account_id=identity.account.id,
            via_partner_id=identity.via_partner.id if identity.via_partner else None,
        )

    # -- chat --------------------------------------------------------------------------------

    def open_session(self, claims: PortalClaims, form: forms.ChatOpen, key: str | None) -> Outcome:
        """Open a chat through intake and say how it behaves for the admin's tier right now.

        The token is verified; intake checks the admin it names (refusing, not storing, anyone
        else) and the answer is rendered in intake's own transaction: one transaction in all.
        """
        now = self.now()
        fingerprint = forms.fingerprint(
            {
                "topic": form.topic.value,
                "subject": form.subject,
                "severity": form.severity.value if form.severity else None,
                "message": form.message,
            }
        )
        details: dict[str, Any] = {"source": "portal_chat", "request_fingerprint": fingerprint}
        if form.message:
            details["message"] = _message_data(form.message)
        request = self._portal_contact(
            Channel.CHAT,
            claims,
            key,
            now,
            subject=form.subject,
            severity=form.severity,
            category=Category.BREAK_FIX,
            topic=form.topic,
            details=details,
        )

        def answer(stored: StoredContact) -> dict[str, Any]:
            session, contact, result = stored.session, stored.contact, stored.result
            if not result.created:
                self._check_replayer(session, claims, result)
                _check_replay(session, contact, fingerprint)
            return self._session_body(session, _current(session, contact), now)

        result, body = self._intake_with_answer(request, answer)
        if result.created:
            log.info(
                "chat opened contact=%s mode=%s queue=%s",
                result.contact_id,
                body["mode"],
                body["queue"],
            )
        return Outcome(body, result.created)

    def session_state(self, user: PortalUser, contact_id: int) -> dict[str, Any]:
        """Return a chat session's current state (mode, queue, position, estimated wait)."""
        now = self.now()
        with self.db.session() as session:
            contact = _current(session, self._owned(session, user, contact_id))
            return self._session_body(session, contact, now)

    def post_message(
        self, user: PortalUser, contact_id: int, message: forms.ChatMessage, key: str | None
    ) -> Outcome:
        """Append a customer message to the session's timeline (plain text, size-limited)."""
        now = self.now()
        with self.db.transaction() as session:
            owned = self._owned(session, user, contact_id, lock=True)
            contact = _current(session, owned, lock=True)
            status = ContactStatus(contact.status)
            if status is ContactStatus.DEFLECTED:
                raise Conflict(
                    "help_center", "this chat was pointed to the Help Center; it takes no messages"
                )
            if status in _CLOSED:
                raise Conflict("closed", "this chat has ended; open a new one")
            if key is not None:
                # Bounded by CHAT_MAX_MESSAGES, and read through the (contact_id, at) index. The
                # session's bot contact counts too: a retry may cross a hand-off.
                for event in session.scalars(
                    select(ContactEvent).where(
                        ContactEvent.contact_id.in_({owned.id, contact.id}),
                        ContactEvent.kind == "message",
                    )
                ):
                    if event.data.get("idempotency_key") == key:
                        if event.data.get("text") != message.text:
                            raise KeyReused()
                        return Outcome(_message_body(event), created=False)
            if message_count(session, contact.id) >= self.settings.chat_max_messages:
                raise LimitReached()
            data = {**_message_data(message.text), "from": "customer"}
            if key is not None:
                data["idempotency_key"] = key
            event = ContactEvent(
                contact_id=contact.id, at=now, kind="message", actor=user.admin_email, data=data
            )
            session.add(event)
            session.flush()
            return Outcome(_message_body(event), created=True)

    def handoff(self, user: PortalUser, contact_id: int, reason: str | None) -> Outcome:
        """Hand a SupportBot session to a human: a new contact through intake, linked both ways.

        The hand-off contact's external id derives from the session's, so a retried hand-off
        finds it; intake routes it at this instant (standard chat with the SLA during business
        hours; offline, kept in that queue with its clock starting at the next opening, outside
        them). The bot session is closed with a link to it, and messages follow the link.
        """
        now = self.now()
        with self.db.session() as session:
            bot = self._owned(session, user, contact_id)
            current = _current(session, bot)
            if current.id != bot.id:
                return Outcome(self._session_body(session, current, now), created=False)
            status = ContactStatus(bot.status)
            if status is ContactStatus.DEFLECTED:
                raise Conflict(
                    "help_center", "this chat was pointed to the Help Center; no hand-off applies"
                )
            if status in _CLOSED:
                raise Conflict("closed", "this chat has ended; open a new one")
            if _mode(bot, now) is not Mode.BOT:
                # Already with a human (or waiting for one): nothing to hand off.
                return Outcome(self._session_body(session, bot, now), created=False)
            details: dict[str, Any] = {
                "source": "portal_chat",
                "handoff_from": {"contact_id": bot.id, "reference": bot.reference},
            }
            if reason:
                details["message"] = _message_data(reason)
            request = ContactRequest(
                channel=Channel.CHAT,
                external_id=f"{bot.external_id}{HANDOFF_SUFFIX}",
                received_at=now,
                sender=Sender(account_id=bot.account_id, admin_email=user.admin_email),
                mode=IntakeMode.AUTHENTICATED,
                subject=bot.subject,
                severity=Severity(bot.severity),
                category=Category(bot.category),
                topic=Topic(bot.topic) if bot.topic else None,
                handoff=True,
                checklist=dict(bot.checklist),
                details=details,
            )
        result = self._intake(request)
        self._link_handoff(contact_id, result, now)
        with self.db.session() as session:
            contact = _get(session, result.contact_id)
            body = self._session_body(session, contact, now)
        if result.created:
            log.info("chat handed off from=%s to=%s mode=%s", contact_id, contact.id, body["mode"])
        return Outcome(body, result.created)

    # -- Contact Support form ----------------------------------------------------------------

    def submit_request(
        self, claims: PortalClaims, form: forms.PortalRequest, key: str | None
    ) -> Outcome:
        """Create an asynchronous portal contact with its intake checklist filled from the form."""
        now = self.now()
        category = form.category or Category.BREAK_FIX
        topic = form.topic
        suggested = False
        if topic is None and category is Category.BREAK_FIX:
            topic = forms.suggest_topic(form, self.policy.topics, self.policy.agent_log)
            suggested = topic is not None
        items = forms.checklist(form, topic, category)
        normalised = {
            "subject": form.subject,
            "description": form.description,
            "severity": form.severity.value if form.severity else None,
            "category": form.category.value if form.category else None,
            "topic": form.topic.value if form.topic else None,
            "troubleshooting": form.troubleshooting,
            "recognised_at": form.recognised_at.isoformat() if form.recognised_at else None,
            "error_messages": list(form.error_messages),
            "resources": list(form.resources),
            "attachments": list(form.attachments),
        }
        fingerprint = forms.fingerprint(normalised)
        details = {
            "source": "contact_support_form",
            "format": "text/plain",
            **{k: v for k, v in normalised.items() if v not in (None, [])},
            "topic_suggested": suggested,
            "request_fingerprint": fingerprint,
        }
        tags: set[str] = set()
        if category is Category.BREAK_FIX:
            tags.add("checklist:partial" if forms.missing_items(items) else "checklist:complete")
        request = self._portal_contact(
            Channel.PORTAL,
            claims,
            key,
            now,
            subject=form.subject,
            severity=form.severity,
            category=category,
            topic=topic,
            tags=frozenset(tags),
            checklist=items,
            details=details,
        )

        def answer(stored: StoredContact) -> dict[str, Any]:
            session, contact, result = stored.session, stored.contact, stored.result
            if not result.created:
                self._check_replayer(session, claims, result)
                _check_replay(session, contact, fingerprint)
            return self._request_body(session, contact)

        result, body = self._intake_with_answer(request, answer)
        if result.created:
            log.info("portal request contact=%s queue=%s", result.contact_id, body["queue"])
        return Outcome(body, result.created)

    # -- internals ---------------------------------------------------------------------------

    def _intake(self, request: ContactRequest) -> IntakeResult:
        try:
            result = self.intake.intake(request)
        except IdentityError as exc:
            # The admin changed between the token check and intake: refused, nothing stored.
            raise _auth_error(exc.reason) from None
        if result.status is ContactStatus.REJECTED:
            # A hand-off stored as rejected before: answered as refused again.
            raise _auth_error(result.reason or "not_an_admin")
        return result

    def _portal_contact(
        self,
        channel: Channel,
        claims: PortalClaims,
        key: str | None,
        now: datetime,
        **fields: Any,
    ) -> ContactRequest:
        """Return the contact request of what the token's admin sent, for intake to check."""
        return ContactRequest(
            channel=channel,
            external_id=self._external_id(channel, claims, key),
            received_at=now,
            sender=Sender(account_id=claims.account_id, admin_email=claims.admin_email),
            # Intake checks the admin the token names; anyone else is refused, not stored.
            mode=IntakeMode.AUTHENTICATED,
            **fields,
        )

    def _intake_with_answer(
        self, request: ContactRequest, answer: FollowUp[dict[str, Any]]
    ) -> tuple[IntakeResult, dict[str, Any]]:
        try:
            return self.intake.intake_with_follow_up(request, answer)
        except IdentityError as exc:
            raise _auth_error(exc.reason) from None

    def _check_replayer(self, session: Session, claims: PortalClaims, result: IntakeResult) -> None:
        """Answer a retried request only to an admin who may still act for the account."""
        self._portal_user(session, claims)
        if result.status is ContactStatus.REJECTED:
            raise _auth_error(result.reason or "not_an_admin")

    def _external_id(self, channel: Channel, claims: PortalClaims, key: str | None) -> str:
        if key is None:
            return f"{channel.value}-{uuid.uuid4().hex}"
        return forms.keyed_external_id(channel.value, claims.account_id, claims.admin_email, key)

    def _owned(
        self, session: Session, user: PortalUser, contact_id: int, *, lock: bool = False
    ) -> Contact:
        """Return the admin's own chat contact; raise NotFound for anyone else's."""
        contact = session.get(Contact, contact_id, with_for_update=lock or None)
        if (
            contact is None
            or contact.channel != Channel.CHAT.value
            or contact.account_id != user.account_id
            or contact.admin_id != user.admin_id
        ):
            raise NotFound()
        return contact

    def _link_handoff(self, bot_id: int, result: IntakeResult, now: datetime) -> None:
        """Close the bot session with a link to its hand-off contact (once, even on retries)."""
        with self.db.transaction() as session:
            bot = session.get(Contact, bot_id, with_for_update=True)
            assert bot is not None
            if _handoff_target(session, bot.id) is not None:
                return
            bot.events.append(
                ContactEvent(
                    at=now,
                    kind="handed_off",
                    actor="router",
                    data={
                        "contact_id": result.contact_id,
                        "reference": result.reference,
                        "access": result.access.value if result.access else None,
                        "queue": result.queue,
                    },
                )
            )
            if bot.status == ContactStatus.WAITING.value:
                bot.status = ContactStatus.RESOLVED.value
                bot.resolved_at = now

    def _session_body(self, session: Session, contact: Contact, now: datetime) -> dict[str, Any]:
        """Render a chat contact as SPEC 4.3's session response."""
        status = ContactStatus(contact.status)
        mode = _mode(contact, now)
        # The account is only needed for an offline session's local time and a deflection's
        # reason; a live or bot session (most of them) is answered without reading it.
        needs_account = mode is Mode.OFFLINE or contact.tier == Tier.FREE.value
        account = (
            session.get(Account, contact.account_id)
            if contact.account_id and needs_account
            else None
        )
        ahead: int | None = None
        wait: int | None = None
        if mode in (Mode.LIVE, Mode.OFFLINE) and status is ContactStatus.WAITING:
            standing = waiting.standing(
                session,
                contact,
                now=now,
                window=timedelta(minutes=self.settings.queue_wait_window_minutes),
                limit=self.settings.queue_wait_sample,
            )
            if standing is not None:
                ahead = standing.ahead
                # Offline: nobody is serving the queue until it opens, so no estimate is honest.
                wait = standing.estimated_wait_seconds if mode is Mode.LIVE else None
        elif status is ContactStatus.ACCEPTED:
            ahead, wait = 0, 0
        next_open = _next_open(contact)
        help_links = self._help_center(contact) if mode is Mode.HELP_CENTER else None
        queue_name = None
        if contact.queue_key and mode is not Mode.HELP_CENTER:
            found = session.connection().scalar(_QUEUE_NAME, {"key": contact.queue_key})
            queue_name = found if found else contact.queue_key
        body: dict[str, Any] = {
            "contact_id": contact.id,
            "mode": mode.value,
            "queue": contact.queue_key if mode is not Mode.HELP_CENTER else None,
            "priority": contact.priority,
            "sla": _sla(contact),
            "position": ahead,
            "estimated_wait_seconds": wait,
            "message": replies.chat_message(
                mode,
                reference=contact.reference,
                status=status,
                queue_name=queue_name,
                ahead=ahead,
                wait_seconds=wait,
                next_open_local=(
                    replies.local_time(next_open, account.timezone if account else None)
                    if next_open and mode is Mode.OFFLINE
                    else None
                ),
                support_email=self.settings.mail_from,
                help_center_url=help_links["url"] if help_links else self.settings.help_center_url,
                trial_ended=_trial_ended(contact, account),
                trial_days=self.policy.trial_days,
            ),
        }
        if mode is Mode.OFFLINE:
            body["next_open_at"] = _iso(next_open)
            body["continue_by_email"] = {
                "address": self.settings.mail_from,
                "reference": contact.reference,
            }
        if help_links is not None:
            body["help_center"] = help_links
        return body

    def _request_body(self, session: Session, contact: Contact) -> dict[str, Any]:
        """Render a portal contact as the Contact Support form's response."""
        body: dict[str, Any] = {
            "contact_id": contact.id,
            "reference": contact.reference,
            "queue": contact.queue_key,
            "sla": _sla(contact),
            "missing": forms.missing_items(contact.checklist),
        }
        if ContactStatus(contact.status) is ContactStatus.DEFLECTED:
            account = session.get(Account, contact.account_id) if contact.account_id else None
            links = self._help_center(contact)
            body.update(
                queue=None,
                sla=None,
                missing=[],
                mode=Mode.HELP_CENTER.value,
                help_center=links,
                message=replies.help_center_message(
                    "support from our engineers",
                    help_center_url=links["url"],
                    trial_ended=_trial_ended(contact, account),
                    trial_days=self.policy.trial_days,
                ),
            )
        return body

    def _help_center(self, contact: Contact) -> dict[str, Any]:
        topic = self.policy.topics.get(Topic(contact.topic)) if contact.topic else None
        return replies.help_center(
            self.settings.help_center_url,
            subject=contact.subject,
            topic_label=topic.label if topic else None,
        )


def _auth_error(intake_reason: str) -> AuthError:
    reason, message = _IDENTITY_REASONS.get(
        intake_reason, ("unknown_admin", "the token does not name an active administrator")
    )
    return AuthError(reason, message)


def _get(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    assert contact is not None  # intake just stored or found it
    return contact


def _handoff_target(session: Session, contact_id: int) -> int | None:
    data = session.scalar(
        select(ContactEvent.data)
        .where(ContactEvent.contact_id == contact_id, ContactEvent.kind == "handed_off")
        .order_by(ContactEvent.id.desc())
        .limit(1)
    )
    return int(data["contact_id"]) if data else None


def _current(session: Session, contact: Contact, *, lock: bool = False) -> Contact:
    """Follow a bot session's hand-off link to the contact now carrying the conversation."""
    if contact.status != ContactStatus.RESOLVED.value:
        return contact
    target_id = _handoff_target(session, contact.id)
    if target_id is None:
        return contact
    target = session.get(Contact, target_id, with_for_update=lock or None)
    return target if target is not None else contact


def _check_replay(session: Session, contact: Contact, fingerprint: str) -> None:
    """Refuse a reused Idempotency-Key whose request differs from the first one."""
    received = session.scalar(
        select(ContactEvent.data)
        .where(ContactEvent.contact_id == contact.id, ContactEvent.kind == "received")
        .order_by(ContactEvent.id)
        .limit(1)
    )
    stored = (received or {}).get("request_fingerprint")
    if stored is not None and stored != fingerprint:
        raise KeyReused()


def _mode(contact: Contact, now: datetime) -> Mode:
    stored = StoredDecision.of(contact.decision)
    return replies.chat_mode(ContactStatus(contact.status), stored.access, stored.next_open_at, now)


def _next_open(contact: Contact) -> datetime | None:
    return StoredDecision.of(contact.decision).next_open_at


def _sla(contact: Contact) -> dict[str, Any] | None:
    if contact.due_at is None or contact.sla_policy is None:
        return None
    return {"policy": contact.sla_policy, "due_at": _iso(contact.due_at)}


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value else None


def _trial_ended(contact: Contact, account: Account | None) -> bool:
    """Return whether the contact was deflected because a trial ran out (not a free account)."""
    if contact.tier != Tier.FREE.value or account is None:
        return False
    contract = account.partner if contact.via_partner_id and account.partner else account
    return contract.tier == Tier.TRIAL.value


def _message_data(text: str) -> dict[str, Any]:
    return {"text": text, "format": "text/plain", "chars": len(text)}


def _message_body(event: ContactEvent) -> dict[str, Any]:
    return {
        "contact_id": event.contact_id,
        "message_id": event.id,
        "at": _iso(event.at),
        "chars": event.data.get("chars"),
    }


def message_count(session: Session, contact_id: int) -> int:
    """Return how many customer messages a session holds."""
    count = session.scalar(
        select(func.count())
        .select_from(ContactEvent)
        .where(ContactEvent.contact_id == contact_id, ContactEvent.kind == "message")
    )
    return int(count or 0)
