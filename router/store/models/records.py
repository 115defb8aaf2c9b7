"""Records for operators and auditors: the audit log, operations events and shared rate limits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, String, Text, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from router.store.models.base import Base, JSONDocument, utcnow
from router.store.models.contacts import ContactEvent


class AuditEntry(Base):
    """Who changed what, when, with the state before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(255))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)


class OpsEvent(Base):
    """A system-level event for operators (e.g. an unknown dialled number, a PIN-guessing alert)."""

    __tablename__ = "ops_events"
    __table_args__ = (Index("ix_ops_events_kind_at", "kind", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RateLimitBucket(Base):
    """A token bucket shared by every process (PIN guesses, console logins, email rejections)."""

    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    # Seconds since the Unix epoch: plain numbers keep the refill arithmetic in one portable
    # UPDATE on SQLite and PostgreSQL alike (no dialect's interval functions).
    refilled_at: Mapped[float] = mapped_column(Float)


@event.listens_for(Session, "before_flush")
def _keep_append_only(session: Session, _context: Any, _instances: Any) -> None:
    """Refuse updates and deletes of timeline events and audit entries."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, ContactEvent | AuditEntry) and (
            obj in session.deleted or session.is_modified(obj)
        ):
            raise ValueError(f"{type(obj).__name__} records are append-only")
