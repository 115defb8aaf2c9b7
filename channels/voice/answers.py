"""The TwiML the IVR answers with: the caller's language from the dialled number, rendered once."""

from __future__ import annotations

from config.policy import Policy, Region
from ivr.catalog import ENGLISH_VOICE, Catalog
from ivr.machine import Action
from ivr.twiml import Urls, Voice, render

# TwiML answers kept by render (they are a few kilobytes each).
_RENDERED_MAX = 512


class Answers:
    """Render the IVR's actions as TwiML in the caller's language, keeping recent answers."""

    def __init__(
        self, policy: Policy, catalog: Catalog, *, support_email: str, gather_timeout: int
    ) -> None:
        self.policy = policy
        self.catalog = catalog
        self.support_email = support_email
        self.gather_timeout = gather_timeout
        known = {catalog.voice_language(r.language) for r in policy.regions.values()}
        self._voices = frozenset(known | {ENGLISH_VOICE})
        self._rendered: dict[tuple[str, str, Urls, int], str] = {}

    def region_for(self, dialled: str) -> tuple[Region, bool]:
        """Return the region of the dialled number, or the default region and False."""
        region = self.policy.region_for_number(dialled) if dialled else None
        if region is not None:
            return region, True
        return self.policy.regions[self.policy.default_region], False

    def voice_for(self, dialled: str) -> str:
        """Return the <Say> language for callers of a dialled number."""
        return self.catalog.voice_language(self.region_for(dialled)[0].language)

    def known_voice(self, voice: str) -> str:
        """Return ``voice`` if some region speaks it, else the default region's."""
        if voice in self._voices:
            return voice
        return self.catalog.voice_language(self.policy.regions[self.policy.default_region].language)

    def render(self, actions: tuple[Action, ...], voice: str, urls: Urls, *, step: int = 0) -> str:
        """Return the TwiML for ``actions`` spoken in ``voice``."""
        # Rendering is pure and most answers recur (every new call hears one of a few
        # greetings), so they are kept, keyed by everything the TwiML depends on.
        key = (repr(actions), voice, urls, step)
        twiml = self._rendered.get(key)
        if twiml is None:
            spoken = Voice(self.catalog, voice, {"email": self.support_email})
            twiml = render(
                actions, voice=spoken, urls=urls, step=step, gather_timeout=self.gather_timeout
            )
            if len(self._rendered) >= _RENDERED_MAX:
                self._rendered.clear()
            self._rendered[key] = twiml
        return twiml
