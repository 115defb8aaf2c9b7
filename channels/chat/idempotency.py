"""Idempotency-Key: a retried request answers the first result, a changed one is refused.

A chat or form keyed by the client becomes a contact whose external id derives from the key,
so intake finds it again; its first request's fingerprint is on its "received" event. A keyed
chat message keeps the key on its own "message" event.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.chat.tokens import PortalClaims
from router.core.domain import Channel
from router.services.errors import Invalid
from router.store.models import Contact, ContactEvent


class KeyReused(Invalid):
    """An Idempotency-Key came back with a different request (422)."""

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used for a different request; use a new key",
            reason="idempotency_key_reused",
        )


def external_id(channel: Channel, claims: PortalClaims, key: str | None) -> str:
    """Return the contact's external id: derived from the key, or unique without one."""
    if key is None:
        return f"{channel.value}-{uuid.uuid4().hex}"
    return keyed_external_id(channel.value, claims.account_id, claims.admin_email, key)


def fingerprint(payload: Mapping[str, Any]) -> str:
    """Return a stable digest of a normalised request (to spot a reused idempotency key)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def keyed_external_id(prefix: str, account_id: str, admin_email: str, key: str) -> str:
    """Return the contact external id for a client's idempotency key, scoped to the admin.

    Scoping matters: two admins choosing the same key must never see each other's contact.
    """
    digest = hashlib.sha256(f"{prefix}\n{account_id}\n{admin_email}\n{key}".encode()).hexdigest()
    return f"{prefix}-key-{digest}"


def check_replay(session: Session, contact: Contact, fingerprint: str) -> None:
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


def replayed_message(
    session: Session, contact_ids: Iterable[int], key: str, text: str
) -> ContactEvent | None:
    """Return the message stored under ``key`` (None if none); refuse one with other text."""
    # Bounded by CHAT_MAX_MESSAGES, and read through the (contact_id, at) index.
    for event in session.scalars(
        select(ContactEvent).where(
            ContactEvent.contact_id.in_(set(contact_ids)), ContactEvent.kind == "message"
        )
    ):
        if event.data.get("idempotency_key") == key:
            if event.data.get("text") != text:
                raise KeyReused()
            return event
    return None
