"""Inbound support contacts and their append-only timelines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from router.core.domain import ContactStatus, SlaState
from router.store.models.accounts import Account, Admin
from router.store.models.base import Base, enum_check, utcnow
from router.store.models.routing import Queue


class Contact(Base):
    """One inbound support contact, whatever its channel, with its routing and SLA."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        enum_check("status", ContactStatus),
        enum_check("sla_state", SlaState),
        Index("ix_contacts_queue_waiting", "queue_key", "status", "priority", "received_at"),
        Index("ix_contacts_sla_due", "sla_state", "due_at"),
        Index("ix_contacts_sla_warning", "sla_state", "warning_at"),
        # Recent waits per queue (estimated wait for chat and the console).
        Index("ix_contacts_queue_accepted", "queue_key", "accepted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    # The provider's id (CallSid, Message-ID, chat session id): retries carry the same one.
    external_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=ContactStatus.WAITING.value)
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("admins.id", ondelete="SET NULL"))
    via_partner_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL")
    )
    from_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(500))
    tier: Mapped[str | None] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(2), default="S3")
    category: Mapped[str] = mapped_column(String(32), default="break-fix")
    topic: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(16))
    queue_key: Mapped[str | None] = mapped_column(ForeignKey("queues.key"))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    received_at: Mapped[datetime]
    sla_policy: Mapped[str | None] = mapped_column(String(64))
    sla_started_at: Mapped[datetime | None]
    warning_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    sla_state: Mapped[str] = mapped_column(String(16), default=SlaState.NONE.value)
    first_response_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    # The agent the contact is assigned to (an accepted offer); one column, so never two.
    assigned_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.staff_user_id", ondelete="SET NULL"), index=True
    )
    resolved_at: Mapped[datetime | None]
    rule_version: Mapped[int | None] = mapped_column(Integer)
    matched_rule: Mapped[str | None] = mapped_column(String(100))
    # The routing decision and its explain trace, as the router returned them.
    decision: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checklist: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    account: Mapped[Account | None] = relationship(foreign_keys=[account_id])
    admin: Mapped[Admin | None] = relationship()
    queue: Mapped[Queue | None] = relationship()
    events: Mapped[list[ContactEvent]] = relationship(
        back_populates="contact", order_by="ContactEvent.id"
    )

    @property
    def reference(self) -> str:
        """Return the customer-facing reference, e.g. C-1042."""
        return f"C-{self.id}"


class ContactEvent(Base):
    """An append-only entry on a contact's timeline."""

    __tablename__ = "contact_events"
    __table_args__ = (Index("ix_contact_events_contact_at", "contact_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(320))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    contact: Mapped[Contact] = relationship(back_populates="events")
