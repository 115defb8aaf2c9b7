"""Agents: staff who take contacts, their skills, presence history and offers (reservations).

Capacity is enforced by the database: an agent's load per channel may never exceed its
capacity (a CHECK), and every offer takes its slot with one conditional UPDATE, so any number
of processes may dispatch at once. A contact has at most one open offer (a partial unique
index) and at most one agent (a column).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from router.core.domain import Channel, Presence, ReservationStatus
from router.store.models.base import Base, enum_check, utcnow

CHANNELS = tuple(channel.value for channel in Channel)


def _load_within_capacity(channel: str) -> CheckConstraint:
    return CheckConstraint(
        f"load_{channel} >= 0 AND load_{channel} <= capacity_{channel}",
        name=f"load_{channel}_within_capacity",
    )


class Agent(Base):
    """A staff member who is offered contacts: skills, languages, capacity, presence."""

    __tablename__ = "agents"
    __table_args__ = (
        enum_check("presence", Presence),
        *(_load_within_capacity(channel) for channel in CHANNELS),
        *(
            CheckConstraint(
                f"capacity_{channel} BETWEEN 0 AND 100", name=f"capacity_{channel}_range"
            )
            for channel in CHANNELS
        ),
    )

    staff_user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True
    )
    languages: Mapped[list[Any]] = mapped_column(default=list)
    # E.164 number, "client:<identity>" (Twilio Client) or a SIP URI.
    voice_endpoint: Mapped[str | None] = mapped_column(String(320))
    capacity_voice: Mapped[int] = mapped_column(Integer, default=1)
    capacity_chat: Mapped[int] = mapped_column(Integer, default=3)
    capacity_email: Mapped[int] = mapped_column(Integer, default=8)
    capacity_portal: Mapped[int] = mapped_column(Integer, default=8)
    # Open offers and assigned work, per channel; never above capacity (CHECK).
    load_voice: Mapped[int] = mapped_column(Integer, default=0)
    load_chat: Mapped[int] = mapped_column(Integer, default=0)
    load_email: Mapped[int] = mapped_column(Integer, default=0)
    load_portal: Mapped[int] = mapped_column(Integer, default=0)
    presence: Mapped[str] = mapped_column(String(16), default=Presence.OFFLINE.value)
    presence_reason: Mapped[str | None] = mapped_column(String(100))
    presence_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Offers left to time out in a row; two set the agent away.
    missed_offers: Mapped[int] = mapped_column(Integer, default=0)
    # Since when the agent has had no work (longest idle first); None while working.
    idle_since: Mapped[datetime | None]
    last_offered_at: Mapped[datetime | None]  # round robin: the least recently offered first
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    skills: Mapped[list[AgentSkill]] = relationship(
        cascade="all, delete-orphan", order_by="AgentSkill.queue_key"
    )


class AgentSkill(Base):
    """A queue an agent serves, at a level from 1 to 3."""

    __tablename__ = "agent_skills"
    __table_args__ = (CheckConstraint("level BETWEEN 1 AND 3", name="level_range"),)

    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.staff_user_id", ondelete="CASCADE"), primary_key=True
    )
    queue_key: Mapped[str] = mapped_column(
        ForeignKey("queues.key", ondelete="CASCADE"), primary_key=True, index=True
    )
    level: Mapped[int] = mapped_column(Integer, default=1)


class PresenceEvent(Base):
    """One change of an agent's presence (reporting reads these)."""

    __tablename__ = "agent_presence_events"
    __table_args__ = (
        enum_check("presence", Presence),
        Index("ix_agent_presence_events_agent_at", "agent_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.staff_user_id", ondelete="CASCADE"))
    at: Mapped[datetime]
    presence: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(320))


class Reservation(Base):
    """An offer of one contact to one agent, open until accepted, rejected or expired."""

    __tablename__ = "reservations"
    __table_args__ = (
        enum_check("status", ReservationStatus),
        enum_check("channel", Channel),
        # At most one open offer per contact, whichever process made it.
        Index(
            "uq_reservations_open_contact",
            "contact_id",
            unique=True,
            sqlite_where=text("status = 'offered'"),
            postgresql_where=text("status = 'offered'"),
        ),
        Index("ix_reservations_status_expires_at", "status", "expires_at"),
        Index("ix_reservations_agent_status", "agent_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.staff_user_id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=ReservationStatus.OFFERED.value)
    offered_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    # The candidates considered and why each was passed over (the assignment's explain).
    explain: Mapped[dict[str, Any]] = mapped_column(default=dict)
