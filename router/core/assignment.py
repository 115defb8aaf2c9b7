"""Assignment: the one serving order, who may take a contact, and which agent a queue picks.

Pure: the dispatcher in router/services reads contacts and agents, asks ``choose_agent`` (or
``next_contact`` when an agent frees up) and stores the reservation together with the explain
this module returns — every candidate and why it was passed over.

The order is the same everywhere (SPEC 7): priority, high first; then the SLA due time,
earliest first, contacts without an SLA last; then the received time; the contact id breaks
ties so two processes always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from router.core.calendar import as_utc
from router.core.domain import Channel, Presence, Strategy

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(value: datetime, name: str) -> int:
    """Return ``value`` as exact microseconds since the epoch; naive datetimes are refused.

    Integers, not ``datetime.timestamp()`` floats: those read a naive value in the process's
    local time zone and round away microseconds far from the epoch, so two processes (or two
    nearby times) could disagree on the order.
    """
    return (as_utc(value, name) - _EPOCH) // _MICROSECOND


@dataclass(frozen=True)
class WaitingContact:
    """What assignment needs to know of a contact waiting in a queue."""

    id: int
    queue: str
    channel: Channel
    priority: int
    due_at: datetime | None
    received_at: datetime
    language: str | None = None


def order_key(contact: WaitingContact) -> tuple[int, int, float, float, int]:
    """Return the contact's place in the one serving order (smaller comes first).

    The times are exact integer microseconds (an ``int`` is a ``float`` to the type checker);
    a contact without an SLA sorts after every contact with one by the second element alone.
    Naive datetimes raise ValueError, as everywhere in the core.
    """
    due = _micros(contact.due_at, "due_at") if contact.due_at is not None else 0
    return (
        -contact.priority,
        int(contact.due_at is None),
        due,
        _micros(contact.received_at, "received_at"),
        contact.id,
    )


@dataclass(frozen=True)
class AgentState:
    """What assignment needs to know of an agent: presence, skills, languages, free capacity."""

    id: int
    presence: Presence
    skills: Mapping[str, int]  # queue key -> level 1..3
    languages: frozenset[str]
    capacity: Mapping[Channel, int]
    load: Mapping[Channel, int]
    idle_since: datetime | None = None
    last_offered_at: datetime | None = None

    def free(self, channel: Channel) -> int:
        """Return how many more contacts of ``channel`` the agent can take."""
        return self.capacity.get(channel, 0) - self.load.get(channel, 0)

    def occupancy(self) -> float:
        """Return the share of the agent's total capacity in use (1, full, when it has none)."""
        total = sum(self.capacity.values())
        return sum(self.load.values()) / total if total else 1.0


class PassedOver(StrEnum):
    """Why an agent was not offered a contact."""

    NOT_AVAILABLE = "not_available"  # away or offline
    NO_SKILL = "no_skill"  # does not serve the contact's queue
    LANGUAGE = "language"  # does not speak the contact's language
    AT_CAPACITY = "at_capacity"  # no free slot on the contact's channel
    DECLINED = "declined"  # already rejected or let this contact's offer expire
    LOWER_RANK = "lower_rank"  # eligible, but the queue's strategy preferred another


@dataclass(frozen=True)
class Candidate:
    """One agent considered for a contact: chosen, or passed over and why."""

    agent_id: int
    chosen: bool
    reason: PassedOver | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the candidate as stored in the assignment's explain."""
        return {
            "agent_id": self.agent_id,
            "chosen": self.chosen,
            "reason": self.reason.value if self.reason else None,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Choice:
    """The agent a contact is offered to (None: nobody eligible) and every candidate's fate."""

    contact_id: int
    agent_id: int | None
    strategy: Strategy
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    def explain(self) -> dict[str, Any]:
        """Return the explain stored with the reservation and shown on the contact."""
        return {
            "contact_id": self.contact_id,
            "agent_id": self.agent_id,
            "strategy": self.strategy.value,
            "candidates": [candidate.to_dict() for candidate in self.candidates],
        }


def ineligibility(
    contact: WaitingContact, agent: AgentState, declined: Iterable[int] = ()
) -> tuple[PassedOver, str] | None:
    """Return why ``agent`` may not take ``contact`` now, or None if it may.

    The first that applies, in this order: not available, no skill for the queue, language,
    no free capacity on the contact's channel, already declined. Languages match exactly; a
    contact without a language may go to anyone, and an agent with no languages listed takes
    any language (nobody filled them in: better offered than left waiting forever).
    """
    if agent.presence is not Presence.AVAILABLE:
        return PassedOver.NOT_AVAILABLE, agent.presence.value
    if contact.queue not in agent.skills:
        return PassedOver.NO_SKILL, f"does not serve {contact.queue}"
    if contact.language and agent.languages and contact.language not in agent.languages:
        return PassedOver.LANGUAGE, f"does not speak {contact.language}"
    if agent.free(contact.channel) <= 0:
        return (
            PassedOver.AT_CAPACITY,
            f"{contact.channel.value} capacity {agent.capacity.get(contact.channel, 0)} in use",
        )
    if agent.id in set(declined):
        return PassedOver.DECLINED, "already passed on this contact"
    return None


def _rank(agent: AgentState, contact: WaitingContact, strategy: Strategy) -> tuple[Any, ...]:
    """Return the agent's rank for ``strategy`` (smaller is preferred); the id breaks ties.

    A missing time is a leading flag, never a sentinel time: (0, t) before (1, 0).
    """
    if strategy is Strategy.LEAST_OCCUPIED:
        return (agent.occupancy(), agent.id)
    if strategy is Strategy.ROUND_ROBIN:
        # Least recently offered first; never offered before anyone who was.
        if agent.last_offered_at is None:
            return (0, 0, agent.id)
        return (1, _micros(agent.last_offered_at, "last_offered_at"), agent.id)
    # Longest idle (also highest skill's tie-break): idle the longest first; an agent with work
    # in hand (no idle_since) last.
    if agent.idle_since is None:
        idle: tuple[int, int] = (1, 0)
    else:
        idle = (0, _micros(agent.idle_since, "idle_since"))
    if strategy is Strategy.HIGHEST_SKILL:
        return (-agent.skills.get(contact.queue, 0), *idle, agent.id)
    return (*idle, agent.id)


def choose_agent(
    contact: WaitingContact,
    agents: Sequence[AgentState],
    strategy: Strategy = Strategy.LONGEST_IDLE,
    declined: Iterable[int] = (),
) -> Choice:
    """Pick the agent ``contact`` is offered to, by its queue's strategy, with every reason."""
    passed = set(declined)
    eligible: list[AgentState] = []
    reasons: dict[int, tuple[PassedOver, str]] = {}
    for agent in agents:
        why = ineligibility(contact, agent, passed)
        if why is None:
            eligible.append(agent)
        else:
            reasons[agent.id] = why
    ranked = sorted(eligible, key=lambda agent: _rank(agent, contact, strategy))
    chosen = ranked[0].id if ranked else None
    candidates = [Candidate(agent.id, chosen=agent.id == chosen) for agent in ranked[:1]]
    candidates += [
        Candidate(agent.id, False, PassedOver.LOWER_RANK, f"{strategy.value} preferred {chosen}")
        for agent in ranked[1:]
    ]
    candidates += [
        Candidate(agent_id, False, reason, detail)
        for agent_id, (reason, detail) in sorted(reasons.items())
    ]
    return Choice(contact.id, chosen, strategy, tuple(candidates))


def next_contact(
    agent: AgentState,
    waiting: Iterable[WaitingContact],
    declined: Mapping[int, Iterable[int]] | None = None,
) -> WaitingContact | None:
    """Return the first contact in the serving order that ``agent`` may take, if any.

    ``declined`` maps a contact id to the agents who already passed on it.
    """
    passed = declined or {}
    for contact in sorted(waiting, key=order_key):
        if ineligibility(contact, agent, passed.get(contact.id, ())) is None:
            return contact
    return None
