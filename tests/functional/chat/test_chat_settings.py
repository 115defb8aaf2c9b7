"""The chat channel's settings: read from the environment and checked, naming the variable."""

from __future__ import annotations

import pytest

from config import Settings, SettingsError


def test_defaults_and_environment() -> None:
    defaults = Settings.from_env({})
    assert (defaults.portal_jwt_leeway_seconds, defaults.chat_message_max_chars) == (30, 4000)
    assert defaults.help_center_url == "https://help.example.com"
    read = Settings.from_env(
        {
            "PORTAL_JWT_LEEWAY_SECONDS": "5",
            "CHAT_MESSAGE_MAX_CHARS": "100",
            "CHAT_MAX_MESSAGES": "3",
            "PORTAL_TEXT_MAX_CHARS": "900",
            "HELP_CENTER_URL": "https://support.example.org/hc",
            "QUEUE_WAIT_WINDOW_MINUTES": "30",
            "QUEUE_WAIT_SAMPLE": "7",
        }
    )
    assert read.portal_jwt_leeway_seconds == 5 and read.chat_max_messages == 3
    assert read.help_center_url == "https://support.example.org/hc"
    assert (read.queue_wait_window_minutes, read.queue_wait_sample) == (30, 7)
    assert "help_center_url" in repr(read)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORTAL_JWT_LEEWAY_SECONDS", "-1"),
        ("PORTAL_JWT_LEEWAY_SECONDS", "301"),
        ("CHAT_MESSAGE_MAX_CHARS", "0"),
        ("CHAT_MAX_MESSAGES", "0"),
        ("PORTAL_TEXT_MAX_CHARS", "0"),
        ("QUEUE_WAIT_WINDOW_MINUTES", "0"),
        ("QUEUE_WAIT_SAMPLE", "0"),
        ("HELP_CENTER_URL", "help.example.com"),
        ("QUEUE_WAIT_SAMPLE", "many"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})
