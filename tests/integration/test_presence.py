"""Presence in the store: events, missed offers setting an agent away, and the reset."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from config.policy import load_policy
from config.settings import DEFAULT_POLICY_DIR, Settings
from router.core.domain import Channel, Presence
from router.services import presence
from router.services.agents import agent_state, create_agent, find_agent, get_agent
from router.services.bootstrap import seed_policy_defaults
from router.services.logins import create_staff
from router.store import migrate
from router.store.db import Database
from router.store.models.agents import PresenceEvent
from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL, make_settings
from tests.postgres import scratch_schema

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Yield one migrated store for the module; each test adds agents of its own."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("presence") / "router.sqlite3"
        url = f"sqlite:///{path}"
        migrate.upgrade(url)
        yield url
        return
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    with scratch_schema(POSTGRES_URL, "presence") as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="module")
def settings(store_url: str) -> Settings:
    return make_settings(store_url)


@pytest.fixture(scope="module")
def db(store_url: str) -> Iterator[Database]:
    """Yield the module's store with the shipped queues (skills name them)."""
    database = Database(store_url)
    seed_policy_defaults(database, load_policy(DEFAULT_POLICY_DIR), actor="tests")
    yield database
    database.dispose()


def new_agent(db: Database, **profile: object) -> int:
    user = create_staff(db, f"agent-{uuid.uuid4().hex[:10]}@support.example", "viewer")
    create_agent(db, user.id, profile, actor="tests", now=NOW)
    return user.id


def events(db: Database, staff_id: int) -> list[tuple[str, str | None, str]]:
    with db.session() as session:
        rows = session.scalars(
            select(PresenceEvent)
            .where(PresenceEvent.agent_id == staff_id)
            .order_by(PresenceEvent.id)
        )
        return [(event.presence, event.reason, event.actor) for event in rows]


def miss(db: Database, staff_id: int, at: datetime) -> bool:
    with db.transaction() as session:
        return presence.record_missed_offer(session, find_agent(session, staff_id, lock=True), at)


def test_two_missed_offers_in_a_row_set_the_agent_away(db: Database, settings: Settings) -> None:
    staff_id = new_agent(db)
    view = presence.set_presence(
        db, settings, staff_id, "available", reason=None, actor="a@support.example", now=NOW
    )
    assert view.presence == "available" and view.idle_since == NOW

    assert miss(db, staff_id, NOW + timedelta(seconds=20)) is False
    assert get_agent(db, staff_id).presence == "available"
    assert miss(db, staff_id, NOW + timedelta(seconds=40)) is True
    after = get_agent(db, staff_id)
    assert after.presence == "away" and after.presence_reason == "missed_offers"
    assert after.missed_offers == 2
    assert events(db, staff_id) == [
        ("available", None, "a@support.example"),
        ("away", "missed_offers", "router"),
    ]
    # Already away: a further miss records no second event.
    assert miss(db, staff_id, NOW + timedelta(seconds=60)) is False
    assert len(events(db, staff_id)) == 2

    # Coming back starts afresh: the old misses no longer count.
    back = presence.set_presence(
        db, settings, staff_id, "available", reason="back", actor="a@support.example", now=NOW
    )
    assert back.presence == "available" and back.missed_offers == 0


def test_an_answered_offer_resets_the_count(db: Database, settings: Settings) -> None:
    staff_id = new_agent(db)
    presence.store_presence(db, staff_id, "available", reason=None, actor="tests", now=NOW)
    assert miss(db, staff_id, NOW) is False
    with db.transaction() as session:
        presence.reset_missed_offers(session, find_agent(session, staff_id))
    assert miss(db, staff_id, NOW) is False  # one in a row again, not two
    assert get_agent(db, staff_id).presence == "available"


def test_the_same_presence_again_stores_nothing(db: Database, settings: Settings) -> None:
    staff_id = new_agent(db)
    assert presence.store_presence(db, staff_id, "offline", reason=None, actor="t", now=NOW) is None
    assert events(db, staff_id) == []
    assert (
        presence.store_presence(db, staff_id, "away", reason=" meeting ", actor="t", now=NOW)
        is Presence.AWAY
    )
    assert events(db, staff_id) == [("away", "meeting", "t")]


def test_agent_state_is_what_assignment_reads(db: Database) -> None:
    staff_id = new_agent(
        db,
        languages=["fr-CA", "en"],
        skills=[{"queue": "cse-mac", "level": 2}],
        capacity={"chat": 4},
    )
    with db.session() as session:
        state = agent_state(find_agent(session, staff_id))
    assert state.id == staff_id and state.presence is Presence.OFFLINE
    assert state.skills == {"cse-mac": 2}
    assert state.languages == frozenset({"fr-CA", "fr", "en"})
    assert state.free(Channel.CHAT) == 4 and state.free(Channel.VOICE) == 1
