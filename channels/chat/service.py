"""Chat sessions and the Contact Support form: what the chat views call, over the one intake path.

Every contact goes through intake (``IntakeService``); the chat channel adds what the portal
needs around it, a module each: who the token vouches for (portal), retries on the client's
Idempotency-Key (idempotency), the admin's chat contacts and their hand-off links (contacts),
opening, reading and handing off a session (sessions), its messages (messages), the Contact
Support form (support_form, with triage), and the bodies the portal is answered with (bodies).
Request bodies are parsed by forms; the views turn refusals into the shared JSON error body.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from channels.chat import forms, messages, portal, sessions, support_form
from channels.chat.bodies import ChatAnswer
from channels.chat.portal import PortalUser
from channels.chat.tokens import PortalClaims
from config.policy import Policy
from config.settings import Settings
from router.core.calendar import as_utc
from router.intake import IntakeService
from router.store.db import Database


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

    def verify(self, authorization: str | None) -> PortalClaims:
        """Verify the portal token alone (signature, algorithm, claims, expiry); no store access."""
        return portal.verify(authorization, self.settings, self.now())

    def authenticate(self, authorization: str | None) -> PortalUser:
        """Verify the portal token and that it names an active admin of its org; store nothing."""
        claims = self.verify(authorization)
        with self.db.session() as session:
            return portal.portal_user(session, claims)

    def open_session(
        self, claims: PortalClaims, form: forms.ChatOpen, key: str | None
    ) -> ChatAnswer:
        """Open a chat through intake and say how it behaves for the admin's tier right now."""
        return sessions.open_session(
            self.intake,
            claims,
            form,
            key,
            now=self.now(),
            settings=self.settings,
            policy=self.policy,
        )

    def session_state(self, user: PortalUser, contact_id: int) -> dict[str, Any]:
        """Return a chat session's current state (mode, queue, position, estimated wait)."""
        return sessions.session_state(
            self.db, user, contact_id, now=self.now(), settings=self.settings, policy=self.policy
        )

    def post_message(
        self, user: PortalUser, contact_id: int, message: forms.ChatMessage, key: str | None
    ) -> ChatAnswer:
        """Append a customer message to the session's timeline (plain text, size-limited)."""
        return messages.post_message(
            self.db,
            user,
            contact_id,
            message,
            key,
            now=self.now(),
            limit=self.settings.chat_max_messages,
        )

    def handoff(self, user: PortalUser, contact_id: int, reason: str | None) -> ChatAnswer:
        """Hand a SupportBot session to a human: a new contact through intake, linked both ways."""
        return sessions.handoff(
            self.db,
            self.intake,
            user,
            contact_id,
            reason,
            now=self.now(),
            settings=self.settings,
            policy=self.policy,
        )

    def submit_request(
        self, claims: PortalClaims, form: forms.PortalRequest, key: str | None
    ) -> ChatAnswer:
        """Create an asynchronous portal contact with its intake checklist filled from the form."""
        return support_form.submit_request(
            self.intake,
            claims,
            form,
            key,
            now=self.now(),
            settings=self.settings,
            policy=self.policy,
        )
