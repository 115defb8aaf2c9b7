"""Dispatch: offers follow the serving order and the queue's strategy, never exceed capacity, and
stay one per contact however many processes dispatch at once; accept, reject and expiry."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.settings import Settings
from router.core.domain import ContactStatus, Presence, ReservationStatus, Strategy
from router.services import dispatch, reservations
from router.services import offers as offer_reads
from router.services.errors import Conflict, NotFound
from router.store import migrate
from router.store.db import Database
from router.store.models import Contact, ContactEvent, Queue, StaffUser
from router.store.models.agents import CHANNELS, Agent, AgentSkill, Reservation
from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL, make_settings
from tests.postgres import scratch_schema

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yield one migrated database per kind for the module; each test makes its own queue."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("dispatch") / "router.sqlite3"
        migrate.upgrade(f"sqlite:///{path}")
        yield f"sqlite:///{path}"
        return
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    with scratch_schema(POSTGRES_URL, "test") as scratch:
        migrate.upgrade(scratch)
        yield scratch


@pytest.fixture(scope="module")
def settings(url: str) -> Settings:
    return make_settings(url)


@pytest.fixture(scope="module")
def db(url: str) -> Iterator[Database]:
    database = Database(url)
    yield database
    database.dispose()


class Desk:
    """A queue of this test's own, its agents and contacts."""

    def __init__(self, db: Database, strategy: Strategy = Strategy.LONGEST_IDLE) -> None:
        self.db = db
        self.key = f"q-{uuid.uuid4().hex[:10]}"
        with db.transaction() as session:
            session.add(
                Queue(
                    key=self.key,
                    name=self.key,
                    team="t",
                    kind="human",
                    assignment_strategy=strategy.value,
                )
            )

    def agent(
        self,
        *,
        presence: Presence = Presence.AVAILABLE,
        capacity: int = 1,
        level: int = 1,
        idle_since: datetime | None = None,
        languages: tuple[str, ...] = (),
    ) -> int:
        with self.db.transaction() as session:
            staff = StaffUser(email=f"{uuid.uuid4().hex[:12]}@support.example", role="viewer")
            session.add(staff)
            session.flush()
            session.add(
                Agent(
                    staff_user_id=staff.id,
                    presence=presence.value,
                    languages=list(languages),
                    idle_since=idle_since,
                    **{f"capacity_{channel}": capacity for channel in CHANNELS},
                )
            )
            session.flush()
            session.add(AgentSkill(agent_id=staff.id, queue_key=self.key, level=level))
            return staff.id

    def contact(
        self,
        *,
        priority: int = 50,
        due_in: int | None = None,
        received: int = 0,
        channel: str = "email",
        severity: str = "S3",
    ) -> int:
        with self.db.transaction() as session:
            contact = Contact(
                channel=channel,
                external_id=uuid.uuid4().hex,
                status=ContactStatus.WAITING.value,
                queue_key=self.key,
                priority=priority,
                severity=severity,
                received_at=NOW + timedelta(seconds=received),
                due_at=NOW + timedelta(minutes=due_in) if due_in is not None else None,
            )
            session.add(contact)
            session.flush()
            return contact.id


def offers(db: Database, *, contact_id: int | None = None, agent_id: int | None = None) -> list:
    with db.session() as session:
        query = select(Reservation).order_by(Reservation.id)
        if contact_id is not None:
            query = query.where(Reservation.contact_id == contact_id)
        if agent_id is not None:
            query = query.where(Reservation.agent_id == agent_id)
        return list(session.scalars(query))


def agent_row(db: Database, agent_id: int) -> Agent:
    with db.session() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        return agent


def test_an_agent_is_offered_the_head_of_the_order(db: Database, settings: Settings) -> None:
    desk = Desk(db)
    no_sla = desk.contact(priority=50, received=-600)
    s3 = desk.contact(priority=50, due_in=240, received=-300)
    s1 = desk.contact(priority=50, due_in=60, received=0)
    higher = desk.contact(priority=80, received=10)
    agent = desk.agent(capacity=10)

    made = dispatch.dispatch_agent(db, settings, agent, NOW)

    assert [offer.contact_id for offer in offers(db, agent_id=agent)] == [higher, s1, s3, no_sla]
    assert len(made) == 4
    assert agent_row(db, agent).load_email == 4


def test_capacity_is_never_exceeded(db: Database, settings: Settings) -> None:
    desk = Desk(db)
    contacts = [desk.contact(received=i) for i in range(4)]
    agent = desk.agent(capacity=2)

    assert len(dispatch.dispatch_agent(db, settings, agent, NOW)) == 2
    assert dispatch.dispatch_contact(db, settings, contacts[3], NOW) is None
    assert agent_row(db, agent).load_email == 2


def test_a_contact_has_one_open_offer(db: Database, settings: Settings) -> None:
    desk = Desk(db)
    contact = desk.contact()
    desk.agent()
    desk.agent()

    assert dispatch.dispatch_contact(db, settings, contact, NOW) is not None
    assert dispatch.dispatch_contact(db, settings, contact, NOW) is None
    assert len(offers(db, contact_id=contact)) == 1


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (Strategy.LONGEST_IDLE, "idle_long"),
        (Strategy.HIGHEST_SKILL, "expert"),
        (Strategy.LEAST_OCCUPIED, "idle_long"),
    ],
)
def test_the_queue_strategy_picks_the_agent(
    db: Database, settings: Settings, strategy: Strategy, expected: str
) -> None:
    desk = Desk(db, strategy)
    agents = {
        "expert": desk.agent(level=3, idle_since=NOW - timedelta(minutes=1), capacity=2),
        "idle_long": desk.agent(level=1, idle_since=NOW - timedelta(hours=1), capacity=2),
        "away": desk.agent(presence=Presence.AWAY, level=3),
    }
    with db.transaction() as session:
        expert = session.get(Agent, agents["expert"])
        assert expert is not None
        expert.load_chat = 1  # half occupied: least-occupied prefers the other
    contact = desk.contact()

    reservation_id = dispatch.dispatch_contact(db, settings, contact, NOW)

    (offer,) = offers(db, contact_id=contact)
    assert offer.id == reservation_id
    assert offer.agent_id == agents[expected]
    assert offer.expires_at.replace(tzinfo=UTC) == NOW + timedelta(seconds=120)
    reasons = {c["agent_id"]: c["reason"] for c in offer.explain["candidates"]}
    assert reasons[agents["away"]] == "not_available"
    assert offer.explain["strategy"] == strategy.value


def test_round_robin_offers_the_least_recently_offered(db: Database, settings: Settings) -> None:
    desk = Desk(db, Strategy.ROUND_ROBIN)
    first, second = desk.agent(capacity=5), desk.agent(capacity=5)
    picked = []
    for second_ in range(4):
        dispatch.dispatch_contact(db, settings, desk.contact(), NOW + timedelta(seconds=second_))
        picked.append(offers(db)[-1].agent_id)
    assert sorted(picked[:2]) == sorted([first, second])
    assert picked[2:] == picked[:2]


def test_longest_idle_spreads_offers_instead_of_piling_them(
    db: Database, settings: Settings
) -> None:
    """An agent holding an offer is no longer idle: the next contact goes to the other agent."""
    desk = Desk(db)
    longest = desk.agent(capacity=3, idle_since=NOW - timedelta(hours=1))
    other = desk.agent(capacity=3, idle_since=NOW - timedelta(minutes=5))
    contacts = [desk.contact(received=second_) for second_ in range(2)]
    for second_, contact in enumerate(contacts):
        dispatch.dispatch_contact(db, settings, contact, NOW + timedelta(seconds=second_))
    offered = [offers(db, contact_id=contact)[0].agent_id for contact in contacts]
    assert offered == [longest, other]


def test_accept_assigns_the_contact(db: Database, settings: Settings) -> None:
    desk = Desk(db)
    agent, other = desk.agent(), desk.agent(presence=Presence.AWAY)
    contact = desk.contact()
    reservation_id = dispatch.dispatch_contact(db, settings, contact, NOW)
    assert reservation_id is not None

    with pytest.raises(Conflict) as not_yours:
        reservations.accept(db, reservation_id, other, NOW)
    assert not_yours.value.details["reason"] == "not_yours"
    with pytest.raises(NotFound):
        reservations.accept(db, 10**9, agent, NOW)

    view = reservations.accept(db, reservation_id, agent, NOW + timedelta(seconds=5))

    assert view.status == ReservationStatus.ACCEPTED.value
    with db.session() as session:
        stored = session.get(Contact, contact)
        assert stored is not None
        assert stored.status == ContactStatus.ACCEPTED.value
        assert stored.assigned_agent_id == agent
        kinds = session.scalars(select(ContactEvent.kind).where(ContactEvent.contact_id == contact))
        assert "assigned" in list(kinds)
    assert agent_row(db, agent).load_email == 1  # the offer's slot is now the work's
    with pytest.raises(Conflict) as again:
        reservations.accept(db, reservation_id, agent, NOW)
    assert again.value.details["reason"] == "already_accepted"


def test_an_expired_offer_cannot_be_accepted(db: Database, settings: Settings) -> None:
    desk = Desk(db)
    agent = desk.agent()
    reservation_id = dispatch.dispatch_contact(db, settings, desk.contact(), NOW)
    assert reservation_id is not None
    with pytest.raises(Conflict) as late:
        reservations.accept(db, reservation_id, agent, NOW + timedelta(seconds=121))
    assert late.value.details["reason"] == "expired"


def test_reject_offers_the_contact_to_the_next_agent(db: Database, settings: Settings) -> None:
    desk = Desk(db)
    first = desk.agent(idle_since=NOW - timedelta(hours=1))
    second = desk.agent(idle_since=NOW - timedelta(minutes=1))
    contact = desk.contact()
    reservation_id = dispatch.dispatch_contact(db, settings, contact, NOW)
    assert reservation_id is not None

    reservations.reject(db, settings, reservation_id, first, NOW)

    made = offers(db, contact_id=contact)
    assert [(o.agent_id, o.status) for o in made] == [(first, "rejected"), (second, "offered")]
    assert agent_row(db, first).load_email == 0
    assert agent_row(db, first).idle_since is not None
    reasons = {c["agent_id"]: c["reason"] for c in made[1].explain["candidates"]}
    assert reasons[first] == "declined"


def test_expiry_moves_on_and_two_misses_set_the_agent_away(
    db: Database, settings: Settings
) -> None:
    desk = Desk(db)
    slow = desk.agent(idle_since=NOW - timedelta(hours=1))
    backup = desk.agent(idle_since=NOW - timedelta(minutes=1), capacity=5)
    first, second = desk.contact(received=0), desk.contact(received=1)
    dispatch.dispatch_contact(db, settings, first, NOW)
    later = NOW + timedelta(seconds=121)

    assert reservations.expire_due(db, settings, later) >= 1

    assert [(o.agent_id, o.status) for o in offers(db, contact_id=first)] == [
        (slow, "expired"),
        (backup, "offered"),
    ]
    assert agent_row(db, slow).missed_offers == 1
    # Its next offer: the first contact is no longer for it (it let that offer expire).
    dispatch.dispatch_agent(db, settings, slow, later)
    assert offers(db, contact_id=second)[0].agent_id == slow
    reservations.expire_due(db, settings, later + timedelta(seconds=121))
    missed = agent_row(db, slow)
    assert (missed.presence, missed.presence_reason, missed.load_email) == (
        "away",
        "missed_offers",
        0,
    )
    assert offers(db, contact_id=second)[-1].agent_id == backup


def test_offers_for_and_the_explain(db: Database, settings: Settings) -> None:
    desk = Desk(db)
    agent = desk.agent()
    contact = desk.contact(severity="S1", due_in=30)
    dispatch.dispatch_contact(db, settings, contact, NOW)

    (offer,) = offer_reads.offers_for(db, agent, NOW + timedelta(seconds=20))
    assert (offer.contact_id, offer.reference, offer.severity) == (contact, f"C-{contact}", "S1")
    assert offer.seconds_left == 100
    explained = offer_reads.assignment_explain(db, contact)
    assert explained.reservations[0].explain["agent_id"] == agent
    with pytest.raises(NotFound):
        offer_reads.offers_for(db, 10**9, NOW)


def test_non_human_queues_and_unrouted_contacts_are_not_offered(
    db: Database, settings: Settings
) -> None:
    desk = Desk(db)
    desk.agent()
    with db.transaction() as session:
        queue = session.get(Queue, desk.key)
        assert queue is not None
        queue.kind = "bot"
    assert dispatch.dispatch_contact(db, settings, desk.contact(), NOW) is None


@pytest.mark.postgres
def test_concurrent_dispatchers_never_double_offer(url: str, settings: Settings) -> None:
    if not url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers; the race is PostgreSQL's")
    main = Database(url)
    desk = Desk(main)
    agents = [desk.agent(capacity=2) for _ in range(4)]
    contacts = [desk.contact(received=i) for i in range(12)]
    start = threading.Barrier(6)
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        own = Database(url)
        try:
            start.wait(timeout=10)
            if index % 2:
                for contact in contacts:
                    dispatch.dispatch_contact(own, settings, contact, NOW)
            else:
                for agent in agents:
                    dispatch.dispatch_agent(own, settings, agent, NOW)
        except BaseException as exc:  # reported below: a thread's failure must fail the test
            failures.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures
    with main.session() as session:
        open_per_contact = session.execute(
            select(Reservation.contact_id, func.count())
            .where(Reservation.contact_id.in_(contacts), Reservation.status == "offered")
            .group_by(Reservation.contact_id)
        ).all()
        assert all(count == 1 for _, count in open_per_contact)
        assert len(open_per_contact) == 8  # 4 agents x 2 slots
        for agent in agents:
            row = session.get(Agent, agent)
            assert row is not None
            held = session.scalar(
                select(func.count()).where(
                    Reservation.agent_id == agent, Reservation.status == "offered"
                )
            )
            assert row.load_email == held <= row.capacity_email
    main.dispose()


def test_the_dispatch_job_expires_and_offers(db: Database, settings: Settings) -> None:
    desk = Desk(db)
    slow = desk.agent(idle_since=NOW - timedelta(hours=1))
    contact = desk.contact()
    dispatch.dispatch_contact(db, settings, contact, NOW)
    backup = desk.agent(idle_since=NOW)  # joins after the offer: the job must find it
    later = NOW + timedelta(seconds=121)

    assert reservations.expire_due(db, settings, later) >= 1  # other tests' offers may expire too
    assert [o.agent_id for o in offers(db, contact_id=contact)] == [slow, backup]
    waiting = desk.contact()
    assert dispatch.dispatch_free_agents(db, settings, later) >= 1
    assert offers(db, contact_id=waiting)[0].agent_id == slow


def test_intake_offers_a_new_waiting_contact_after_commit(db: Database, settings: Settings) -> None:
    from router.intake.request import IntakeResult
    from router.intake.service import IntakeService

    desk = Desk(db)
    agent = desk.agent()
    contact = desk.contact()
    service = IntakeService.__new__(IntakeService)
    service.db, service.settings = db, settings
    result = IntakeResult(
        contact_id=contact,
        reference=f"C-{contact}",
        created=True,
        status=ContactStatus.WAITING,
        access=None,
        queue=desk.key,
        priority=50,
        sla_policy=None,
        due_at=None,
        next_open_at=None,
    )
    service._offer(result)
    assert [o.agent_id for o in offers(db, contact_id=contact)] == [agent]
    service.db = None  # type: ignore[assignment]  # dispatching fails: the intake must not
    service._offer(result)
