"""The one intake path: identify, entitle, route and store a contact, in one transaction.

Every channel adapter turns what its provider sent into a ContactRequest and calls
``IntakeService.intake``. The same (channel, external id) twice returns the first contact and
stores nothing new, so provider retries are no-ops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from config.policy import Policy
from router.core.calendar import BusinessCalendar
from router.core.decision import RoutingOutcome, decide
from router.core.domain import Category, Channel, ContactStatus, Severity, SlaState, Tier, Topic
from router.core.entitlement import Access, ChannelEntitlement, channel_entitlement, effective_tier
from router.core.rules import ContactAttributes
from router.services.routing import RoutingCache
from router.store.db import Database
from router.store.models import Account, Admin, Contact, ContactEvent, StaffUser


@dataclass(frozen=True)
class ContactRequest:
    """One inbound contact in the form every channel normalises to."""

    channel: Channel
    external_id: str
    received_at: datetime
    # Who: a channel either vouches for the account (a verified PIN) or names the sender,
    # whose admin rights intake checks (email From:, the portal token's sub and org).
    account_id: str | None = None
    admin_email: str | None = None
    # False unless the channel proved the sender (email: an aligned SPF/DKIM/DMARC pass).
    sender_trusted: bool = True
    # Names a partner's admin gives for the managed customer meant (email: support+contoso@,
    # an "Account: Contoso" line); unmatched, the admin's own account is meant.
    account_hints: tuple[str, ...] = ()
    from_address: str | None = None
    subject: str | None = None
    severity: Severity | None = None
    category: Category | None = None
    topic: Topic | None = None
    number_region: str | None = None
    language: str | None = None
    tags: frozenset[str] = frozenset()
    handoff: bool = False  # chat: the bot was asked for a human
    record_only: bool = False  # auto-replies, bounces: kept for staff, never routed
    # Raise IdentityError (and store nothing) instead of keeping a rejected contact: for a
    # channel that has already authenticated the person and refuses the request itself (401).
    refuse_unidentified: bool = False
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


class ReplyAuthor(StrEnum):
    """Who wrote a reply on a contact's thread, as far as intake believes it."""

    STAFF = "staff"  # a verified, active staff member: the contact's first response
    ADMIN = "admin"  # a verified, active admin of the contact's account (or of its partner)
    OUTSIDER = "outsider"  # anyone else: kept apart from the contact, never routed onto it


@dataclass(frozen=True)
class Identity:
    """The account a contact is for and who opened it."""

    account: Account
    admin: Admin | None
    via_partner: Account | None


class IdentityError(Exception):
    """The contact cannot be tied to an active administrator of an account."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


View = TypeVar("View")

# Statements every contact runs, built once (building one costs about as much as running it).
_CONTACT_BY_EXTERNAL_ID = select(Contact).where(
    Contact.channel == bindparam("channel"), Contact.external_id == bindparam("external_id")
)
# The admin's account comes in the same query: every contact from an admin needs it.
_ADMIN_BY_EMAIL = (
    select(Admin).options(joinedload(Admin.account)).where(Admin.email == bindparam("email"))
)


class IntakeService:
    """Turn contact requests into stored, routed contacts."""

    def __init__(self, db: Database, policy: Policy, cache: RoutingCache) -> None:
        self.db = db
        self.policy = policy
        self.cache = cache

    def intake(self, request: ContactRequest) -> IntakeResult:
        """Store and route one contact, or return the one already stored for this delivery."""
        return self.intake_then(request, _no_view)[0]

    def intake_then(
        self,
        request: ContactRequest,
        view: Callable[[Session, Contact, IntakeResult], View],
    ) -> tuple[IntakeResult, View]:
        """Intake ``request``, then run ``view`` on its contact in the same transaction.

        For a channel whose answer needs more than the result (a chat's queue position, the
        email reply owed): one transaction instead of a second one that reads the contact back.
        ``view`` may write too; an error in it rolls the new contact back with it. After a
        lost race (IntegrityError, from the contact or from ``view``'s own writes) ``view``
        runs again, on the contact the other delivery stored, in a new transaction.
        """
        try:
            with self.db.transaction() as session:
                existing = _find(session, request.channel, request.external_id)
                if existing is not None:
                    result = _result(existing, created=False)
                    return result, view(session, existing, result)
                contact = self._store(session, request)
                session.flush()
                result = _result(contact, created=True)
                return result, view(session, contact, result)
        except IntegrityError:
            # A concurrent delivery of the same external id won the race: answer with its contact.
            with self.db.transaction() as session:
                existing = _find(session, request.channel, request.external_id)
                if existing is None:
                    raise
                result = _result(existing, created=False)
                return result, view(session, existing, result)

    def identify(self, session: Session, request: ContactRequest) -> Identity:
        """Return who the contact is from, or raise IdentityError with the reason."""
        if not request.sender_trusted:
            raise IdentityError("sender_not_verified")
        if request.admin_email is None:
            if request.account_id is None:
                raise IdentityError("unidentified")
            account = session.get(Account, request.account_id)
            if account is None:
                raise IdentityError("unknown_account")
            return Identity(account=account, admin=None, via_partner=None)
        admin = session.scalar(_ADMIN_BY_EMAIL, {"email": request.admin_email.lower()})
        if admin is None:
            raise IdentityError("not_an_admin")
        if not admin.active:
            raise IdentityError("inactive_admin")
        if request.account_id is None:
            managed = self._managed(session, admin, request.account_hints)
            if managed is not None:
                return Identity(account=managed, admin=admin, via_partner=admin.account)
            return Identity(account=admin.account, admin=admin, via_partner=None)
        if request.account_id == admin.account_id:
            return Identity(account=admin.account, admin=admin, via_partner=None)
        account = session.get(Account, request.account_id)
        if account is None:
            raise IdentityError("unknown_account")
        if account.partner_id is not None and account.partner_id == admin.account_id:
            return Identity(account=account, admin=admin, via_partner=admin.account)
        raise IdentityError("not_admin_of_account")

    def _managed(self, session: Session, admin: Admin, hints: tuple[str, ...]) -> Account | None:
        """Return the customer a partner's admin names by id or name, if it manages one."""
        wanted = [hint.strip().lower() for hint in hints if hint and hint.strip()]
        if not wanted:
            return None
        managed = session.scalars(select(Account).where(Account.partner_id == admin.account_id))
        by_key = {
            key: account
            for account in managed
            for key in (account.id.lower(), account.name.lower())
        }
        return next((by_key[hint] for hint in wanted if hint in by_key), None)

    def reply_author(
        self,
        session: Session,
        contact: Contact,
        sender: str | None,
        *,
        sender_trusted: bool,
        staff_domains: frozenset[str],
    ) -> ReplyAuthor:
        """Return who wrote a reply on ``contact``'s thread (SPEC 2.6).

        Only a proven sender counts: staff when the address is an active staff member's in a
        staff domain (their answer is the first response), an admin when it is an active admin
        of the contact's account or of the partner managing it; anyone else is an outsider.
        """
        if sender is None or not sender_trusted:
            return ReplyAuthor.OUTSIDER
        address = sender.lower()
        if address.rpartition("@")[2] in staff_domains and session.scalar(
            select(StaffUser.id).where(StaffUser.email == address, StaffUser.active.is_(True))
        ):
            return ReplyAuthor.STAFF
        admin = session.scalar(_ADMIN_BY_EMAIL, {"email": address})
        if admin is None or not admin.active:
            return ReplyAuthor.OUTSIDER
        account = contact.account
        allowed = {
            contact.account_id,
            contact.via_partner_id,
            account.partner_id if account else None,
        }
        return ReplyAuthor.ADMIN if admin.account_id in allowed - {None} else ReplyAuthor.OUTSIDER

    def attributes(
        self,
        session: Session,
        identity: Identity,
        request: ContactRequest,
    ) -> tuple[ContactAttributes, ChannelEntitlement, BusinessCalendar, int, str]:
        """Work out the contact's routing attributes, entitlement, calendar and base priority."""
        account, partner = identity.account, identity.via_partner
        now = request.received_at
        served = effective_tier(
            account_tier=Tier(account.tier),
            account_trial_started_at=account.trial_started_at,
            partner_tier=Tier(partner.tier) if partner else None,
            partner_trial_started_at=partner.trial_started_at if partner else None,
            via_partner=partner is not None,
            now=now,
            trial_days=self.policy.trial_days,
        )
        calendar = self.cache.account_calendar(session, account, now.date())
        tier_policy = self.policy.tiers[served.tier]
        entitlement = channel_entitlement(
            tier=served.tier,
            channel=request.channel,
            mode=tier_policy.channels[request.channel],
            now=now,
            calendar=calendar,
            handoff=request.handoff,
        )
        severity = request.severity or Severity.S3
        tags = set(request.tags)
        if request.handoff:
            tags.add("handoff")
        attrs = ContactAttributes(
            channel=request.channel,
            tier=served.tier,
            received_at=now,
            in_business_hours=calendar.is_open(now),
            account_id=account.id,
            account_region=account.region,
            account_country=account.country,
            partner_id=account.partner_id,
            via_partner=partner is not None,
            professional_services=account.professional_services,
            severity=severity,
            category=request.category or Category.BREAK_FIX,
            topic=request.topic,
            number_region=request.number_region,
            language=request.language,
            tags=frozenset(tags),
            subject=request.subject,
            attrs={k: v for k, v in account.attributes.items() if _scalar(v)},
        )
        base_priority = self.base_priority(served.tier, severity)
        return attrs, entitlement, calendar, base_priority, tier_policy.sla_policy

    def base_priority(self, tier: Tier, severity: Severity) -> int:
        """Return a contact's priority before rules: its tier's base plus its severity's boost."""
        boost = self.policy.severities[severity].priority_boost
        return max(0, min(100, self.policy.tiers[tier].base_priority + boost))

    def route(
        self, session: Session, identity: Identity, request: ContactRequest
    ) -> tuple[ContactAttributes, ChannelEntitlement, RoutingOutcome]:
        """Route a contact (nothing is stored)."""
        attrs, entitlement, calendar, base_priority, tier_sla = self.attributes(
            session, identity, request
        )
        outcome = decide(
            rules=self.cache.rules(session),
            attrs=attrs,
            base_priority=base_priority,
            tier_sla_policy=tier_sla,
            sla_categories=self.policy.sla_categories,
            sla_policies=self.policy.sla_policies,
            calendar=calendar,
        )
        return attrs, entitlement, outcome

    def explain_request(self, request: ContactRequest) -> dict[str, Any]:
        """Route a contact for an identified account and return the decision; store nothing."""
        with self.db.session() as session:
            identity = self.identify(session, request)
            attrs, entitlement, outcome = self.route(session, identity, request)
            return _explained(attrs, entitlement.access, entitlement.next_open_at, outcome)

    def explain_attributes(self, attrs: ContactAttributes) -> dict[str, Any]:
        """Route explicit attributes (no account lookup) and return the decision; store nothing."""
        region = (
            self.policy.regions.get(attrs.account_region or "")
            or self.policy.regions[self.policy.default_region]
        )
        tier_policy = self.policy.tiers[attrs.tier]
        with self.db.session() as session:
            calendar = self.cache.region_calendar(session, region.key, attrs.received_at.date())
            outcome = decide(
                rules=self.cache.rules(session),
                attrs=attrs,
                base_priority=self.base_priority(attrs.tier, attrs.severity),
                tier_sla_policy=tier_policy.sla_policy,
                sla_categories=self.policy.sla_categories,
                sla_policies=self.policy.sla_policies,
                calendar=calendar,
            )
        return _explained(attrs, None, None, outcome)

    def _store(self, session: Session, request: ContactRequest) -> Contact:
        contact = Contact(
            channel=request.channel.value,
            external_id=request.external_id,
            received_at=request.received_at,
            from_address=request.from_address,
            subject=request.subject,
            severity=(request.severity or Severity.S3).value,
            category=(request.category or Category.BREAK_FIX).value,
            topic=request.topic.value if request.topic else None,
            region=request.number_region,
            language=request.language,
            tags=sorted(request.tags),
            checklist=dict(request.checklist),
            sla_state=SlaState.NONE.value,
        )
        # The contact joins the session only once complete (``_add_events``): added earlier, the
        # lookups below would autoflush it, and every later change would be another UPDATE.
        received: dict[str, Any] = {"channel": request.channel.value, **request.details}
        events = [("received", received)]
        if request.record_only:
            contact.status = ContactStatus.RECORDED.value
            events.append(("recorded", {"reason": "not routed (automatic message)"}))
            _add_events(session, contact, request.received_at, events)
            return contact
        try:
            identity = self.identify(session, request)
        except IdentityError as exc:
            if request.refuse_unidentified:
                raise
            contact.status = ContactStatus.REJECTED.value
            contact.decision = {"rejected": exc.reason}
            events.append(("rejected", {"reason": exc.reason}))
            _add_events(session, contact, request.received_at, events)
            return contact

        contact.account_id = identity.account.id
        contact.admin = identity.admin
        contact.via_partner_id = identity.via_partner.id if identity.via_partner else None
        attrs, entitlement, outcome = self.route(session, identity, request)
        decision = outcome.decision
        contact.tier = attrs.tier.value
        contact.region = request.number_region or identity.account.region
        # SPEC 2.1: a contact with no contractual first-response time is tagged sla:none.
        no_sla = {"sla:none"} if outcome.clock is None else set()
        contact.tags = sorted(set(attrs.tags) | set(decision.tags) | no_sla)
        contact.rule_version = decision.ruleset_version
        contact.matched_rule = decision.matched_rule
        contact.decision = {
            **outcome.to_dict(),
            "access": entitlement.access.value,
            "next_open_at": entitlement.next_open_at.isoformat()
            if entitlement.next_open_at
            else None,
            "attributes": attrs.to_dict(),
        }
        if entitlement.access in (Access.HELP_CENTER, Access.DENIED):
            contact.status = ContactStatus.DEFLECTED.value
            events.append(
                ("deflected", {"access": entitlement.access.value, "tier": attrs.tier.value})
            )
            _add_events(session, contact, request.received_at, events)
            return contact

        contact.status = ContactStatus.WAITING.value
        contact.queue_key = decision.queue
        contact.priority = decision.priority
        contact.sla_policy = outcome.sla_policy
        events.append(
            (
                "routed",
                {
                    "queue": decision.queue,
                    "priority": decision.priority,
                    "rule": decision.matched_rule,
                    "rule_version": decision.ruleset_version,
                    "access": entitlement.access.value,
                },
            )
        )
        if outcome.clock is not None:
            contact.sla_started_at = outcome.clock.started_at
            contact.warning_at = outcome.clock.warning_at
            contact.due_at = outcome.clock.due_at
            contact.sla_state = SlaState.OK.value
            events.append(
                (
                    "sla_started",
                    {
                        "policy": outcome.sla_policy,
                        "started_at": outcome.clock.started_at.isoformat(),
                        "due_at": outcome.clock.due_at.isoformat(),
                    },
                )
            )
        _add_events(session, contact, request.received_at, events)
        return contact


def _explained(
    attrs: ContactAttributes,
    access: Access | None,
    next_open_at: datetime | None,
    outcome: RoutingOutcome,
) -> dict[str, Any]:
    return {
        "attributes": attrs.to_dict(),
        "access": access.value if access else None,
        "next_open_at": next_open_at.isoformat() if next_open_at else None,
        "decision": outcome.to_dict(),
    }


def _no_view(_session: Session, _contact: Contact, _result: IntakeResult) -> None:
    return None


def _find(session: Session, channel: Channel, external_id: str) -> Contact | None:
    return session.scalar(
        _CONTACT_BY_EXTERNAL_ID, {"channel": channel.value, "external_id": external_id}
    )


def _add_events(
    session: Session, contact: Contact, at: datetime, events: list[tuple[str, dict[str, Any]]]
) -> None:
    """Store the (complete) contact, then its timeline in one multi-row INSERT."""
    session.add(contact)
    session.flush()
    session.execute(
        insert(ContactEvent),
        [
            {"contact_id": contact.id, "at": at, "kind": kind, "actor": "router", "data": data}
            for kind, data in events
        ],
    )


def _result(contact: Contact, *, created: bool) -> IntakeResult:
    decision = contact.decision or {}
    access = decision.get("access")
    next_open = decision.get("next_open_at")
    return IntakeResult(
        contact_id=contact.id,
        reference=contact.reference,
        created=created,
        status=ContactStatus(contact.status),
        access=Access(access) if access else None,
        queue=contact.queue_key,
        priority=contact.priority,
        sla_policy=contact.sla_policy,
        due_at=contact.due_at,
        next_open_at=datetime.fromisoformat(next_open) if next_open else None,
        reason=decision.get("rejected"),
    )


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)
