"""The voice channel's limits and constants, read once from settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from config.settings import Settings
from ivr.machine import Limits
from ivr.twiml import TWILIO_HOLD_MUSIC
from router.services.ratelimit import RateLimit


@dataclass(frozen=True)
class VoiceConfig:
    """The voice channel's limits and constants, read from settings."""

    limits: Limits
    lockout_failures: int
    lockout_window: timedelta
    lockout_duration: timedelta
    alert_failures: int
    alert_window: timedelta
    pin_rate: RateLimit
    pin_alert_rate: RateLimit
    gather_timeout: int
    hold_music_url: str
    support_email: str
    pin_pepper: str

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceConfig:
        """Return the voice configuration in ``settings``."""
        return cls(
            limits=Limits(
                pin_tries=settings.pin_tries_per_call,
                prompt_repeats=settings.ivr_prompt_repeats,
            ),
            lockout_failures=settings.pin_lockout_failures,
            lockout_window=timedelta(seconds=settings.pin_lockout_window_seconds),
            lockout_duration=timedelta(seconds=settings.pin_lockout_seconds),
            alert_failures=settings.pin_alert_failures,
            alert_window=timedelta(seconds=settings.pin_alert_window_seconds),
            pin_rate=RateLimit(
                per_second=settings.pin_global_rate_per_minute / 60,
                burst=float(settings.pin_global_burst),
            ),
            # A smaller burst too: the first check under the alert caps what is left at once.
            pin_alert_rate=RateLimit(
                per_second=settings.pin_alert_rate_per_minute / 60,
                burst=float(min(settings.pin_global_burst, settings.pin_alert_rate_per_minute)),
            ),
            gather_timeout=settings.ivr_gather_timeout_seconds,
            hold_music_url=settings.hold_music_url or TWILIO_HOLD_MUSIC,
            support_email=settings.mail_from,
            pin_pepper=settings.pin_pepper,
        )
