"""Chat sessions: opening one through intake, reading where it stands, handing it to a human."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from channels.chat import contacts, forms, idempotency, portal
from channels.chat.bodies import ChatAnswer, session_body
from channels.chat.messages import message_data
from channels.chat.portal import PortalUser
from channels.chat.replies import Mode
from channels.chat.tokens import PortalClaims
from config.policy import Policy
from config.settings import Settings
from router.core.domain import Category, Channel, ContactStatus, Severity, Topic
from router.intake import (
    ContactRequest,
    IntakeMode,
    IntakeResult,
    IntakeService,
    Sender,
    StoredContact,
)
from router.store.db import Database
from router.store.models import Contact, ContactEvent

log = logging.getLogger("router.chat")

HANDOFF_SUFFIX = "#handoff"


def open_session(
    intake: IntakeService,
    claims: PortalClaims,
    form: forms.ChatOpen,
    key: str | None,
    *,
    now: datetime,
    settings: Settings,
    policy: Policy,
) -> ChatAnswer:
    """Open a chat through intake and say how it behaves for the admin's tier right now.

    The token is verified; intake checks the admin it names (refusing, not storing, anyone
    else) and the answer is rendered in intake's own transaction: one transaction in all.
    """
    fingerprint = idempotency.fingerprint(
        {
            "topic": form.topic.value,
            "subject": form.subject,
            "severity": form.severity.value if form.severity else None,
            "message": form.message,
        }
    )
    details: dict[str, Any] = {"source": "portal_chat", "request_fingerprint": fingerprint}
    if form.message:
        details["message"] = message_data(form.message)
    request = portal.contact_request(
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
            portal.check_replayer(session, claims, result)
            idempotency.check_replay(session, contact, fingerprint)
        return session_body(session, contacts.current(session, contact), now, settings, policy)

    result, body = portal.intake_with_answer(intake, request, answer)
    if result.created:
        log.info(
            "chat opened contact=%s mode=%s queue=%s",
            result.contact_id,
            body["mode"],
            body["queue"],
        )
    return ChatAnswer(body, result.created)


def session_state(
    db: Database,
    user: PortalUser,
    contact_id: int,
    *,
    now: datetime,
    settings: Settings,
    policy: Policy,
) -> dict[str, Any]:
    """Return a chat session's current state (mode, queue, position, estimated wait)."""
    with db.session() as session:
        contact = contacts.current(session, contacts.owned(session, user, contact_id))
        return session_body(session, contact, now, settings, policy)


def handoff(
    db: Database,
    intake: IntakeService,
    user: PortalUser,
    contact_id: int,
    reason: str | None,
    *,
    now: datetime,
    settings: Settings,
    policy: Policy,
) -> ChatAnswer:
    """Hand a SupportBot session to a human: a new contact through intake, linked both ways.

    The hand-off contact's external id derives from the session's, so a retried hand-off
    finds it; intake routes it at this instant (standard chat with the SLA during business
    hours; offline, kept in that queue with its clock starting at the next opening, outside
    them). The bot session is closed with a link to it, and messages follow the link.
    """
    with db.session() as session:
        bot = contacts.owned(session, user, contact_id)
        current = contacts.current(session, bot)
        if current.id != bot.id:
            return ChatAnswer(session_body(session, current, now, settings, policy), created=False)
        contacts.check_open(bot, deflected="no hand-off applies")
        if contacts.mode(bot, now) is not Mode.BOT:
            # Already with a human (or waiting for one): nothing to hand off.
            return ChatAnswer(session_body(session, bot, now, settings, policy), created=False)
        request = _handoff_request(bot, user, reason, now)
    result = portal.intake_for_admin(intake, request)
    link_handoff(db, contact_id, result, now)
    with db.session() as session:
        contact = contacts.stored(session, result.contact_id)
        body = session_body(session, contact, now, settings, policy)
    if result.created:
        log.info("chat handed off from=%s to=%s mode=%s", contact_id, contact.id, body["mode"])
    return ChatAnswer(body, result.created)


def link_handoff(db: Database, bot_id: int, result: IntakeResult, now: datetime) -> None:
    """Close the bot session with a link to its hand-off contact (once, even on retries)."""
    with db.transaction() as session:
        bot = session.get(Contact, bot_id, with_for_update=True)
        assert bot is not None
        if contacts.handoff_target(session, bot.id) is not None:
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


def _handoff_request(
    bot: Contact, user: PortalUser, reason: str | None, now: datetime
) -> ContactRequest:
    """Return the request for a human: the bot session's contact again, as a hand-off."""
    details: dict[str, Any] = {
        "source": "portal_chat",
        "handoff_from": {"contact_id": bot.id, "reference": bot.reference},
    }
    if reason:
        details["message"] = message_data(reason)
    return ContactRequest(
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
