"""The portal's Contact Support form: an asynchronous contact with its intake checklist."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from channels.chat import forms, idempotency, portal, triage
from channels.chat.bodies import ChatAnswer, request_body
from channels.chat.tokens import PortalClaims
from config.policy import Policy
from config.settings import Settings
from router.core.domain import Category, Channel
from router.intake import IntakeService, StoredContact

log = logging.getLogger("router.chat")


def submit_request(
    intake: IntakeService,
    claims: PortalClaims,
    form: forms.PortalRequest,
    key: str | None,
    *,
    now: datetime,
    settings: Settings,
    policy: Policy,
) -> ChatAnswer:
    """Create an asynchronous portal contact with its intake checklist filled from the form."""
    category = form.category or Category.BREAK_FIX
    topic = form.topic
    suggested = False
    if topic is None and category is Category.BREAK_FIX:
        topic = triage.suggest_topic(form, policy.topics, policy.agent_log)
        suggested = topic is not None
    items = triage.checklist(form, topic, category)
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
    fingerprint = idempotency.fingerprint(normalised)
    details = {
        "source": "contact_support_form",
        "format": "text/plain",
        **{k: v for k, v in normalised.items() if v not in (None, [])},
        "topic_suggested": suggested,
        "request_fingerprint": fingerprint,
    }
    tags: set[str] = set()
    if category is Category.BREAK_FIX:
        tags.add("checklist:partial" if triage.missing_items(items) else "checklist:complete")
    request = portal.contact_request(
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
            portal.check_replayer(session, claims, result)
            idempotency.check_replay(session, contact, fingerprint)
        return request_body(session, contact, settings, policy)

    result, body = portal.intake_with_answer(intake, request, answer)
    if result.created:
        log.info("portal request contact=%s queue=%s", result.contact_id, body["queue"])
    return ChatAnswer(body, result.created)
