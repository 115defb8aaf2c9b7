"""What a channel hands intake (a ContactRequest) and what intake answers (an IntakeResult)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from router.core.domain import Category, Channel, ContactStatus, Severity, Topic
from router.core.entitlement import Access


class IntakeMode(StrEnum):
    """What intake does with a contact, and with one it cannot tie to an account."""

    # Identify, entitle and route it; one nobody can be identified as is kept as rejected.
    ROUTE = "route"
    # Automatic mail (auto-replies, bounces): kept for staff, never identified or routed.
    RECORD_ONLY = "record_only"
    # The channel has already authenticated the person and refuses the request itself (401):
    # an unidentified contact raises IdentityError and nothing is stored.
    AUTHENTICATED = "authenticated"


@dataclass(frozen=True)
class Sender:
    """Who a contact says it is from, and what its channel proved of that.

    A channel either vouches for the account (a verified PIN: ``account_id`` alone) or names
    the sender, whose admin rights intake checks (email From:, the portal token's sub and org).
    """

    account_id: str | None = None
    admin_email: str | None = None
    # False unless the channel proved the sender (email: an aligned SPF/DKIM/DMARC pass).
    verified: bool = True
    # Names a partner's admin gives for the managed customer meant (email: support+contoso@,
    # an "Account: Contoso" line); unmatched, the admin's own account is meant.
    account_hints: tuple[str, ...] = ()
    # Where it came from as the channel saw it (an email address, a calling number); stored.
    from_address: str | None = None


@dataclass(frozen=True)
class ContactRequest:
    """One inbound contact in the form every channel normalises to."""

    channel: Channel
    external_id: str
    received_at: datetime
    sender: Sender
    mode: IntakeMode = IntakeMode.ROUTE
    subject: str | None = None
    severity: Severity | None = None
    category: Category | None = None
    topic: Topic | None = None
    number_region: str | None = None
    language: str | None = None
    tags: frozenset[str] = frozenset()
    handoff: bool = False  # chat: the bot was asked for a human
    checklist: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)  # channel data for the timeline


@dataclass(frozen=True)
class IntakeResult:
    """What happened to a contact, for the channel to answer its provider and customer."""

    contact_id: int
    reference: str
    created: bool
    status: ContactStatus
    access: Access | None
    queue: str | None
    priority: int
    sla_policy: str | None
    due_at: datetime | None
    next_open_at: datetime | None
    reason: str | None = None
