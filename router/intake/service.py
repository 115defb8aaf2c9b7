"""The one intake path: identify, entitle, route and store a contact, in one transaction.

Every channel adapter turns what its provider sent into a ContactRequest and calls
``IntakeService.intake``. The same (channel, external id) twice returns the first contact and
stores nothing new, so provider retries are no-ops (``unit_of_work``). Who a contact is from is
decided in ``identity``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import insert
from sqlalchemy.orm import Session

from config.policy import Policy
from config.settings import Settings
from router.core.calendar import BusinessCalendar
from router.core.decision import RoutingOutcome, decide
from router.core.domain import Category, ContactStatus, Severity, SlaState, Tier
from router.core.entitlement import Access, ChannelEntitlement, channel_entitlement, effective_tier
from router.core.rules import ContactAttributes
from router.intake import unit_of_work
from router.intake.decision_record import rejected_record, routed_record
from router.intake.identity import Identity, IdentityError, identify
from router.intake.request import ContactRequest, IntakeMode, IntakeResult
from router.intake.unit_of_work import FollowUp, StoredContact
from router.services.dispatch import dispatch_contact
from router.services.routing import RoutingCache
from router.store.db import Database
from router.store.models import Contact, ContactEvent

T = TypeVar("T")

log = logging.getLogger(__name__)


class IntakeService:
    """Turn contact requests into stored, routed contacts."""

    def __init__(
        self,
        db: Database,
        policy: Policy,
        cache: RoutingCache,
        *,
        settings: Settings | None = None,
    ) -> None:
        self.db = db
        self.policy = policy
        self.cache = cache
        # With settings, a new waiting contact is offered to an agent once stored (see _offer).
        self.settings = settings

    def intake(self, request: ContactRequest) -> IntakeResult:
        """Store and route one contact, or return the one already stored for this delivery."""
        return self.intake_with_follow_up(request, _no_follow_up)[0]

    def intake_with_follow_up(
        self, request: ContactRequest, follow_up: FollowUp[T]
    ) -> tuple[IntakeResult, T]:
        """Intake ``request``, then run ``follow_up`` on its contact in the same transaction.

        For a channel whose answer needs more than the result; see ``unit_of_work`` for what a
        follow-up may do and how a lost race reruns it on the first delivery's contact.
        """
        result, followed = unit_of_work.run(
            self.db,
            request.channel,
            request.external_id,
            lambda session: self._store(session, request),
            follow_up,
        )
        self._offer(result)
        return result, followed

    def _offer(self, result: IntakeResult) -> None:
        """Offer a contact just stored as waiting to an agent, after its transaction committed.

        Never fails the intake: the contact is stored whatever happens here, and the
        scheduler's dispatch job offers whatever is still waiting.
        """
        if self.settings is None or not result.created:
            return
        if result.status is not ContactStatus.WAITING:
            return
        try:
            dispatch_contact(self.db, self.settings, result.contact_id, datetime.now(UTC))
        except Exception:
            log.exception("could not offer contact %s; the scheduler retries", result.contact_id)

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
            identity = identify(session, request.sender)
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
            from_address=request.sender.from_address,
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
        if request.mode is IntakeMode.RECORD_ONLY:
            contact.status = ContactStatus.RECORDED.value
            events.append(("recorded", {"reason": "not routed (automatic message)"}))
            _add_events(session, contact, request.received_at, events)
            return contact
        try:
            identity = identify(session, request.sender)
        except IdentityError as exc:
            if request.mode is IntakeMode.AUTHENTICATED:
                raise
            contact.status = ContactStatus.REJECTED.value
            contact.decision = rejected_record(exc.reason)
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
        contact.decision = routed_record(outcome, entitlement, attrs)
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


def _no_follow_up(_stored: StoredContact) -> None:
    return None


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


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)
