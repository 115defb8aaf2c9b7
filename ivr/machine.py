"""The IVR call flow as a pure state machine: (state, input) -> next state + what the caller hears.

No I/O and no clock: the voice service looks things up (lockouts, the PIN, intake) and feeds the
outcome in; what comes back is a ``Turn`` (the next state and a list of actions, ``ivr.actions``)
that ``ivr.twiml`` renders. The menus are in ``ivr.menus``; prompts are catalog keys
(``ivr.catalog``), never inline text.

Flow: greeting -> PIN (3 tries a call; silence repeats the prompt, then the call ends; a check
held back by the global PIN rate limit pauses at Twilio and asks again, costing no try) ->
severity menu (reads the S1-S3 definitions) -> topic/category menu -> intake -> queue. A menu
with no or invalid input is repeated ``prompt_repeats`` times, then takes its safe default
(severity S3, topic "other").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ivr.actions import (
    GATHER_STAGES,
    Action,
    Enqueue,
    Gather,
    Hangup,
    Pause,
    Play,
    Ref,
    Say,
    Stage,
)
from ivr.catalog import ENGLISH_VOICE
from ivr.menus import (
    DEFAULT_SEVERITY,
    DEFAULT_TOPIC,
    SEVERITY_OPTIONS,
    TOPIC_MENU,
    TOPICS_BY_DIGIT,
    MenuOption,
    severity_menu,
    topic_menu,
)
from router.core.domain import Category, Severity, Topic
from router.core.pins import PIN_MAX_LENGTH, PIN_MIN_LENGTH

# The actions and menus are re-exported: callers drive a call through this module alone.
__all__ = [
    "DEFAULT_SEVERITY",
    "DEFAULT_TOPIC",
    "FALLBACK_QUEUE",
    "GATHER_STAGES",
    "QUEUE_RESULT_BRIDGED",
    "QUEUE_RESULT_FAILURES",
    "QUEUE_RESULT_HANGUP",
    "SEVERITY_OPTIONS",
    "TOPIC_MENU",
    "Action",
    "CallState",
    "Enqueue",
    "Gather",
    "Hangup",
    "IntakeOutcome",
    "Limits",
    "MenuOption",
    "Pause",
    "PinInput",
    "PinOutcome",
    "Play",
    "Ref",
    "Say",
    "Stage",
    "Turn",
    "classify_pin",
    "failure",
    "fallback",
    "on_intake",
    "on_menu",
    "on_pin",
    "on_queue_left",
    "severity_menu",
    "spell_reference",
    "start",
    "topic_menu",
    "waiting",
]


class PinInput(StrEnum):
    """What the caller keyed at the PIN prompt, before any lookup."""

    EMPTY = "empty"  # silence (or only '#')
    SWITCH_LANGUAGE = "switch_language"  # '*' where the greeting offered English
    CANDIDATE = "candidate"  # 6-8 digits: worth a lookup
    MALFORMED = "malformed"  # anything else: a wrong PIN without a lookup


class PinOutcome(StrEnum):
    """The result of the PIN step, as the service established it."""

    VERIFIED = "verified"  # a PIN of an account entitled to phone support now
    NOT_ENTITLED = "not_entitled"  # a valid PIN, but phone support is not in the account's tier
    WRONG = "wrong"
    LOCKED = "locked"  # the calling number is locked out
    HELD = "held"  # not checked: the global PIN-check rate is used up for now
    EMPTY = "empty"
    SWITCH_LANGUAGE = "switch_language"


class IntakeOutcome(StrEnum):
    """What intake did with the caller's contact."""

    QUEUED = "queued"
    NOT_ENTITLED = "not_entitled"  # the tier changed under the call (e.g. a trial ended)
    FAILED = "failed"  # not routable: the caller still reaches a human through the fallback


QUEUE_RESULT_BRIDGED = "bridged"
QUEUE_RESULT_HANGUP = "hangup"
QUEUE_RESULT_FAILURES = frozenset({"queue-full", "error", "system-error"})
FALLBACK_QUEUE = "fallback"


@dataclass(frozen=True)
class Limits:
    """The flow's configurable limits."""

    pin_tries: int = 3
    prompt_repeats: int = 2
    # Holds in one call before it ends (each one pauses at Twilio: a held caller, or a
    # guesser, cannot keep a toll-free call open for ever). Counted per call, not in a row:
    # a hold answered with silence, a wrong PIN or a language switch must not start again.
    pin_holds: int = 10


@dataclass(frozen=True)
class CallState:
    """Everything the flow remembers between two webhooks (never a PIN or raw digits)."""

    stage: Stage
    voice: str  # the <Say> language in use
    offer_english: bool = False
    pin_failures: int = 0
    misses: int = 0  # no or invalid input at the current prompt, in a row
    holds: int = 0  # PIN checks held back by the global rate limit in this call
    severity: Severity | None = None
    severity_defaulted: bool = False
    category: Category | None = None
    topic: Topic | None = None
    topic_defaulted: bool = False

    def to_data(self) -> dict[str, Any]:
        """Return the state as JSON-friendly data (the stage is stored in its own column)."""
        return {
            "voice": self.voice,
            "offer_english": self.offer_english,
            "pin_failures": self.pin_failures,
            "misses": self.misses,
            "holds": self.holds,
            "severity": self.severity.value if self.severity else None,
            "severity_defaulted": self.severity_defaulted,
            "category": self.category.value if self.category else None,
            "topic": self.topic.value if self.topic else None,
            "topic_defaulted": self.topic_defaulted,
        }

    @classmethod
    def from_data(cls, stage: str, data: Mapping[str, Any]) -> CallState:
        """Rebuild a state stored by ``to_data``."""
        return cls(
            stage=Stage(stage),
            voice=str(data.get("voice") or ENGLISH_VOICE),
            offer_english=bool(data.get("offer_english", False)),
            pin_failures=int(data.get("pin_failures", 0)),
            misses=int(data.get("misses", 0)),
            holds=int(data.get("holds", 0)),
            severity=Severity(data["severity"]) if data.get("severity") else None,
            severity_defaulted=bool(data.get("severity_defaulted", False)),
            category=Category(data["category"]) if data.get("category") else None,
            topic=Topic(data["topic"]) if data.get("topic") else None,
            topic_defaulted=bool(data.get("topic_defaulted", False)),
        )


@dataclass(frozen=True)
class Turn:
    """The machine's answer to one input: the next state and what the caller hears."""

    state: CallState
    actions: tuple[Action, ...]

    @property
    def needs_intake(self) -> bool:
        """Return True when the caller has made every choice and the contact is to be opened."""
        return self.state.stage is Stage.ROUTING


def classify_pin(digits: str | None, *, can_switch: bool) -> PinInput:
    """Sort what was keyed at the PIN prompt (no lookup, and the digits are not kept)."""
    keyed = (digits or "").strip()
    if not keyed:
        return PinInput.EMPTY
    if keyed.startswith("*") and can_switch:
        return PinInput.SWITCH_LANGUAGE
    if keyed.isascii() and keyed.isdigit() and PIN_MIN_LENGTH <= len(keyed) <= PIN_MAX_LENGTH:
        return PinInput.CANDIDATE
    return PinInput.MALFORMED


def start(voice: str, *, locked: bool, offer_english: bool) -> Turn:
    """Answer a new call: the greeting and the PIN prompt, or the lock-out message."""
    state = CallState(stage=Stage.PIN, voice=voice, offer_english=offer_english)
    if locked:
        return _end(state, Say("locked"), Say("reach_us"))
    return Turn(state, (Say("greeting"), _pin_gather(state, Say("pin_prompt"))))


def on_pin(state: CallState, outcome: PinOutcome, limits: Limits, *, hold_seconds: int = 1) -> Turn:
    """Move on from the PIN prompt given what the PIN check found."""
    if outcome is PinOutcome.HELD:
        # Not a try and not a miss: the caller waits at Twilio, then keys the PIN again. Misses
        # stand, so silence between holds still ends the call after prompt_repeats.
        held = replace(state, holds=state.holds + 1)
        if held.holds > limits.pin_holds:
            return _end(held, Say("pin_busy"), Say("reach_us"))
        prompt = _pin_gather(held, Say("pin_prompt_again"))
        return Turn(held, (Say("pin_hold"), Pause(max(1, hold_seconds)), prompt))
    if outcome is PinOutcome.VERIFIED:
        verified = replace(state, stage=Stage.SEVERITY, misses=0)
        return Turn(verified, (Say("pin_verified"), severity_menu()))
    if outcome is PinOutcome.NOT_ENTITLED:
        return _end(state, Say("not_entitled"), Say("reach_us"))
    if outcome is PinOutcome.LOCKED:
        return _end(state, Say("locked"), Say("reach_us"))
    if outcome is PinOutcome.SWITCH_LANGUAGE:
        english = replace(state, voice=ENGLISH_VOICE, offer_english=False, misses=0)
        return Turn(english, (_pin_gather(english, Say("pin_prompt")),))
    if outcome is PinOutcome.EMPTY:
        silent = replace(state, misses=state.misses + 1)
        if silent.misses > limits.prompt_repeats:
            return _end(silent, Say("pin_no_input"), Say("reach_us"))
        return Turn(silent, (Say("pin_no_input"), _pin_gather(silent, Say("pin_prompt"))))
    wrong = replace(state, pin_failures=state.pin_failures + 1, misses=0)
    if wrong.pin_failures >= limits.pin_tries:
        return _end(wrong, Say("pin_not_recognised"), Say("pin_failed"), Say("reach_us"))
    return Turn(wrong, (Say("pin_not_recognised"), _pin_gather(wrong, Say("pin_prompt_again"))))


def on_menu(state: CallState, digits: str | None, limits: Limits) -> Turn:
    """Take the caller's key at the severity or the topic menu."""
    keyed = (digits or "").strip()
    if state.stage is Stage.SEVERITY:
        severity = SEVERITY_OPTIONS.get(keyed)
        if severity is not None:
            chosen = replace(state, stage=Stage.TOPIC, severity=severity, misses=0)
            return Turn(chosen, (topic_menu(),))
        missed, apology = _missed(state, keyed)
        if missed.misses <= limits.prompt_repeats:
            return Turn(missed, (apology, severity_menu()))
        defaulted = replace(
            missed,
            stage=Stage.TOPIC,
            severity=DEFAULT_SEVERITY,
            severity_defaulted=True,
            misses=0,
        )
        announce = Say("severity_default", {"number": DEFAULT_SEVERITY.rank})
        return Turn(defaulted, (apology, announce, topic_menu()))
    if state.stage is not Stage.TOPIC:
        raise ValueError(f"no menu at stage {state.stage}")
    option = TOPICS_BY_DIGIT.get(keyed)
    if option is not None:
        return Turn(_chose(state, option, defaulted=False), ())
    missed, apology = _missed(state, keyed)
    if missed.misses <= limits.prompt_repeats:
        return Turn(missed, (apology, topic_menu()))
    return Turn(_chose(missed, DEFAULT_TOPIC, defaulted=True), (apology, Say("topic_default")))


def on_intake(state: CallState, outcome: IntakeOutcome, *, queue: str, reference: str) -> Turn:
    """Answer once the contact is opened: into its queue, or explain why not."""
    if outcome is IntakeOutcome.QUEUED:
        queued = replace(state, stage=Stage.QUEUED)
        spoken = Say("connecting", {"reference": spell_reference(reference)})
        return Turn(queued, (spoken, Enqueue(queue)))
    if outcome is IntakeOutcome.NOT_ENTITLED:
        return _end(state, Say("not_entitled"), Say("reach_us"))
    queued = replace(state, stage=Stage.QUEUED)
    return Turn(
        queued,
        (Say("technical_difficulty"), Say("hold_for_engineer"), Enqueue(FALLBACK_QUEUE)),
    )


def on_queue_left(result: str, *, retried: bool) -> tuple[Action, ...]:
    """Answer Twilio's report that the caller left the queue (the Enqueue action URL)."""
    if result == QUEUE_RESULT_BRIDGED:
        return (Say("goodbye"), Hangup())
    if result in QUEUE_RESULT_FAILURES:
        if retried:
            return (Say("queue_failed"), Say("reach_us"), Hangup())
        return (Say("queue_failed"), Say("hold_for_engineer"), Enqueue(FALLBACK_QUEUE))
    return (Hangup(),)


def waiting(
    position: int | None, average_wait_seconds: int | None, music: str
) -> tuple[Action, ...]:
    """Tell a waiting caller their position and expected wait, then play hold music."""
    actions: list[Action] = []
    if position is not None and position >= 1:
        actions.append(Say("queue_position", {"position": position}))
    if average_wait_seconds is not None and average_wait_seconds >= 0:
        if average_wait_seconds <= 30:
            actions.append(Say("queue_wait_short"))
        elif average_wait_seconds <= 90:
            actions.append(Say("queue_wait_one_minute"))
        else:
            minutes = round(average_wait_seconds / 60)
            actions.append(Say("queue_wait_minutes", {"minutes": minutes}))
    actions.append(Play(music))
    return tuple(actions)


def fallback() -> tuple[Action, ...]:
    """Answer when the service is degraded: an apology, then the fallback queue."""
    return (Say("fallback"), Enqueue(FALLBACK_QUEUE, report=False))


def failure() -> tuple[Action, ...]:
    """Answer a request the IVR cannot use (no call id, a broken step URL)."""
    return (Say("technical_difficulty"), Say("reach_us"), Hangup())


def spell_reference(reference: str) -> str:
    """Return a contact reference as a voice reads it clearly: 'C-1042' -> 'C 1 0 4 2'."""
    return " ".join(ch for ch in reference if ch.isalnum())


def _pin_gather(state: CallState, prompt: Say) -> Gather:
    prompts: tuple[Say, ...] = (prompt,)
    if state.offer_english:
        prompts += (Say("offer_english", voice=ENGLISH_VOICE),)
    return Gather(Stage.PIN, max_digits=PIN_MAX_LENGTH, prompts=prompts, finish_on_pound=True)


def _missed(state: CallState, keyed: str) -> tuple[CallState, Say]:
    apology = Say("menu_invalid") if keyed else Say("menu_no_input")
    return replace(state, misses=state.misses + 1), apology


def _chose(state: CallState, option: MenuOption, *, defaulted: bool) -> CallState:
    return replace(
        state,
        stage=Stage.ROUTING,
        category=option.category,
        topic=option.topic,
        topic_defaulted=defaulted,
        misses=0,
    )


def _end(state: CallState, *prompts: Say) -> Turn:
    return Turn(replace(state, stage=Stage.ENDED), (*prompts, Hangup()))
