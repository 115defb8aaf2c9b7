"""Scheduler-owned tables: job heartbeats and the notification outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from router.store.models.base import Base, utcnow

# The row the active scheduler process keeps fresh; the other rows are one per job id.
PROCESS_ROW = "process"

NOTIFICATION_STATUSES = ("pending", "sending", "sent", "failed")
NOTIFICATION_CHANNELS = ("email", "webhook")


class SchedulerState(Base):
    """When a scheduler job (or the active process itself) last ran, succeeded and failed."""

    __tablename__ = "scheduler_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # host:pid of the process that last ran it, so operators can tell which one is active.
    holder: Mapped[str | None] = mapped_column(String(255))
    last_started_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    last_result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """One email or webhook an SLA warning or breach owes someone, delivered with retries."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in NOTIFICATION_STATUSES) + ")",
            name="status_valid",
        ),
        CheckConstraint(
            "channel IN (" + ", ".join(f"'{c}'" for c in NOTIFICATION_CHANNELS) + ")",
            name="channel_valid",
        ),
        # Delivery reads only what is due: cost follows the backlog, not the history.
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))  # sla.warning, sla.breached
    channel: Mapped[str] = mapped_column(String(16))  # email, webhook
    target: Mapped[str] = mapped_column(String(500))  # an address or a URL
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(255))  # Message-ID, or HTTP status
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
