"""Agent profiles for staff users: skills, languages, per-channel capacity and a voice endpoint."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from router.core.assignment import AgentState
from router.core.domain import Channel, Presence
from router.services import audit
from router.services.errors import Conflict, Invalid, NotFound
from router.services.paging import Page, contains_text, query_page
from router.store.db import Database
from router.store.models import Queue, StaffUser
from router.store.models.agents import CHANNELS, Agent, AgentSkill

DEFAULT_CAPACITY = {"voice": 1, "chat": 3, "email": 8, "portal": 8}
MAX_CAPACITY = 100
MAX_LANGUAGES = 20
SKILL_LEVELS = range(1, 4)
# BCP 47 in short: a primary language, then optional script/region/variant subtags.
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}$")
_CLIENT = re.compile(r"^client:[A-Za-z0-9_.-]{1,121}$")
# Conservative: sip:user@host[:port], no parameters, headers or spaces.
_SIP = re.compile(
    r"^sips?:[A-Za-z0-9_.!~*'()&=+$,;?/%-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}"
    r"[A-Za-z0-9])?)*(?::[0-9]{1,5})?$"
)


@dataclass(frozen=True)
class SkillView:
    """A queue an agent serves, and at which level (1-3)."""

    queue: str
    level: int


@dataclass(frozen=True)
class AgentView:
    """An agent: who, what they serve, their capacity and load per channel, their presence."""

    id: int
    email: str
    name: str | None
    active: bool
    skills: tuple[SkillView, ...]
    languages: tuple[str, ...]
    capacity: dict[str, int]
    load: dict[str, int]
    voice_endpoint: str | None
    presence: str
    presence_reason: str | None
    presence_changed_at: datetime
    missed_offers: int
    idle_since: datetime | None
    last_offered_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, agent: Agent, user: StaffUser) -> AgentView:
        """Return the view of a stored agent and their staff user."""
        return cls(
            id=agent.staff_user_id,
            email=user.email,
            name=user.name,
            active=user.active,
            skills=tuple(SkillView(skill.queue_key, skill.level) for skill in agent.skills),
            languages=tuple(agent.languages or ()),
            capacity={channel: getattr(agent, f"capacity_{channel}") for channel in CHANNELS},
            load={channel: getattr(agent, f"load_{channel}") for channel in CHANNELS},
            voice_endpoint=agent.voice_endpoint,
            presence=agent.presence,
            presence_reason=agent.presence_reason,
            presence_changed_at=agent.presence_changed_at,
            missed_offers=agent.missed_offers,
            idle_since=agent.idle_since,
            last_offered_at=agent.last_offered_at,
            created_at=agent.created_at,
            updated_at=agent.updated_at,
        )


def agent_state(agent: Agent) -> AgentState:
    """Return what the assignment core needs to know of a stored agent and their skills."""
    languages: set[str] = set()
    for tag in agent.languages or ():
        # An agent who speaks "fr-CA" speaks "fr" too.
        languages.update({tag, tag.split("-", 1)[0]})
    return AgentState(
        id=agent.staff_user_id,
        presence=Presence(agent.presence),
        skills={skill.queue_key: skill.level for skill in agent.skills},
        languages=frozenset(languages),
        capacity={Channel(c): getattr(agent, f"capacity_{c}") for c in CHANNELS},
        load={Channel(c): getattr(agent, f"load_{c}") for c in CHANNELS},
        idle_since=agent.idle_since,
        last_offered_at=agent.last_offered_at,
    )


def language_tag(value: Any) -> str:
    """Return a language tag in its usual case ("fr-ca" -> "fr-CA"); ValueError if malformed."""
    if not isinstance(value, str) or not _LANGUAGE.match(value.strip()):
        raise ValueError(f"{value!r} is not a language tag such as en, he or fr-CA")
    primary, *rest = value.strip().split("-")
    subtags = [primary.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            subtags.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha():
            subtags.append(part.title())  # script
        else:
            subtags.append(part.lower())
    return "-".join(subtags)


def voice_endpoint(value: str) -> str:
    """Return a voice endpoint in stored form (E.164, client:, SIP URI); ValueError if not one."""
    text = value.strip()
    if text.startswith("client:"):
        if not _CLIENT.match(text):
            raise ValueError("client:<identity> takes 1-121 letters, digits, '_', '.' or '-'")
        return text
    if text.lower().startswith(("sip:", "sips:")):
        if not _SIP.match(text):
            raise ValueError("a SIP URI looks like sip:user@host")
        return text
    if not text.startswith("+"):
        raise ValueError("an E.164 number (+ and country code), client:<identity> or sip:user@host")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{text!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{text!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _skills(session: Session, value: Any, errors: dict[str, list[str]]) -> dict[str, int] | None:
    if not isinstance(value, list | tuple):
        errors["skills"] = ["a list of {queue, level}"]
        return None
    found: dict[str, int] = {}
    problems: list[str] = []
    for index, item in enumerate(value):
        queue = item.get("queue") if isinstance(item, Mapping) else None
        level = item.get("level", 1) if isinstance(item, Mapping) else None
        if not isinstance(queue, str) or not queue:
            problems.append(f"[{index}]: give the queue key")
        elif queue in found:
            problems.append(f"[{index}]: {queue} is listed twice")
        elif isinstance(level, bool) or not isinstance(level, int) or level not in SKILL_LEVELS:
            problems.append(f"[{index}]: level is 1, 2 or 3")
        else:
            found[queue] = level
    if found:
        rows = session.execute(select(Queue.key, Queue.kind).where(Queue.key.in_(found)))
        kinds = {key: kind for key, kind in rows}
        for queue in found:
            if queue not in kinds:
                problems.append(f"no queue {queue}")
            elif kinds[queue] != "human":
                problems.append(
                    f"{queue} is a {kinds[queue]} queue; only human queues are assigned"
                )
    if problems:
        errors["skills"] = problems
        return None
    return found


def _languages(value: Any, errors: dict[str, list[str]]) -> list[str] | None:
    if not isinstance(value, list | tuple):
        errors["languages"] = ["a list of language tags such as en, he or fr-CA"]
        return None
    if len(value) > MAX_LANGUAGES:
        errors["languages"] = [f"at most {MAX_LANGUAGES}"]
        return None
    tags: list[str] = []
    problems: list[str] = []
    for item in value:
        try:
            tag = language_tag(item)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if tag not in tags:
            tags.append(tag)
    if problems:
        errors["languages"] = problems
        return None
    return tags


def _capacity(value: Any, errors: dict[str, list[str]]) -> dict[str, int] | None:
    if not isinstance(value, Mapping):
        errors["capacity"] = ["an object with voice, chat, email and portal counts"]
        return None
    problems = [f"{name}: no such channel" for name in value if name not in CHANNELS]
    for name, count in value.items():
        if name in CHANNELS and (
            isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_CAPACITY
        ):
            problems.append(f"{name}: a whole number from 0 to {MAX_CAPACITY}")
    if problems:
        errors["capacity"] = problems
        return None
    return dict(value)


def _endpoint(value: Any, errors: dict[str, list[str]]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 320:
        errors["voice_endpoint"] = ["a string of at most 320 characters"]
        return None
    try:
        return voice_endpoint(value)
    except ValueError as exc:
        errors["voice_endpoint"] = [str(exc)]
        return None


def _clean(session: Session, values: Mapping[str, Any]) -> dict[str, Any]:
    """Return the profile fields given, normalised; Invalid naming every bad field."""
    errors: dict[str, list[str]] = {}
    unknown = set(values) - {"skills", "languages", "capacity", "voice_endpoint"}
    for name in sorted(unknown):
        errors[name] = ["unknown field"]
    clean: dict[str, Any] = {}
    if "skills" in values:
        clean["skills"] = _skills(session, values["skills"], errors)
    if "languages" in values:
        clean["languages"] = _languages(values["languages"], errors)
    if "capacity" in values:
        clean["capacity"] = _capacity(values["capacity"], errors)
    if "voice_endpoint" in values:
        clean["voice_endpoint"] = _endpoint(values["voice_endpoint"], errors)
    if errors:
        raise Invalid("the agent profile has invalid fields; see errors", errors=errors)
    return clean


def _apply(agent: Agent, clean: Mapping[str, Any]) -> None:
    if "skills" in clean:
        wanted: dict[str, int] = clean["skills"]
        for skill in list(agent.skills):
            if skill.queue_key not in wanted:
                agent.skills.remove(skill)
        held = {skill.queue_key: skill for skill in agent.skills}
        for queue, level in wanted.items():
            if queue in held:
                held[queue].level = level
            else:
                agent.skills.append(AgentSkill(queue_key=queue, level=level))
    if "languages" in clean:
        agent.languages = list(clean["languages"])
    if "voice_endpoint" in clean:
        agent.voice_endpoint = clean["voice_endpoint"]
    for channel, count in clean.get("capacity", {}).items():
        load = getattr(agent, f"load_{channel}") or 0
        if count < load:
            raise Conflict(
                f"{channel} capacity {count} is below the {load} contact(s) in hand",
                errors={"capacity": [f"{channel}: {load} in hand; wait or move work first"]},
            )
        setattr(agent, f"capacity_{channel}", count)


def find_staff(session: Session, staff_id: int) -> StaffUser:
    """Return a staff user (NotFound if there is none)."""
    user = session.get(StaffUser, staff_id)
    if user is None:
        raise NotFound(f"no staff user {staff_id}")
    return user


def find_agent(session: Session, staff_id: int, *, lock: bool = False) -> Agent:
    """Return a staff user's agent profile, optionally locked for update (NotFound if none)."""
    stmt = select(Agent).where(Agent.staff_user_id == staff_id)
    if lock:
        # Dispatchers change load under the same row lock: a capacity check sees the real load.
        stmt = stmt.with_for_update()
    agent = session.scalar(stmt)
    if agent is None:
        raise NotFound(f"staff user {staff_id} has no agent profile")
    return agent


def create_agent(
    db: Database, staff_id: int, values: Mapping[str, Any], *, actor: str, now: datetime
) -> AgentView:
    """Give a staff user an agent profile (offline until they say otherwise)."""
    with db.transaction() as session:
        user = find_staff(session, staff_id)
        clean = _clean(session, values)
        if session.get(Agent, staff_id) is not None:
            raise Conflict(f"staff user {staff_id} already has an agent profile")
        agent = Agent(
            staff_user_id=staff_id,
            languages=[],
            presence=Presence.OFFLINE.value,
            presence_changed_at=now,
            created_at=now,
            updated_at=now,
            **{f"capacity_{c}": n for c, n in DEFAULT_CAPACITY.items()},
            **{f"load_{c}": 0 for c in CHANNELS},
            missed_offers=0,
        )
        session.add(agent)
        _apply(agent, clean)
        session.flush()
        view = AgentView.of(agent, user)
        audit.record(
            session,
            actor=actor,
            action="agent.create",
            entity_type="agent",
            entity_id=str(staff_id),
            after=audit.snapshot(view),
            at=now,
        )
        return view


def update_agent(
    db: Database, staff_id: int, values: Mapping[str, Any], *, actor: str, now: datetime
) -> AgentView:
    """Change an agent's skills, languages, capacity or voice endpoint."""
    with db.transaction() as session:
        user = find_staff(session, staff_id)
        agent = find_agent(session, staff_id, lock=True)
        clean = _clean(session, values)
        before = audit.snapshot(AgentView.of(agent, user))
        _apply(agent, clean)
        agent.updated_at = now
        session.flush()
        view = AgentView.of(agent, user)
        audit.record(
            session,
            actor=actor,
            action="agent.update",
            entity_type="agent",
            entity_id=str(staff_id),
            before=before,
            after=audit.snapshot(view),
            at=now,
        )
        return view


def get_agent(db: Database, staff_id: int) -> AgentView:
    """Return one agent's profile and presence."""
    with db.session() as session:
        user = find_staff(session, staff_id)
        return AgentView.of(find_agent(session, staff_id), user)


def list_agents(
    db: Database,
    *,
    page: int,
    per_page: int,
    presence: str | None = None,
    queue: str | None = None,
    q: str | None = None,
) -> Page[AgentView]:
    """Return agents by email (filter by presence, a queue served, email or name text)."""
    stmt = (
        select(Agent)
        .join(StaffUser, StaffUser.id == Agent.staff_user_id)
        .options(selectinload(Agent.skills))
        .order_by(StaffUser.email)
    )
    if presence:
        stmt = stmt.where(Agent.presence == presence)
    if queue:
        served = select(AgentSkill.agent_id).where(AgentSkill.queue_key == queue)
        stmt = stmt.where(Agent.staff_user_id.in_(served))
    if q:
        stmt = stmt.where(contains_text(q, StaffUser.email, StaffUser.name))
    with db.session() as session:
        agents = query_page(session, stmt, page, per_page)
        ids = [agent.staff_user_id for agent in agents.items]
        users = {
            user.id: user
            for user in session.scalars(select(StaffUser).where(StaffUser.id.in_(ids)))
        }
        return agents.map(lambda agent: AgentView.of(agent, users[agent.staff_user_id]))
