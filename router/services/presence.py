"""Agent presence: available, away or offline, each change stored as a timestamped event.

"Busy" is not a presence: it follows from capacity. An agent who lets two offers in a row time
out is set away by the router, so contacts stop waiting on someone who is not there.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from config.settings import Settings
from router.core.domain import Presence
from router.services.agents import AgentView, find_agent, find_staff, get_agent
from router.services.errors import Invalid
from router.store.db import Database
from router.store.models.agents import CHANNELS, Agent, PresenceEvent

log = logging.getLogger(__name__)

MAX_REASON = 100
MISSED_OFFERS_AWAY = 2
MISSED_OFFERS_REASON = "missed_offers"
ROUTER_ACTOR = "router"


def _check(presence: str, reason: str | None) -> tuple[Presence, str | None]:
    errors: dict[str, list[str]] = {}
    try:
        value = Presence(presence)
    except ValueError:
        errors["presence"] = [", ".join(p.value for p in Presence)]
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        errors["reason"] = [f"at most {MAX_REASON} characters"]
    if errors:
        raise Invalid("the presence change has invalid fields; see errors", errors=errors)
    return value, (reason.strip() or None) if reason else None


def _change(
    session: Session,
    agent: Agent,
    presence: Presence,
    *,
    reason: str | None,
    actor: str,
    now: datetime,
) -> None:
    """Store a presence change on the agent and as an event, in the caller's transaction."""
    agent.presence = presence.value
    agent.presence_reason = reason
    agent.presence_changed_at = now
    if presence is Presence.AVAILABLE:
        # A fresh start: earlier missed offers no longer say anything about this stint.
        agent.missed_offers = 0
        if not any(getattr(agent, f"load_{channel}") for channel in CHANNELS):
            agent.idle_since = now
    session.add(
        PresenceEvent(
            agent_id=agent.staff_user_id,
            at=now,
            presence=presence.value,
            reason=reason,
            actor=actor,
        )
    )


def set_presence(
    db: Database,
    settings: Settings,
    staff_id: int,
    presence: str,
    *,
    reason: str | None,
    actor: str,
    now: datetime,
) -> AgentView:
    """Set an agent's presence (the same presence again changes nothing) and offer them work."""
    if store_presence(db, staff_id, presence, reason=reason, actor=actor, now=now) is (
        Presence.AVAILABLE
    ):
        _offer_work(db, settings, staff_id, now)
    return get_agent(db, staff_id)


def store_presence(
    db: Database, staff_id: int, presence: str, *, reason: str | None, actor: str, now: datetime
) -> Presence | None:
    """Store a presence change and its event; return the new presence, None if unchanged."""
    value, reason = _check(presence, reason)
    with db.transaction() as session:
        find_staff(session, staff_id)
        agent = find_agent(session, staff_id, lock=True)
        if agent.presence == value.value:
            return None
        # Away and offline keep the work in hand: the agent finishes or hands it over.
        _change(session, agent, value, reason=reason, actor=actor, now=now)
        return value


def _offer_work(db: Database, settings: Settings, staff_id: int, now: datetime) -> None:
    """Offer waiting work to an agent who just became available."""
    # Imported here: the dispatcher calls back into this module (missed offers).
    from router.services import dispatch

    try:
        dispatch.dispatch_agent(db, settings, staff_id, now)
    except Exception:
        # The presence change is committed; the scheduler's dispatch retry offers the work.
        log.exception("dispatch after agent %s became available failed", staff_id)


def record_missed_offer(session: Session, agent: Agent, now: datetime) -> bool:
    """Count an offer the agent let time out; the second in a row sets them away (True)."""
    agent.missed_offers = (agent.missed_offers or 0) + 1
    if agent.missed_offers < MISSED_OFFERS_AWAY or agent.presence != Presence.AVAILABLE.value:
        return False
    _change(session, agent, Presence.AWAY, reason=MISSED_OFFERS_REASON, actor=ROUTER_ACTOR, now=now)
    return True


def reset_missed_offers(session: Session, agent: Agent) -> None:
    """Forget missed offers: the agent answered one (accepted or rejected)."""
    del session  # same signature as record_missed_offer: both run in the dispatcher's transaction
    agent.missed_offers = 0
