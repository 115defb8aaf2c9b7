"""Email channel persistence: messages in and out (for threading) and webhook replay tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from router.models import Base, utcnow


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
