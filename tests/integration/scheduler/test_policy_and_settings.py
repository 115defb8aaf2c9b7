"""Escalation policy (sla.toml) and scheduler settings are validated with clear messages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config.policy import EscalationPolicy, Policy, PolicyError, load_policy
from config.settings import DEFAULT_POLICY_DIR, Settings, SettingsError

ESCALATION = """[policies.premium.escalation]
raise_priority = 20
queue = "escalations"
notify = ["queue_owners", "csm", "webhook"]
warn = ["queue_owners", "webhook"]
"""


def test_shipped_escalations(policy: Policy) -> None:
    assert policy.escalations["premium"] == EscalationPolicy(
        raise_priority=20,
        queue="escalations",
        notify=("queue_owners", "csm", "webhook"),
        warn=("queue_owners", "webhook"),
    )
    assert policy.escalations["standard"].raise_priority == 10
    assert "none" not in policy.escalations


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        (
            "raise_priority = 20",
            "raise_prio = 20",
            "policies.premium.escalation.raise_prio",
            "unknown key",
        ),
        (
            "raise_priority = 20",
            "raise_priority = 120",
            "policies.premium.escalation.raise_priority",
            "between 0 and 100",
        ),
        (
            "raise_priority = 20",
            'raise_priority = "high"',
            "policies.premium.escalation.raise_priority",
            "must be a whole number",
        ),
        (
            'queue = "escalations"',
            'queue = "escalation"',
            "policies.premium.escalation.queue",
            "unknown queue 'escalation'",
        ),
        (
            'queue = "escalations"',
            'queue = "supportbot"',
            "policies.premium.escalation.queue",
            "not a queue staff work from",
        ),
        (
            'notify = ["queue_owners", "csm"',
            'notify = ["queue_owners", "cms"',
            "policies.premium.escalation.notify[1]",
            "unknown value 'cms'",
        ),
        (
            'warn = ["queue_owners", "webhook"]',
            'warn = "webhook"',
            "policies.premium.escalation.warn",
            "must be a list",
        ),
        (
            "[policies.premium.escalation]",
            "[policies.premium.escalate]",
            "policies.premium.escalate",
            "unknown key",
        ),
    ],
)
def test_bad_escalation_names_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, message: str
) -> None:
    directory = tmp_path / "policy"
    shutil.copytree(DEFAULT_POLICY_DIR, directory)
    path = directory / "sla.toml"
    text = path.read_text()
    assert ESCALATION in text
    path.write_text(text.replace(ESCALATION, ESCALATION.replace(old, new, 1), 1))
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert caught.value.file == str(path)
    assert caught.value.key == key
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}: {key}: ")


def test_scheduler_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "SLA_SWEEP_INTERVAL_SECONDS": "15",
            "SCHEDULER_STALE_AFTER_SECONDS": "120",
            "SCHEDULER_LOCK_RETRY_SECONDS": "5",
            "SCHEDULER_LOCK_KEY": "-42",
            "NOTIFY_WEBHOOK_SECRET": "whsec-0123456789abcdef",
            "METRICS_CACHE_SECONDS": "0",
        }
    )
    assert (settings.sla_sweep_interval_seconds, settings.scheduler_stale_after_seconds) == (
        15,
        120,
    )
    assert (settings.scheduler_lock_retry_seconds, settings.scheduler_lock_key) == (5, -42)
    assert settings.metrics_cache_seconds == 0
    assert "whsec" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"SCHEDULER_LOCK_RETRY_SECONDS": "90"},
            "SCHEDULER_LOCK_RETRY_SECONDS must be between 1 and 60",
        ),
        (
            {"SLA_SWEEP_INTERVAL_SECONDS": "0"},
            "SLA_SWEEP_INTERVAL_SECONDS must be between 1 and 600",
        ),
        (
            {"SLA_SWEEP_INTERVAL_SECONDS": "60", "SCHEDULER_STALE_AFTER_SECONDS": "60"},
            "must be longer than",
        ),
        ({"NOTIFY_MAX_ATTEMPTS": "many"}, "NOTIFY_MAX_ATTEMPTS must be a whole number"),
    ],
)
def test_bad_scheduler_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_production_refuses_a_weak_webhook_secret() -> None:
    base = Settings(
        env="production",
        database_url="postgresql+psycopg://router@db/router",
        secret_key="Vq3xN8tR2kLm9ZpW4yHc7JdF6gBs1AeU",
        pin_pepper="pepper-6Tf9Qw2Lx8Rk4Nm7Hc3Vb5Zj1Yd",
        portal_jwt_secret="J4k8Pz2Wq6Xm9Rt3Vn7Hc5Lb1Fd0Gs8Ye",
        twilio_auth_token="9f8e2d4c6b1a3e5d7c9b0a2f4e6d8c1b",
        public_base_url="https://support-router.example.com",
    )
    assert base.validated() is base  # no webhook secret: webhooks are simply not sent
    with pytest.raises(SettingsError, match="NOTIFY_WEBHOOK_SECRET is too weak"):
        base.with_overrides(notify_webhook_secret="short")
