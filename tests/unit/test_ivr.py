"""The IVR state machine, its catalog and its TwiML (pure: no app, no database)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from lxml import etree

from ivr import machine
from ivr.catalog import ENGLISH, ENGLISH_ONLY, ENGLISH_VOICE, MESSAGES, Catalog, placeholders
from ivr.machine import (
    CallState,
    Enqueue,
    Gather,
    Hangup,
    IntakeOutcome,
    Limits,
    Pause,
    PinInput,
    PinOutcome,
    Play,
    Say,
    Stage,
)
from ivr.twiml import Urls, Voice, render
from router.core.domain import Category, Severity, Topic

LIMITS = Limits(pin_tries=3, prompt_repeats=2)


def keys(turn: machine.Turn) -> list[str]:
    """Return the prompt keys of a turn, Gather prompts included, in order."""
    found: list[str] = []
    for action in turn.actions:
        if isinstance(action, Say):
            found.append(action.key)
        elif isinstance(action, Gather):
            found.extend(prompt.key for prompt in action.prompts)
    return found


def gather(turn: machine.Turn) -> Gather:
    return next(a for a in turn.actions if isinstance(a, Gather))


@pytest.mark.parametrize(
    ("digits", "can_switch", "expected"),
    [
        ("", True, PinInput.EMPTY),
        (None, True, PinInput.EMPTY),
        ("  ", False, PinInput.EMPTY),
        ("*", True, PinInput.SWITCH_LANGUAGE),
        ("*", False, PinInput.MALFORMED),
        ("482913", False, PinInput.CANDIDATE),
        ("48291377", False, PinInput.CANDIDATE),
        ("48291", False, PinInput.MALFORMED),
        ("482913771", False, PinInput.MALFORMED),
        ("48a913", False, PinInput.MALFORMED),
        ("४८२९१३", False, PinInput.MALFORMED),  # non-ASCII digits are not keypad digits
    ],
)
def test_pin_input_is_classified_before_any_lookup(
    digits: str | None, can_switch: bool, expected: PinInput
) -> None:
    assert machine.classify_pin(digits, can_switch=can_switch) is expected


def test_a_call_starts_with_the_greeting_and_the_pin_prompt() -> None:
    turn = machine.start("en-GB", locked=False, offer_english=False)
    assert turn.state.stage is Stage.PIN and turn.state.voice == "en-GB"
    assert keys(turn) == ["greeting", "pin_prompt"]
    prompt = gather(turn)
    assert (prompt.stage, prompt.max_digits, prompt.finish_on_pound) == (Stage.PIN, 8, True)


def test_a_french_call_offers_english_in_english() -> None:
    turn = machine.start("fr-FR", locked=False, offer_english=True)
    offer = gather(turn).prompts[-1]
    assert offer.key == "offer_english" and offer.voice == ENGLISH_VOICE
    switched = machine.on_pin(turn.state, PinOutcome.SWITCH_LANGUAGE, LIMITS)
    assert switched.state.voice == ENGLISH_VOICE and not switched.state.offer_english
    assert switched.state.pin_failures == 0 and keys(switched) == ["pin_prompt"]


def test_a_locked_number_hears_how_to_reach_us_and_the_call_ends() -> None:
    turn = machine.start("en-US", locked=True, offer_english=False)
    assert turn.state.stage is Stage.ENDED
    assert keys(turn) == ["locked", "reach_us"] and isinstance(turn.actions[-1], Hangup)


def test_three_wrong_pins_end_the_call() -> None:
    state = machine.start("en-US", locked=False, offer_english=False).state
    first = machine.on_pin(state, PinOutcome.WRONG, LIMITS)
    assert first.state.stage is Stage.PIN and first.state.pin_failures == 1
    assert keys(first) == ["pin_not_recognised", "pin_prompt_again"]
    second = machine.on_pin(first.state, PinOutcome.WRONG, LIMITS)
    third = machine.on_pin(second.state, PinOutcome.WRONG, LIMITS)
    assert third.state.stage is Stage.ENDED and third.state.pin_failures == 3
    assert keys(third) == ["pin_not_recognised", "pin_failed", "reach_us"]


def test_pin_tries_are_configurable() -> None:
    state = machine.start("en-US", locked=False, offer_english=False).state
    turn = machine.on_pin(state, PinOutcome.WRONG, Limits(pin_tries=1, prompt_repeats=2))
    assert turn.state.stage is Stage.ENDED


def test_pin_silence_repeats_twice_then_ends_without_counting_a_failure() -> None:
    state = machine.start("en-US", locked=False, offer_english=False).state
    for _ in range(2):
        turn = machine.on_pin(state, PinOutcome.EMPTY, LIMITS)
        assert turn.state.stage is Stage.PIN and keys(turn) == ["pin_no_input", "pin_prompt"]
        state = turn.state
    last = machine.on_pin(state, PinOutcome.EMPTY, LIMITS)
    assert last.state.stage is Stage.ENDED and last.state.pin_failures == 0
    assert keys(last) == ["pin_no_input", "reach_us"]


def test_a_held_pin_check_pauses_at_twilio_and_asks_again_without_costing_a_try() -> None:
    state = machine.start("en-US", locked=False, offer_english=False).state
    state = machine.on_pin(state, PinOutcome.WRONG, LIMITS).state
    state = machine.on_pin(state, PinOutcome.EMPTY, LIMITS).state
    turn = machine.on_pin(state, PinOutcome.HELD, LIMITS, hold_seconds=7)
    assert turn.state.stage is Stage.PIN and turn.state.pin_failures == 1
    assert (turn.state.misses, turn.state.holds) == (1, 1)  # the silence before still counts
    assert keys(turn) == ["pin_hold", "pin_prompt_again"]
    assert Pause(7) in turn.actions and gather(turn).stage is Stage.PIN
    # Holds are counted over the call: a check made in between does not clear them.
    assert machine.on_pin(turn.state, PinOutcome.WRONG, LIMITS).state.holds == 1
    limits = replace(LIMITS, pin_holds=2)
    for _ in range(2):
        state = machine.on_pin(state, PinOutcome.HELD, limits).state
    last = machine.on_pin(state, PinOutcome.HELD, limits)
    assert last.state.stage is Stage.ENDED and last.state.pin_failures == 1
    assert keys(last) == ["pin_busy", "reach_us"]
    assert not any(isinstance(action, Enqueue) for action in last.actions)


@pytest.mark.parametrize(
    "between", [PinOutcome.EMPTY, PinOutcome.WRONG, PinOutcome.SWITCH_LANGUAGE]
)
def test_holds_alternating_with_other_answers_still_end_the_call(between: PinOutcome) -> None:
    # Issue 12: HELD cleared the misses and every other answer cleared the holds, so a held
    # caller who stayed silent between holds stayed at the PIN prompt for ever.
    limits = replace(LIMITS, pin_tries=100)
    state = machine.start("en-US", locked=False, offer_english=True).state
    for step in range(2 * limits.pin_holds + 2):
        outcome = PinOutcome.HELD if step % 2 == 0 else between
        turn = machine.on_pin(state, outcome, limits, hold_seconds=20)
        state = turn.state
        if state.stage is Stage.ENDED:
            break
    assert state.stage is Stage.ENDED
    assert state.holds <= limits.pin_holds + 1
    if between is PinOutcome.EMPTY:
        # Silence between holds is still a miss: the call ends after prompt_repeats of it.
        assert keys(turn) == ["pin_no_input", "reach_us"]
        assert state.misses == limits.prompt_repeats + 1
    else:
        assert keys(turn) == ["pin_busy", "reach_us"]


def test_a_verified_pin_reads_the_severity_definitions() -> None:
    state = machine.start("en-US", locked=False, offer_english=False).state
    turn = machine.on_pin(state, PinOutcome.VERIFIED, LIMITS)
    assert turn.state.stage is Stage.SEVERITY
    menu = gather(turn)
    assert menu.max_digits == 1
    definitions = [p.params["definition"] for p in menu.prompts if p.key == "severity_option"]
    assert definitions == [
        machine.Ref("severity.S1"),
        machine.Ref("severity.S2"),
        machine.Ref("severity.S3"),
    ]


def test_not_entitled_and_locked_outcomes_end_the_call() -> None:
    state = machine.start("en-US", locked=False, offer_english=False).state
    assert keys(machine.on_pin(state, PinOutcome.NOT_ENTITLED, LIMITS)) == [
        "not_entitled",
        "reach_us",
    ]
    assert keys(machine.on_pin(state, PinOutcome.LOCKED, LIMITS)) == ["locked", "reach_us"]


def severity_state() -> CallState:
    return CallState(stage=Stage.SEVERITY, voice="en-US")


@pytest.mark.parametrize(
    ("digit", "severity"), [("1", Severity.S1), ("2", Severity.S2), ("3", Severity.S3)]
)
def test_severity_choice(digit: str, severity: Severity) -> None:
    turn = machine.on_menu(severity_state(), digit, LIMITS)
    assert turn.state.stage is Stage.TOPIC and turn.state.severity is severity
    assert not turn.state.severity_defaulted and gather(turn).stage is Stage.TOPIC


def test_severity_no_input_repeats_twice_then_defaults_to_s3() -> None:
    state = severity_state()
    first = machine.on_menu(state, "", LIMITS)
    assert first.state.stage is Stage.SEVERITY and keys(first)[0] == "menu_no_input"
    second = machine.on_menu(first.state, "7", LIMITS)
    assert second.state.stage is Stage.SEVERITY and keys(second)[0] == "menu_invalid"
    third = machine.on_menu(second.state, None, LIMITS)
    assert third.state.stage is Stage.TOPIC
    assert third.state.severity is Severity.S3 and third.state.severity_defaulted
    assert keys(third)[:2] == ["menu_no_input", "severity_default"]
    assert gather(third).stage is Stage.TOPIC


def test_prompt_repeats_are_configurable() -> None:
    turn = machine.on_menu(severity_state(), "", Limits(pin_tries=3, prompt_repeats=0))
    assert turn.state.severity is Severity.S3 and turn.state.severity_defaulted


@pytest.mark.parametrize(
    ("digit", "category", "topic"),
    [
        ("1", Category.BREAK_FIX, Topic.WINDOWS),
        ("6", Category.BREAK_FIX, Topic.DIRECTORY),
        ("7", Category.LICENSING, None),
        ("8", Category.MIGRATION, None),
        ("9", Category.ESCALATION, None),
        ("0", Category.BREAK_FIX, Topic.OTHER),
    ],
)
def test_topic_choice_asks_for_intake(digit: str, category: Category, topic: Topic | None) -> None:
    state = replace(severity_state(), stage=Stage.TOPIC, severity=Severity.S2)
    turn = machine.on_menu(state, digit, LIMITS)
    assert turn.needs_intake and turn.actions == ()
    assert (turn.state.category, turn.state.topic, turn.state.topic_defaulted) == (
        category,
        topic,
        False,
    )


def test_topic_silence_defaults_to_other() -> None:
    state = replace(severity_state(), stage=Stage.TOPIC, severity=Severity.S1)
    for _ in range(2):
        state = machine.on_menu(state, "#", LIMITS).state
        assert state.stage is Stage.TOPIC
    turn = machine.on_menu(state, "", LIMITS)
    assert turn.needs_intake and turn.state.topic is Topic.OTHER and turn.state.topic_defaulted
    assert turn.state.category is Category.BREAK_FIX
    assert keys(turn) == ["menu_no_input", "topic_default"]


def test_menu_is_refused_at_other_stages() -> None:
    with pytest.raises(ValueError):
        machine.on_menu(CallState(stage=Stage.PIN, voice="en-US"), "1", LIMITS)


def test_intake_outcomes() -> None:
    state = CallState(stage=Stage.ROUTING, voice="en-US", severity=Severity.S1)
    queued = machine.on_intake(state, IntakeOutcome.QUEUED, queue="cse-mac", reference="C-1042")
    assert queued.state.stage is Stage.QUEUED
    assert queued.actions[0] == Say("connecting", {"reference": "C 1 0 4 2"})
    assert queued.actions[-1] == Enqueue("cse-mac")
    failed = machine.on_intake(state, IntakeOutcome.FAILED, queue="fallback", reference="C-1")
    assert failed.actions[-1] == Enqueue("fallback")
    denied = machine.on_intake(state, IntakeOutcome.NOT_ENTITLED, queue="x", reference="C-1")
    assert denied.state.stage is Stage.ENDED


def test_waiting_announces_position_and_expected_wait() -> None:
    music = "https://example.com/hold.mp3"
    assert machine.waiting(3, 300, music) == (
        Say("queue_position", {"position": 3}),
        Say("queue_wait_minutes", {"minutes": 5}),
        Play(music),
    )
    assert [a.key for a in machine.waiting(1, 20, music) if isinstance(a, Say)] == [
        "queue_position",
        "queue_wait_short",
    ]
    assert [a.key for a in machine.waiting(None, 75, music) if isinstance(a, Say)] == [
        "queue_wait_one_minute"
    ]
    assert machine.waiting(None, None, music) == (Play(music),)


def test_queue_results() -> None:
    assert machine.on_queue_left("bridged", retried=False)[-1] == Hangup()
    assert machine.on_queue_left("hangup", retried=False) == (Hangup(),)
    assert machine.on_queue_left("queue-full", retried=False)[-1] == Enqueue("fallback")
    assert machine.on_queue_left("error", retried=True)[-1] == Hangup()


def test_state_round_trips_through_its_stored_form() -> None:
    state = CallState(
        stage=Stage.QUEUED,
        voice="pt-BR",
        offer_english=True,
        pin_failures=2,
        misses=1,
        severity=Severity.S2,
        severity_defaulted=True,
        category=Category.LICENSING,
        topic=None,
        topic_defaulted=False,
    )
    assert CallState.from_data(state.stage.value, state.to_data()) == state
    assert "pin" not in str(state.to_data()).lower().replace("pin_failures", "")


def test_every_language_has_every_prompt_with_the_same_parameters() -> None:
    english = MESSAGES[ENGLISH]
    for language, texts in MESSAGES.items():
        expected = set(english) - (ENGLISH_ONLY if language != ENGLISH else set())
        assert set(texts) == expected, language
        for key, text in texts.items():
            assert placeholders(text) == placeholders(english[key]), (language, key)


def test_voice_languages() -> None:
    catalog = Catalog()
    assert catalog.voice_language("en-IN") == "en-IN"
    assert catalog.voice_language("fr-FR") == "fr-FR"
    assert catalog.voice_language("de-DE") == ENGLISH_VOICE  # no German catalog: English
    assert catalog.text_language("en-AU") == ENGLISH
    assert catalog.is_english("en-GB") and not catalog.is_english("pt-BR")


def every_turn() -> list[tuple[machine.Action, ...]]:
    """Return the actions of every kind of turn the flow produces."""
    start = machine.start("en-US", locked=False, offer_english=True)
    verified = machine.on_pin(start.state, PinOutcome.VERIFIED, LIMITS)
    topic = machine.on_menu(verified.state, "", Limits(pin_tries=3, prompt_repeats=0))
    routed = machine.on_menu(topic.state, "", Limits(pin_tries=3, prompt_repeats=0))
    turns = [
        start,
        machine.start("en-US", locked=True, offer_english=False),
        verified,
        topic,
        routed,
        *(machine.on_pin(start.state, outcome, LIMITS) for outcome in PinOutcome),
        machine.on_pin(replace(start.state, holds=LIMITS.pin_holds), PinOutcome.HELD, LIMITS),
        *(
            machine.on_intake(routed.state, outcome, queue="cse-general", reference="C-7")
            for outcome in IntakeOutcome
        ),
    ]
    actions = [turn.actions for turn in turns]
    actions += [
        machine.on_queue_left(r, retried=b)
        for r in ("bridged", "hangup", "error")
        for b in (False, True)
    ]
    actions += [
        machine.waiting(2, 400, "https://example.com/a.mp3"),
        machine.fallback(),
        machine.failure(),
    ]
    return actions


@pytest.mark.parametrize("voice", ["en-US", "en-IN", "fr-FR", "pt-BR"])
def test_every_turn_renders_valid_twiml_in_every_language(
    voice: str, twiml_schema: etree.XMLSchema
) -> None:
    catalog = Catalog()
    spoken = Voice(catalog, voice, {"email": "support@example.com"})
    for actions in every_turn():
        twiml = render(actions, voice=spoken, urls=Urls(), step=4)
        twiml_schema.assertValid(etree.fromstring(twiml.encode()))
        document = etree.fromstring(twiml.encode())
        for say in document.iter("Say"):
            assert say.get("language") in (voice, ENGLISH_VOICE)
            assert "{" not in (say.text or "")  # every parameter was filled


def test_gathers_post_to_their_step_and_redirect_on_silence() -> None:
    turn = machine.start("en-US", locked=False, offer_english=False)
    twiml = render(
        turn.actions,
        voice=Voice(Catalog(), "en-US", {"email": "x@y"}),
        urls=Urls("/p/voice/"),
        step=5,
    )
    document = etree.fromstring(twiml.encode())
    gather_verb = document.find("Gather")
    assert gather_verb is not None
    assert gather_verb.get("action") == "/p/voice/pin?step=5"
    assert gather_verb.get("actionOnEmptyResult") == "true"
    assert gather_verb.get("finishOnKey") == "#" and gather_verb.get("numDigits") == "8"
    redirect = document.find("Redirect")
    assert redirect is not None and redirect.text == "/p/voice/pin?step=5"


def test_english_severity_wording_comes_from_the_policy(policy: object) -> None:
    from config.policy import Policy

    assert isinstance(policy, Policy)
    catalog = Catalog(
        english_overrides={f"severity.{s}": p.definition for s, p in policy.severities.items()}
    )
    spoken = Voice(catalog, "en-GB", {"email": "x@y"})
    twiml = render((machine.severity_menu(),), voice=spoken, urls=Urls(), step=2)
    for severity, entry in policy.severities.items():
        assert entry.definition in twiml, severity
