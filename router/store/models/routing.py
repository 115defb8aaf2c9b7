"""Where contacts go: queues, the versioned routing rules and regions' calendar changes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Date, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from router.core.domain import Strategy
from router.store.models.base import Base, enum_check, utcnow


class Queue(Base):
    """A queue contacts wait in; engineer queues are shared by tiers and ordered by priority."""

    __tablename__ = "queues"
    __table_args__ = (
        CheckConstraint("kind IN ('human', 'bot', 'deflection')", name="kind_valid"),
        enum_check("assignment_strategy", Strategy),
    )

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    team: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="human")
    owners: Mapped[list[Any]] = mapped_column(default=list)
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # How the queue picks among eligible agents; only human queues are assigned to agents.
    assignment_strategy: Mapped[str] = mapped_column(
        String(16), default=Strategy.LONGEST_IDLE.value, server_default=Strategy.LONGEST_IDLE.value
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RuleSetVersion(Base):
    """An immutable snapshot of the ordered routing rules; the highest version is in force."""

    __tablename__ = "rule_set_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # {"rules": [rule documents, in order]}
    documents: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(320))
    note: Mapped[str | None] = mapped_column(Text)


class CalendarOverride(Base):
    """A staff change to one region's business day: closed, or special hours."""

    __tablename__ = "calendar_overrides"
    __table_args__ = (UniqueConstraint("region", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    region: Mapped[str] = mapped_column(String(16))
    day: Mapped[date] = mapped_column(Date)
    # Empty list: closed all day; otherwise [["HH:MM", "HH:MM"], ...] replacing that day's hours.
    hours: Mapped[list[Any]] = mapped_column(default=list)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(320))
