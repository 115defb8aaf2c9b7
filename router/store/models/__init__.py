"""Persistence: SQLAlchemy 2.0 models for SQLite and PostgreSQL alike.

Every datetime is timezone-aware and stored in UTC. Every change here needs an Alembic
revision (``flask --app app db revision --autogenerate -m ...``); a test fails otherwise.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from router.core.domain import ContactStatus, SlaState, StaffRole, Tier


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC; hand them back aware on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetimes are not stored; attach a time zone")
        value = value.astimezone(UTC)
        # SQLite has no time zone type: keep the UTC wall time, re-attached on the way out.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")

# Deterministic constraint names, so migrations can drop and alter them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current instant in UTC (for column defaults only; the core takes ``now``)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with the project's naming convention and types."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
        list[Any]: JSONDocument,
    }


def _enum_check(column: str, values: type[Any]) -> CheckConstraint:
    allowed = ", ".join(f"'{member.value}'" for member in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


class Account(Base):
    """A customer organisation or a partner (MSP) that manages others."""

    __tablename__ = "accounts"
    __table_args__ = (_enum_check("tier", Tier),)

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


class Queue(Base):
    """A queue contacts wait in; engineer queues are shared by tiers and ordered by priority."""

    __tablename__ = "queues"
    __table_args__ = (CheckConstraint("kind IN ('human', 'bot', 'deflection')", name="kind_valid"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    team: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="human")
    owners: Mapped[list[Any]] = mapped_column(default=list)
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
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


class Contact(Base):
    """One inbound support contact, whatever its channel, with its routing and SLA."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        _enum_check("status", ContactStatus),
        _enum_check("sla_state", SlaState),
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


class StaffUser(Base):
    """A support staff member who uses the console or the API."""

    __tablename__ = "staff_users"
    __table_args__ = (_enum_check("role", StaffRole),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="staff_user")


class ApiToken(Base):
    """A staff API bearer token; only its SHA-256 is stored (tokens are random, 256 bits)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    staff_user: Mapped[StaffUser] = relationship(back_populates="tokens")


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


# -- console log-in: server-side sessions and per-address lock-outs (migration 0009) ----------


class ConsoleSession(Base):
    """A console log-in; the signed cookie carries its token, only the SHA-256 is stored."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))


class ConsoleLoginLock(Base):
    """Failed console log-ins for one email address, and its lock-out (existing or not, so the
    answers never tell whether a staff user has that address)."""

    __tablename__ = "console_login_locks"

    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_failure_at: Mapped[datetime] = mapped_column(index=True)


@event.listens_for(Session, "before_flush")
def _keep_append_only(session: Session, _context: Any, _instances: Any) -> None:
    """Refuse updates and deletes of timeline events and audit entries."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, ContactEvent | AuditEntry) and (
            obj in session.deleted or session.is_modified(obj)
        ):
            raise ValueError(f"{type(obj).__name__} records are append-only")
