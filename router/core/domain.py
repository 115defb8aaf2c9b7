"""Support-domain vocabulary shared by the core, the store and the channels."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    """Support tier an account (or its managing partner) is entitled to."""

    PREMIUM = "premium"
    STANDARD = "standard"
    TRIAL = "trial"
    FREE = "free"


class Channel(StrEnum):
    """Way a contact reached us."""

    VOICE = "voice"
    EMAIL = "email"
    CHAT = "chat"
    PORTAL = "portal"


class Severity(StrEnum):
    """Customer impact; S1 is the most severe. Unknown severity is S3."""

    S1 = "S1"
    S2 = "S2"
    S3 = "S3"

    @property
    def rank(self) -> int:
        """Return 1 for S1, 2 for S2, 3 for S3 (lower is more severe)."""
        return int(self.value[1])

    @classmethod
    def parse(cls, value: str | None) -> Severity:
        """Read '1', 'S1', 'sev1', 'Severity 1' and the like; anything else is S3."""
        if not value:
            return cls.S3
        digits = "".join(ch for ch in str(value) if ch.isdigit())
        return {"1": cls.S1, "2": cls.S2, "3": cls.S3}.get(digits, cls.S3)


class Category(StrEnum):
    """What kind of help the contact needs (SPEC 2.5)."""

    BREAK_FIX = "break-fix"
    FEATURE_REQUEST = "feature-request"
    TRAINING = "training"
    SECURITY = "security"
    INFRASTRUCTURE = "infrastructure"
    MIGRATION = "migration"
    LICENSING = "licensing"
    ESCALATION = "escalation"


class Topic(StrEnum):
    """Break-fix topic, used by chat, the IVR menu and email keywords."""

    WINDOWS = "windows"
    MAC = "mac"
    LINUX = "linux"
    IDENTITY = "identity"
    DEVICES = "devices"
    DIRECTORY = "directory"
    OTHER = "other"


class SlaState(StrEnum):
    """Where a contact's first-response clock stands."""

    NONE = "none"
    OK = "ok"
    WARNING = "warning"
    BREACHED = "breached"
    MET = "met"
    MISSED = "missed"


class ContactStatus(StrEnum):
    """Lifecycle of a contact."""

    WAITING = "waiting"
    ACCEPTED = "accepted"
    RESOLVED = "resolved"
    REJECTED = "rejected"
    DEFLECTED = "deflected"
    RECORDED = "recorded"  # auto-replies, bounces: kept for staff, never routed


class StaffRole(StrEnum):
    """Staff permission level; each role includes the ones before it."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Return the role's position so roles can be compared."""
        return ["viewer", "editor", "admin"].index(self.value)


class Presence(StrEnum):
    """Whether an agent takes offers; "busy" is not a presence, it follows from capacity."""

    AVAILABLE = "available"
    AWAY = "away"
    OFFLINE = "offline"


class ReservationStatus(StrEnum):
    """Where an offer of one contact to one agent stands."""

    OFFERED = "offered"  # open: the agent may accept until it expires
    ACCEPTED = "accepted"  # the contact is assigned to the agent
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # the contact went away (resolved, re-routed) while offered


class Strategy(StrEnum):
    """How a queue picks among several eligible agents."""

    LONGEST_IDLE = "longest_idle"
    LEAST_OCCUPIED = "least_occupied"
    ROUND_ROBIN = "round_robin"
    HIGHEST_SKILL = "highest_skill"
