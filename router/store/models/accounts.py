"""Customer accounts, their administrators and the phone support PINs that identify them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from router.core.domain import Tier
from router.store.models.base import Base, enum_check, utcnow


class Account(Base):
    """A customer organisation or a partner (MSP) that manages others."""

    __tablename__ = "accounts"
    __table_args__ = (enum_check("tier", Tier),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(16))
    trial_started_at: Mapped[datetime | None]
    is_partner: Mapped[bool] = mapped_column(Boolean, default=False)
    partner_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    region: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str] = mapped_column(String(2))
    subdivision: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64))
    professional_services: Mapped[bool] = mapped_column(Boolean, default=False)
    csm_name: Mapped[str | None] = mapped_column(String(200))
    csm_email: Mapped[str | None] = mapped_column(String(320))
    account_manager_name: Mapped[str | None] = mapped_column(String(200))
    account_manager_email: Mapped[str | None] = mapped_column(String(320))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    partner: Mapped[Account | None] = relationship(remote_side=[id])
    admins: Mapped[list[Admin]] = relationship(back_populates="account", order_by="Admin.id")
    pins: Mapped[list[SupportPin]] = relationship(back_populates="account")


class Admin(Base):
    """An administrator of an account: the only people who may open contacts."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # Normalised (trimmed, lower-case) so lookups from email and tokens are exact matches.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(back_populates="admins")


class SupportPin(Base):
    """A phone support PIN, stored only as HMAC-SHA256(PIN_PEPPER, digits)."""

    __tablename__ = "support_pins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("admins.id", ondelete="SET NULL"))
    # Unique: the PIN alone identifies the caller's account, in one indexed lookup.
    pin_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(320))

    account: Mapped[Account] = relationship(back_populates="pins")
    admin: Mapped[Admin | None] = relationship()


class PinAttempt(Base):
    """One PIN check from a calling number, kept to count failures per hour."""

    __tablename__ = "pin_attempts"
    __table_args__ = (
        Index("ix_pin_attempts_caller_at", "calling_number", "at"),
        # The PIN step counts recent failures across all numbers (the guessing-rate alert):
        # this keeps that count proportional to the failures, not to every attempt.
        Index("ix_pin_attempts_succeeded_at", "succeeded", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calling_number: Mapped[str] = mapped_column(String(32))
    call_sid: Mapped[str | None] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(index=True)


class PinLockout(Base):
    """A calling number locked out of PIN checks until ``locked_until``."""

    __tablename__ = "pin_lockouts"

    calling_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    locked_until: Mapped[datetime]
    failures: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
