"""TwiML rendering: the only module that writes TwiML, turning IVR actions into Twilio voice XML.

Built with the twilio package's builders, so escaping and attribute names are Twilio's own.
Action URLs are absolute paths under the voice blueprint; Twilio resolves them against the
public host it called, so the next request is signed over the same public origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from twilio.twiml.voice_response import Gather as GatherVerb
from twilio.twiml.voice_response import VoiceResponse

from ivr.actions import Action, Enqueue, Gather, Hangup, Pause, Play, Ref, Say, Stage
from ivr.catalog import Catalog

CONTENT_TYPE = "text/xml; charset=utf-8"

# Twilio's own classical hold music (the audio its default wait URL plays).
TWILIO_HOLD_MUSIC = "http://com.twilio.sounds.music.s3.amazonaws.com/MARKOVICHAMP-Borghestral.mp3"


@dataclass(frozen=True)
class Urls:
    """The voice step URLs, as paths under ``base`` (the voice blueprint's prefix)."""

    base: str = "/voice/"

    def step(self, stage: Stage, step: int) -> str:
        """Return the URL that receives the digits gathered for ``stage``."""
        return f"{self.base}{stage.value}?step={step}"

    def wait(self, voice: str) -> str:
        """Return the wait URL for callers hearing ``voice``."""
        return f"{self.base}wait?lang={quote(voice)}"

    def queue_result(self) -> str:
        """Return the Enqueue action URL (Twilio reports why the caller left the queue)."""
        return f"{self.base}queue-result"


@dataclass(frozen=True)
class Voice:
    """How prompts are spoken: the catalog, the call's <Say> language and shared parameters."""

    catalog: Catalog
    language: str
    params: Mapping[str, str]  # e.g. the support email address read in "reach_us"

    def text(self, say: Say) -> tuple[str, str]:
        """Return (text, <Say> language) for one prompt."""
        language = say.voice or self.language
        params: dict[str, object] = dict(self.params)
        for name, value in say.params.items():
            params[name] = (
                self.catalog.text(language, value.key, self.params)
                if isinstance(value, Ref)
                else value
            )
        return self.catalog.text(language, say.key, params), language


def render(
    actions: Iterable[Action],
    *,
    voice: Voice,
    urls: Urls,
    step: int = 0,
    gather_timeout: int = 6,
) -> str:
    """Return the TwiML document for ``actions``; Gather actions post to ``step``'s URL."""
    response = VoiceResponse()
    for action in actions:
        if isinstance(action, Say):
            text, language = voice.text(action)
            response.say(text, language=language)
        elif isinstance(action, Gather):
            target = urls.step(action.stage, step)
            verb = GatherVerb(
                input="dtmf",
                action=target,
                method="POST",
                num_digits=action.max_digits,
                timeout=gather_timeout,
                finish_on_key="#" if action.finish_on_pound else None,
                action_on_empty_result=True,
            )
            for prompt in action.prompts:
                text, language = voice.text(prompt)
                verb.say(text, language=language)
            response.append(verb)
            # Twilio posts the empty result to the action; the Redirect covers any path that
            # falls through the Gather, so silence always reaches the same step handler.
            response.redirect(target, method="POST")
        elif isinstance(action, Enqueue):
            response.enqueue(
                action.queue,
                action=urls.queue_result() if action.report else None,
                method="POST" if action.report else None,
                wait_url=urls.wait(voice.language),
                wait_url_method="POST",
            )
        elif isinstance(action, Pause):
            response.pause(length=action.seconds)
        elif isinstance(action, Play):
            response.play(action.url)
        elif isinstance(action, Hangup):
            response.hangup()
        else:  # pragma: no cover - the Action union is closed
            raise TypeError(f"cannot render {action!r}")
    return str(response.to_xml())
