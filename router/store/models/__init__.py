"""Persistence: SQLAlchemy 2.0 models for SQLite and PostgreSQL alike, one module per noun.

Every datetime is timezone-aware and stored in UTC. Every change here needs an Alembic
revision (``flask --app app db revision --autogenerate -m ...``); a test fails otherwise.
"""

from __future__ import annotations

# The channels' and the scheduler's tables load with the core's, so every mapper (and the
# metadata the migrations compare) is complete whichever model a caller imports first.
from router.store.models import email, scheduler, voice
from router.store.models.accounts import Account, Admin, PinAttempt, PinLockout, SupportPin
from router.store.models.agents import Agent, AgentSkill, PresenceEvent, Reservation
from router.store.models.base import NAMING_CONVENTION, Base, JSONDocument, UTCDateTime, utcnow
from router.store.models.contacts import Contact, ContactEvent
from router.store.models.records import AuditEntry, OpsEvent, RateLimitBucket
from router.store.models.routing import CalendarOverride, Queue, RuleSetVersion
from router.store.models.staff import ApiToken, ConsoleLoginLock, ConsoleSession, StaffUser

__all__ = [
    "NAMING_CONVENTION",
    "Account",
    "Admin",
    "Agent",
    "AgentSkill",
    "ApiToken",
    "AuditEntry",
    "Base",
    "CalendarOverride",
    "ConsoleLoginLock",
    "ConsoleSession",
    "Contact",
    "ContactEvent",
    "JSONDocument",
    "OpsEvent",
    "PinAttempt",
    "PinLockout",
    "PresenceEvent",
    "Queue",
    "RateLimitBucket",
    "Reservation",
    "RuleSetVersion",
    "StaffUser",
    "SupportPin",
    "UTCDateTime",
    "email",
    "scheduler",
    "utcnow",
    "voice",
]
