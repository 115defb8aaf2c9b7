"""Voice settings: read from the environment, validated with the variable named."""

from __future__ import annotations

import pytest

from channels.voice.config import VoiceConfig
from config import Settings, SettingsError


def test_voice_limits_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "PIN_TRIES_PER_CALL": "4",
            "PIN_LOCKOUT_FAILURES": "6",
            "PIN_LOCKOUT_WINDOW_SECONDS": "1800",
            "PIN_LOCKOUT_SECONDS": "7200",
            "PIN_ALERT_FAILURES": "200",
            "PIN_ALERT_WINDOW_SECONDS": "300",
            "PIN_GLOBAL_RATE_PER_MINUTE": "90",
            "PIN_GLOBAL_BURST": "15",
            "PIN_ALERT_RATE_PER_MINUTE": "30",
            "IVR_PROMPT_REPEATS": "1",
            "IVR_GATHER_TIMEOUT_SECONDS": "8",
            "TWILIO_SHARED_KEYS": "key_a=secret-a-0123456789abcdef",
            "HOLD_MUSIC_URL": "https://cdn.example.com/hold.mp3",
        }
    )
    config = VoiceConfig.from_settings(settings)
    assert (config.limits.pin_tries, config.limits.prompt_repeats) == (4, 1)
    assert (config.lockout_failures, config.lockout_window.total_seconds()) == (6, 1800)
    assert config.lockout_duration.total_seconds() == 7200
    assert (config.alert_failures, config.alert_window.total_seconds()) == (200, 300)
    assert (config.pin_rate.per_second, config.pin_rate.burst) == (1.5, 15)
    assert (config.pin_alert_rate.per_second, config.pin_alert_rate.burst) == (0.5, 15)
    assert config.gather_timeout == 8
    assert config.hold_music_url == "https://cdn.example.com/hold.mp3"
    assert settings.twilio_shared_key_secrets() == {"key_a": "secret-a-0123456789abcdef"}
    assert "secret-a" not in repr(settings)  # shared keys are secrets


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PIN_TRIES_PER_CALL", "0"),
        ("PIN_LOCKOUT_FAILURES", "0"),
        ("PIN_LOCKOUT_WINDOW_SECONDS", "10"),
        ("PIN_LOCKOUT_SECONDS", "999999999"),
        ("PIN_ALERT_FAILURES", "0"),
        ("PIN_ALERT_WINDOW_SECONDS", "5"),
        ("PIN_GLOBAL_RATE_PER_MINUTE", "0"),
        ("PIN_GLOBAL_BURST", "0"),
        ("PIN_ALERT_RATE_PER_MINUTE", "0"),
        ("IVR_PROMPT_REPEATS", "9"),
        ("IVR_GATHER_TIMEOUT_SECONDS", "0"),
        ("HOLD_MUSIC_URL", "hold.mp3"),
    ],
)
def test_out_of_range_limits_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_production_refuses_short_shared_keys() -> None:
    environment = {
        "APP_ENV": "production",
        "DATABASE_URL": "postgresql://db.example.com/router",
        "SECRET_KEY": "s" * 32,
        "PIN_PEPPER": "p" * 32,
        "PORTAL_JWT_SECRET": "j" * 32,
        "TWILIO_AUTH_TOKEN": "t" * 32,
        "TWILIO_SHARED_KEYS": "key_a=short",
    }
    with pytest.raises(SettingsError, match="TWILIO_SHARED_KEYS"):
        Settings.from_env(environment)


def test_the_alert_rate_may_not_exceed_the_global_pin_rate() -> None:
    with pytest.raises(SettingsError, match="PIN_ALERT_RATE_PER_MINUTE"):
        Settings.from_env({"PIN_GLOBAL_RATE_PER_MINUTE": "10", "PIN_ALERT_RATE_PER_MINUTE": "20"})
