"""Email channel persistence: messages in and out, the outbox of replies, replay tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from router.store.models.base import Base, utcnow


class EmailMessage(Base):
    """A message we received or sent; Message-IDs thread replies onto their contact."""

    __tablename__ = "email_messages"
    __table_args__ = (
        UniqueConstraint("message_id"),
        Index("ix_email_messages_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998))
    direction: Mapped[str] = mapped_column(String(8))  # "in" or "out"
    kind: Mapped[str] = mapped_column(String(32))  # inbound, acknowledgement, rejection, ...
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    provider: Mapped[str | None] = mapped_column(String(32))
    from_address: Mapped[str | None] = mapped_column(String(320))
    to_addresses: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str | None] = mapped_column(Text)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[Any]] = mapped_column(default=list)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookReplayToken(Base):
    """A signed-webhook token already seen, so a replayed request is refused."""

    __tablename__ = "webhook_replay_tokens"
    __table_args__ = (UniqueConstraint("provider", "token"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    token: Mapped[str] = mapped_column(String(255))
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class EmailOutbox(Base):
    """A reply the router owes someone: stored with the message it answers, sent after."""

    # Committed in the same transaction as the inbound message it answers, so a crash or a mail
    # server outage never loses it: status goes pending -> sent, or -> failed after the last
    # attempt. next_attempt_at doubles as a short lease while one sender works on the row.

    __tablename__ = "email_outbox"
    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        UniqueConstraint("message_id"),
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status_valid"),
        Index("ix_email_outbox_due", "status", "next_attempt_at"),
        Index("ix_email_outbox_recipient", "to_address", "created_at"),
        Index("ix_email_outbox_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # One reply per purpose: "acknowledgement:42", "rejection:<address>:<period>".
    dedupe_key: Mapped[str] = mapped_column(String(400))
    kind: Mapped[str] = mapped_column(String(32))  # acknowledgement, rejection, deflection
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    to_address: Mapped[str] = mapped_column(String(320))
    to_name: Mapped[str | None] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
