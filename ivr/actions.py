"""What one turn of a call asks Twilio to do: speak, gather digits, queue, pause, play, hang up.

The actions are data; ``ivr.twiml`` renders them. Prompts are catalog keys (``ivr.catalog``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Stage(StrEnum):
    """Where a call stands; the Gather stages name the URL that receives the caller's digits."""

    PIN = "pin"
    SEVERITY = "severity"
    TOPIC = "topic"
    ROUTING = "routing"  # every choice made: the service opens the contact next
    QUEUED = "queued"
    ENDED = "ended"


GATHER_STAGES = (Stage.PIN, Stage.SEVERITY, Stage.TOPIC)


@dataclass(frozen=True)
class Ref:
    """A prompt parameter that is itself a catalog text (a severity definition, a menu label)."""

    key: str


@dataclass(frozen=True)
class Say:
    """Speak one catalog prompt; ``voice`` overrides the call's <Say> language."""

    key: str
    params: Mapping[str, str | int | Ref] = field(default_factory=dict)
    voice: str | None = None


@dataclass(frozen=True)
class Gather:
    """Collect DTMF digits for ``stage`` while the prompts play (callers may key ahead)."""

    stage: Stage
    max_digits: int
    prompts: tuple[Say, ...]
    finish_on_pound: bool = False


@dataclass(frozen=True)
class Enqueue:
    """Put the caller in a queue; ``report`` asks for the queue result (action URL)."""

    queue: str
    report: bool = True


@dataclass(frozen=True)
class Pause:
    """Wait silently at Twilio (never in a web worker)."""

    seconds: int


@dataclass(frozen=True)
class Play:
    """Play an audio file (hold music)."""

    url: str


@dataclass(frozen=True)
class Hangup:
    """End the call."""


Action = Say | Gather | Enqueue | Pause | Play | Hangup
