"""The assignment core: the one serving order, eligibility, the queue strategies, next contact.

Pure and fast: no app, no database. The properties check ``order_key`` against a brute-force
comparator, ``choose_agent`` against a reference rank written here from the documented
strategies, and ``next_contact`` against "nothing earlier in the order was takeable".
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.core.assignment import (
    AgentState,
    Candidate,
    Choice,
    PassedOver,
    WaitingContact,
    choose_agent,
    ineligibility,
    next_contact,
    order_key,
)
from router.core.domain import Channel, Presence, Strategy

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
QUEUE = "billing"
FULL = {Channel.VOICE: 1, Channel.CHAT: 3, Channel.EMAIL: 8, Channel.PORTAL: 8}

# Sized to keep the file under ~2 s; the agent draws are the costly ones.
PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
AGENT_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=50)


def contact(
    id: int = 1,
    *,
    priority: int = 0,
    due: datetime | None = None,
    received: datetime = T0,
    queue: str = QUEUE,
    channel: Channel = Channel.CHAT,
    language: str | None = None,
) -> WaitingContact:
    """Return a waiting contact with sensible defaults."""
    return WaitingContact(id, queue, channel, priority, due, received, language)


def agent(
    id: int = 1,
    *,
    presence: Presence = Presence.AVAILABLE,
    skills: Mapping[str, int] | None = None,
    languages: frozenset[str] = frozenset(),
    capacity: Mapping[Channel, int] | None = None,
    load: Mapping[Channel, int] | None = None,
    idle_since: datetime | None = T0,
    last_offered_at: datetime | None = None,
) -> AgentState:
    """Return an available agent serving QUEUE at level 1 with the default capacities."""
    return AgentState(
        id,
        presence,
        {QUEUE: 1} if skills is None else skills,
        languages,
        FULL if capacity is None else capacity,
        {} if load is None else load,
        idle_since,
        last_offered_at,
    )


def ordered(*contacts: WaitingContact) -> list[int]:
    """Return the contacts' ids in the serving order."""
    return [c.id for c in sorted(contacts, key=order_key)]


# --- the one serving order -----------------------------------------------------------------


def test_higher_priority_first_even_when_later_due_and_received() -> None:
    s1 = contact(1, priority=3, due=T0 + 60 * MIN, received=T0 + 30 * MIN)
    s3 = contact(2, priority=1, due=T0 + MIN, received=T0)
    assert ordered(s3, s1) == [1, 2]


def test_equal_priority_earlier_due_first() -> None:
    late = contact(1, due=T0 + 10 * MIN, received=T0)
    soon = contact(2, due=T0 + 5 * MIN, received=T0 + MIN)
    assert ordered(late, soon) == [2, 1]


def test_no_sla_after_any_sla_however_far_and_however_early_received() -> None:
    none = contact(1, due=None, received=T0 - timedelta(days=30))
    far = contact(2, due=datetime(9999, 12, 31, tzinfo=UTC), received=T0)
    assert ordered(none, far) == [2, 1]


def test_no_sla_still_after_lower_due_only_within_priority() -> None:
    urgent_no_sla = contact(1, priority=2, due=None)
    low_with_sla = contact(2, priority=1, due=T0)
    assert ordered(low_with_sla, urgent_no_sla) == [1, 2]


def test_equal_due_earlier_received_first() -> None:
    later = contact(1, due=T0, received=T0 + MIN)
    earlier = contact(2, due=T0, received=T0)
    assert ordered(later, earlier) == [2, 1]
    assert ordered(contact(3, received=T0 + MIN), contact(4, received=T0)) == [4, 3]


def test_ties_broken_by_id() -> None:
    assert ordered(contact(9, due=T0), contact(3, due=T0), contact(5, due=T0)) == [3, 5, 9]


def test_same_instant_in_other_time_zones_is_a_tie() -> None:
    paris = T0.astimezone(ZoneInfo("Europe/Paris"))
    kolkata = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert order_key(contact(1, due=paris, received=kolkata)) == order_key(contact(1, due=T0))


def test_microseconds_count_far_from_the_epoch() -> None:
    # A float timestamp cannot tell these apart; the order must.
    far = datetime(9000, 1, 1, tzinfo=UTC)
    assert ordered(contact(1, due=far + timedelta(microseconds=1)), contact(2, due=far)) == [2, 1]
    assert ordered(contact(1, received=far + timedelta(microseconds=1)), contact(2, received=far))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="due_at"):
        order_key(contact(due=datetime(2026, 1, 5, 9)))
    with pytest.raises(ValueError, match="received_at"):
        order_key(contact(received=datetime(2026, 1, 5, 9)))


ZONES = [UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=5, minutes=30))]
FEW_TIMES = [T0 + k * MIN for k in range(4)]
times = st.one_of(
    st.sampled_from(FEW_TIMES),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(ZONES),
    ),
)
contacts = st.builds(
    WaitingContact,
    id=st.integers(1, 10_000),
    queue=st.sampled_from([QUEUE, "tech"]),
    channel=st.sampled_from(list(Channel)),
    priority=st.integers(0, 3),
    due_at=st.none() | times,
    received_at=times,
    language=st.sampled_from([None, "en", "fr"]),
)
contact_lists = st.lists(contacts, max_size=12, unique_by=lambda c: c.id)


def brute_compare(a: WaitingContact, b: WaitingContact) -> int:
    """Compare two contacts step by step, as SPEC 7 words the order (negative: a first)."""
    if a.priority != b.priority:
        return -1 if a.priority > b.priority else 1
    if (a.due_at is None) != (b.due_at is None):
        return -1 if b.due_at is None else 1
    if a.due_at is not None and b.due_at is not None:
        a_due, b_due = a.due_at.astimezone(UTC), b.due_at.astimezone(UTC)
        if a_due != b_due:
            return -1 if a_due < b_due else 1
    a_rec, b_rec = a.received_at.astimezone(UTC), b.received_at.astimezone(UTC)
    if a_rec != b_rec:
        return -1 if a_rec < b_rec else 1
    return (a.id > b.id) - (a.id < b.id)


@PROPERTY_SETTINGS
@given(contact_lists)
def test_order_key_agrees_with_brute_force_comparator(waiting: list[WaitingContact]) -> None:
    expected = sorted(waiting, key=functools.cmp_to_key(brute_compare))
    assert sorted(waiting, key=order_key) == expected


@PROPERTY_SETTINGS
@given(contact_lists, st.randoms(use_true_random=False))
def test_order_is_total_and_independent_of_input_order(
    waiting: list[WaitingContact], rng: random.Random
) -> None:
    keys = [order_key(c) for c in waiting]
    assert len(set(keys)) == len(keys)  # distinct ids: never a tie
    shuffled = list(waiting)
    rng.shuffle(shuffled)
    assert sorted(shuffled, key=order_key) == sorted(waiting, key=order_key)


# --- eligibility ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"presence": Presence.AWAY}, PassedOver.NOT_AVAILABLE),
        ({"presence": Presence.OFFLINE}, PassedOver.NOT_AVAILABLE),
        ({"skills": {"tech": 3}}, PassedOver.NO_SKILL),
        ({"skills": {}}, PassedOver.NO_SKILL),
        ({"languages": frozenset({"fr"})}, PassedOver.LANGUAGE),
        ({"load": {Channel.CHAT: 3}}, PassedOver.AT_CAPACITY),
        ({"capacity": {Channel.VOICE: 1}}, PassedOver.AT_CAPACITY),  # no chat capacity at all
        ({"capacity": {Channel.CHAT: 0}}, PassedOver.AT_CAPACITY),
    ],
)
def test_each_reason(change: dict[str, Any], reason: PassedOver) -> None:
    why = ineligibility(contact(language="de"), agent(**change))
    assert why is not None
    assert why[0] is reason
    assert why[1]  # a detail for the explain


def test_declined_reason_and_declined_as_any_iterable() -> None:
    why = ineligibility(contact(), agent(7), iter([3, 7]))
    assert why is not None and why[0] is PassedOver.DECLINED
    assert ineligibility(contact(), agent(7), [3]) is None


def test_eligible_agent() -> None:
    assert ineligibility(contact(language="fr"), agent(languages=frozenset({"en", "fr"}))) is None


def test_empty_language_list_takes_any_language() -> None:
    # Documented choice: an agent who lists no languages is not filtered by language.
    assert ineligibility(contact(language="ja"), agent(languages=frozenset())) is None


def test_contact_without_language_goes_to_any_agent() -> None:
    assert ineligibility(contact(language=None), agent(languages=frozenset({"fr"}))) is None


def test_capacity_is_per_channel() -> None:
    on_a_call = agent(load={Channel.VOICE: 1})
    voice = ineligibility(contact(channel=Channel.VOICE), on_a_call)
    assert voice is not None and voice[0] is PassedOver.AT_CAPACITY
    assert ineligibility(contact(channel=Channel.CHAT), on_a_call) is None


def test_free_and_occupancy() -> None:
    a = agent(capacity={Channel.CHAT: 3, Channel.EMAIL: 1}, load={Channel.CHAT: 1})
    assert (a.free(Channel.CHAT), a.free(Channel.EMAIL), a.free(Channel.VOICE)) == (2, 1, 0)
    assert a.occupancy() == pytest.approx(0.25)
    assert agent(capacity={}).occupancy() == 1.0  # no capacity: full, never the least occupied


# Documented precedence: the first failing check, in PassedOver's order, is the reason.
PRECEDENCE = [
    PassedOver.NOT_AVAILABLE,
    PassedOver.NO_SKILL,
    PassedOver.LANGUAGE,
    PassedOver.AT_CAPACITY,
    PassedOver.DECLINED,
]


@given(st.lists(st.booleans(), min_size=5, max_size=5))
def test_reason_precedence(fails: list[bool]) -> None:
    offender = agent(
        5,
        presence=Presence.AWAY if fails[0] else Presence.AVAILABLE,
        skills={"tech": 2} if fails[1] else {QUEUE: 2},
        languages=frozenset({"fr"}) if fails[2] else frozenset({"de"}),
        load={Channel.CHAT: 3} if fails[3] else {},
    )
    why = ineligibility(contact(language="de"), offender, [5] if fails[4] else [])
    first = next((reason for reason, fail in zip(PRECEDENCE, fails, strict=True) if fail), None)
    assert (why[0] if why else None) is first


def test_passed_over_values_are_stable() -> None:
    # Stored in explains and read by the API: the values are part of the interface.
    assert [r.value for r in PassedOver] == [
        "not_available",
        "no_skill",
        "language",
        "at_capacity",
        "declined",
        "lower_rank",
    ]


# --- choose_agent: the strategies ----------------------------------------------------------


def test_longest_idle_is_the_default_and_work_in_hand_goes_last() -> None:
    agents = [
        agent(1, idle_since=None),  # has work in hand
        agent(2, idle_since=T0 + 5 * MIN),
        agent(3, idle_since=T0 + MIN),
    ]
    choice = choose_agent(contact(), agents)
    assert choice.strategy is Strategy.LONGEST_IDLE
    assert choice.agent_id == 3
    assert [c.agent_id for c in choice.candidates] == [3, 2, 1]
    assert choose_agent(contact(), [agents[0]]).agent_id == 1  # still eligible when alone


def test_longest_idle_ties_by_lower_id() -> None:
    assert choose_agent(contact(), [agent(8), agent(4), agent(6)]).agent_id == 4
    busy = [agent(8, idle_since=None), agent(4, idle_since=None)]
    assert choose_agent(contact(), busy).agent_id == 4


def test_least_occupied() -> None:
    agents = [
        agent(1, load={Channel.EMAIL: 8}),  # 8/20
        agent(2, load={Channel.CHAT: 1}),  # 1/20
        agent(3, capacity={Channel.CHAT: 2}, load={Channel.CHAT: 1}),  # 1/2
    ]
    assert choose_agent(contact(), agents, Strategy.LEAST_OCCUPIED).agent_id == 2


def test_round_robin_never_offered_first_then_least_recently_offered() -> None:
    agents = [
        agent(1, last_offered_at=T0 + MIN),
        agent(2, last_offered_at=T0),
        agent(3, last_offered_at=None),
    ]
    choice = choose_agent(contact(), agents, Strategy.ROUND_ROBIN)
    assert [c.agent_id for c in choice.candidates] == [3, 2, 1]
    assert choose_agent(contact(), agents[:2], Strategy.ROUND_ROBIN).agent_id == 2


def test_highest_skill_then_longest_idle() -> None:
    agents = [
        agent(1, skills={QUEUE: 2}, idle_since=T0),
        agent(2, skills={QUEUE: 3}, idle_since=T0 + 9 * MIN),
        agent(3, skills={QUEUE: 3}, idle_since=T0 + MIN),
        agent(4, skills={QUEUE: 3}, idle_since=None),
    ]
    choice = choose_agent(contact(), agents, Strategy.HIGHEST_SKILL)
    assert [c.agent_id for c in choice.candidates] == [3, 2, 4, 1]


def test_declined_best_agent_is_passed_over() -> None:
    agents = [agent(1, idle_since=T0), agent(2, idle_since=T0 + MIN)]
    choice = choose_agent(contact(), agents, declined=[1])
    assert choice.agent_id == 2
    assert choice.candidates[1] == Candidate(
        1, False, PassedOver.DECLINED, choice.candidates[1].detail
    )


def test_nobody_eligible_lists_every_reason() -> None:
    agents = [
        agent(4, presence=Presence.OFFLINE),
        agent(2, skills={"tech": 1}),
        agent(3, languages=frozenset({"fr"})),
        agent(1, load={Channel.CHAT: 3}),
        agent(5),
    ]
    choice = choose_agent(contact(language="de"), agents, declined=[5])
    assert choice.agent_id is None
    assert [(c.agent_id, c.chosen, c.reason) for c in choice.candidates] == [
        (1, False, PassedOver.AT_CAPACITY),
        (2, False, PassedOver.NO_SKILL),
        (3, False, PassedOver.LANGUAGE),
        (4, False, PassedOver.NOT_AVAILABLE),
        (5, False, PassedOver.DECLINED),
    ]


def test_no_agents_at_all() -> None:
    choice = choose_agent(contact(3), [])
    assert choice == Choice(3, None, Strategy.LONGEST_IDLE, ())
    assert choice.explain() == {
        "contact_id": 3,
        "agent_id": None,
        "strategy": "longest_idle",
        "candidates": [],
    }


def test_explain_is_json_and_names_every_candidate() -> None:
    agents = [agent(1), agent(2), agent(3, presence=Presence.AWAY)]
    explain = choose_agent(contact(9), agents, Strategy.ROUND_ROBIN).explain()
    assert json.loads(json.dumps(explain)) == explain
    assert explain == {
        "contact_id": 9,
        "agent_id": 1,
        "strategy": "round_robin",
        "candidates": [
            {"agent_id": 1, "chosen": True, "reason": None, "detail": None},
            {
                "agent_id": 2,
                "chosen": False,
                "reason": "lower_rank",
                "detail": "round_robin preferred 1",
            },
            {"agent_id": 3, "chosen": False, "reason": "not_available", "detail": "away"},
        ],
    }


def test_naive_agent_times_are_refused() -> None:
    with pytest.raises(ValueError, match="idle_since"):
        choose_agent(contact(), [agent(1, idle_since=datetime(2026, 1, 5))])
    with pytest.raises(ValueError, match="last_offered_at"):
        choose_agent(
            contact(), [agent(1, last_offered_at=datetime(2026, 1, 5))], Strategy.ROUND_ROBIN
        )


def reference_rank(a: AgentState, c: WaitingContact, strategy: Strategy) -> tuple[Any, ...]:
    """Rank as the strategies are documented, on datetimes and exact fractions (smaller first)."""
    idle = (a.idle_since is None, a.idle_since.astimezone(UTC) if a.idle_since else T0)
    if strategy is Strategy.LEAST_OCCUPIED:
        total = sum(a.capacity.values())
        return (Fraction(sum(a.load.values()), total) if total else Fraction(1), a.id)
    if strategy is Strategy.ROUND_ROBIN:
        offered = a.last_offered_at
        return (offered is not None, offered.astimezone(UTC) if offered else T0, a.id)
    if strategy is Strategy.HIGHEST_SKILL:
        return (-a.skills.get(c.queue, 0), *idle, a.id)
    return (*idle, a.id)


@st.composite
def agent_states(draw: st.DrawFn, id: int) -> AgentState:
    """Draw an agent: presence, skills, languages, capacity and load, idle and offer times."""
    capacity = draw(st.dictionaries(st.sampled_from(list(Channel)), st.integers(0, 3)))
    load = {ch: draw(st.integers(0, cap)) for ch, cap in capacity.items()}
    return AgentState(
        id=id,
        presence=draw(st.sampled_from(list(Presence))),
        skills=draw(st.dictionaries(st.sampled_from([QUEUE, "tech"]), st.integers(1, 3))),
        languages=draw(st.frozensets(st.sampled_from(["en", "fr", "de"]))),
        capacity=capacity,
        load=load,
        idle_since=draw(st.none() | times),
        last_offered_at=draw(st.none() | times),
    )


@st.composite
def agent_lists(draw: st.DrawFn) -> list[AgentState]:
    """Draw up to 10 agents with distinct ids, in no particular order."""
    ids = draw(st.lists(st.integers(1, 50), max_size=10, unique=True))
    return [draw(agent_states(i)) for i in ids]


@AGENT_SETTINGS
@given(
    contacts,
    agent_lists(),
    st.sampled_from(list(Strategy)),
    st.lists(st.integers(1, 50), max_size=5),
    st.randoms(use_true_random=False),
)
def test_choose_agent_properties(
    c: WaitingContact,
    agents: list[AgentState],
    strategy: Strategy,
    declined: list[int],
    rng: random.Random,
) -> None:
    choice = choose_agent(c, agents, strategy, declined)
    by_id = {a.id: a for a in agents}
    why = {a.id: ineligibility(c, a, declined) for a in agents}
    eligible = [a for a in agents if why[a.id] is None]

    # Every agent appears exactly once; the chosen one first, then the rest.
    assert sorted(cand.agent_id for cand in choice.candidates) == sorted(by_id)
    assert (choice.contact_id, choice.strategy) == (c.id, strategy)
    assert [cand.agent_id for cand in choice.candidates if cand.chosen] == (
        [choice.agent_id] if choice.agent_id is not None else []
    )
    if not eligible:
        assert choice.agent_id is None
    else:
        assert choice.candidates[0].agent_id == choice.agent_id
        assert choice.candidates[0].reason is None
        assert why[choice.agent_id] is None  # the chosen agent is eligible
        best = min(eligible, key=lambda a: reference_rank(a, c, strategy))
        assert choice.agent_id == best.id
    for cand in choice.candidates:
        if cand.chosen:
            continue
        reason = why[cand.agent_id]
        if reason is None:
            assert cand.reason is PassedOver.LOWER_RANK  # only eligible agents are outranked
        else:
            assert (cand.reason, cand.detail) == reason
    # Lower-ranked candidates are listed best first.
    outranked = [by_id[x.agent_id] for x in choice.candidates if x.reason is PassedOver.LOWER_RANK]
    ranks = [reference_rank(a, c, strategy) for a in outranked]
    assert ranks == sorted(ranks)
    assert json.loads(json.dumps(choice.explain())) == choice.explain()
    # The decision does not depend on the order the agents were read in.
    shuffled = list(agents)
    rng.shuffle(shuffled)
    assert choose_agent(c, shuffled, strategy, declined) == choice


# --- next_contact --------------------------------------------------------------------------


def test_next_contact_takes_the_head_of_the_order() -> None:
    waiting = [
        contact(1, priority=1, due=T0),
        contact(2, priority=3, due=None),
        contact(3, priority=3, due=T0 + 9 * MIN),
    ]
    assert next_contact(agent(), waiting) == waiting[2]


def test_next_contact_skips_declined_only_for_the_agent_who_declined() -> None:
    waiting = [contact(1, due=T0), contact(2, due=T0 + MIN)]
    assert next_contact(agent(7), waiting, {1: [7]}) == waiting[1]
    assert next_contact(agent(8), waiting, {1: [7]}) == waiting[0]
    assert next_contact(agent(7), waiting, {1: [7], 2: iter([7])}) is None


def test_next_contact_respects_capacity_per_channel() -> None:
    waiting = [
        contact(1, due=T0, channel=Channel.VOICE),
        contact(2, due=T0 + MIN, channel=Channel.CHAT),
    ]
    on_a_call = agent(load={Channel.VOICE: 1})
    assert next_contact(on_a_call, waiting) == waiting[1]
    full = agent(load={Channel.VOICE: 1, Channel.CHAT: 3})
    assert next_contact(full, waiting) is None


def test_next_contact_skills_languages_and_presence() -> None:
    waiting = [
        contact(1, due=T0, queue="tech"),
        contact(2, due=T0 + MIN, language="fr"),
        contact(3, due=T0 + 2 * MIN, language="en"),
    ]
    assert next_contact(agent(languages=frozenset({"en"})), waiting) == waiting[2]
    assert next_contact(agent(presence=Presence.AWAY), waiting) is None
    assert next_contact(agent(), []) is None


@AGENT_SETTINGS
@given(
    agent_states(7),
    contact_lists,
    st.dictionaries(st.integers(1, 10_000), st.lists(st.sampled_from([7, 8]), max_size=2)),
)
def test_next_contact_is_the_first_takeable_in_order(
    a: AgentState, waiting: list[WaitingContact], declined: dict[int, list[int]]
) -> None:
    # Make declines hit the drawn contacts often.
    declined |= {c.id: [7] for c in waiting[::3]}
    got = next_contact(a, waiting, declined)
    in_order = sorted(waiting, key=order_key)
    takeable = [c for c in in_order if ineligibility(c, a, declined.get(c.id, ())) is None]
    if got is None:
        assert takeable == []
    else:
        assert got in waiting
        assert got.id not in {c.id for c in waiting[::3]}  # declined by 7: skipped
        assert a.free(got.channel) > 0
        before = in_order[: in_order.index(got)]
        assert all(ineligibility(c, a, declined.get(c.id, ())) for c in before)
        assert takeable[0] == got
