"""The checks that settings describe a runnable service, and in production a safe one.

Every failure raises SettingsError naming the environment variable at fault.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from config.environment import DEFAULT_SQLITE_URL, DEV_SECRET, FIELD_OF, SettingsError

if TYPE_CHECKING:
    from config.settings import Settings

ENVIRONMENTS = ("development", "test", "production")
MAIL_TRANSPORTS = ("smtp", "console")
SMTP_SECURITY_MODES = ("none", "starttls", "tls")
EMAIL_SEND_MODES = ("background", "inline")

_KNOWN_WEAK = {DEV_SECRET, "", "changeme", "change-me", "secret", "password", "dev", "test"}
_MIN_SECRET_LENGTH = 16

_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def check_settings(settings: Settings) -> None:
    """Check the settings as a whole; raise SettingsError naming the variable."""
    if settings.env not in ENVIRONMENTS:
        raise SettingsError(
            f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, not {settings.env!r}"
        )
    if settings.trusted_proxy_count < 0:
        raise SettingsError("TRUSTED_PROXY_COUNT must be 0 or more")
    _check_mail(settings)
    if not 0 <= settings.portal_jwt_leeway_seconds <= 300:
        raise SettingsError("PORTAL_JWT_LEEWAY_SECONDS must be between 0 and 300")
    if not 60 <= settings.portal_token_max_lifetime_seconds <= 86400:
        raise SettingsError("PORTAL_TOKEN_MAX_LIFETIME_SECONDS must be between 60 and 86400")
    for variable in _POSITIVE:
        if _value(settings, variable) < 1:
            raise SettingsError(f"{variable} must be 1 or more")
    if not settings.help_center_url.startswith(("http://", "https://")):
        raise SettingsError("HELP_CENTER_URL must start with http:// or https://")
    if not settings.database_url.split(":", 1)[0].startswith(("sqlite", "postgresql")):
        raise SettingsError("DATABASE_URL must be a sqlite:// or postgresql:// URL")
    if settings.public_base_url and not settings.public_base_url.startswith(
        ("http://", "https://")
    ):
        raise SettingsError("PUBLIC_BASE_URL must start with http:// or https://")
    _check_voice(settings)
    _check_ranges(settings, _SERVER_RANGES)
    _check_scheduler(settings)
    _check_email_senders(settings)
    _check_console(settings)
    if settings.is_production:
        _check_production_secrets(settings)
        if settings.database_url == DEFAULT_SQLITE_URL:
            raise SettingsError("DATABASE_URL is missing; production needs a database URL")


def _value(settings: Settings, variable: str) -> Any:
    """Return the value of the field that ``variable`` sets."""
    return getattr(settings, FIELD_OF[variable])


def _check_ranges(
    settings: Settings, ranges: dict[str, tuple[int, int]], *, say_value: bool = True
) -> None:
    """Refuse a variable outside its (lowest, highest) range."""
    for variable, (lowest, highest) in ranges.items():
        value = _value(settings, variable)
        if not lowest <= value <= highest:
            found = f", not {value}" if say_value else ""
            raise SettingsError(f"{variable} must be between {lowest} and {highest}{found}")


def _check_mail(settings: Settings) -> None:
    """Check the mailer and email channel settings."""
    if settings.mail_transport not in (None, *MAIL_TRANSPORTS):
        raise SettingsError(f"MAIL_TRANSPORT must be one of {', '.join(MAIL_TRANSPORTS)}")
    if settings.smtp_security not in SMTP_SECURITY_MODES:
        raise SettingsError(f"SMTP_SECURITY must be one of {', '.join(SMTP_SECURITY_MODES)}")
    if settings.email_send_mode not in EMAIL_SEND_MODES:
        raise SettingsError(
            f"EMAIL_SEND_MODE must be one of {', '.join(EMAIL_SEND_MODES)}, "
            f"not {settings.email_send_mode!r}"
        )
    if not 1 <= settings.smtp_port <= 65535:
        raise SettingsError("SMTP_PORT must be between 1 and 65535")
    for variable in _EMAIL_POSITIVE:
        if _value(settings, variable) < 1:
            raise SettingsError(f"{variable} must be 1 or more")
    if bool(settings.smtp_username) != bool(settings.smtp_password):
        raise SettingsError("SMTP_USERNAME and SMTP_PASSWORD must be set together")
    if settings.is_production and settings.smtp_username and settings.smtp_security == "none":
        raise SettingsError(
            "SMTP_SECURITY must be starttls or tls when SMTP_USERNAME is set in production "
            "(credentials are never sent in clear text)"
        )


def _check_voice(settings: Settings) -> None:
    """Check the voice limits and shared keys, naming the variable at fault."""
    _check_ranges(settings, _VOICE_RANGES)
    if settings.hold_music_url and not settings.hold_music_url.startswith(("http://", "https://")):
        raise SettingsError("HOLD_MUSIC_URL must start with http:// or https://")
    secrets = settings.twilio_shared_key_secrets()
    if settings.is_production and any(len(s) < _MIN_SECRET_LENGTH for s in secrets.values()):
        raise SettingsError(
            "TWILIO_SHARED_KEYS has a secret that is too short; "
            f"use at least {_MIN_SECRET_LENGTH} characters"
        )
    if settings.pin_alert_rate_per_minute > settings.pin_global_rate_per_minute:
        raise SettingsError("PIN_ALERT_RATE_PER_MINUTE must not exceed PIN_GLOBAL_RATE_PER_MINUTE")
    # Without it the signed URL's host would come from the request's Host header.
    if settings.is_production and not settings.public_base_url:
        raise SettingsError(
            "PUBLIC_BASE_URL is missing; production needs the public URL Twilio calls "
            "and signs (e.g. https://support-router.example.com)"
        )
    if settings.is_production and settings.public_base_url:
        # Webhook bodies carry callers' keyed digits and customers' mail: only over TLS.
        parts = urlsplit(settings.public_base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise SettingsError(
                "PUBLIC_BASE_URL must be an https:// URL with a host name in production "
                "(e.g. https://support-router.example.com)"
            )


def _check_scheduler(settings: Settings) -> None:
    """Check the scheduler, SLA sweep and notification settings."""
    _check_ranges(settings, _SCHEDULER_RANGES, say_value=False)
    if settings.scheduler_stale_after_seconds <= settings.sla_sweep_interval_seconds:
        raise SettingsError(
            "SCHEDULER_STALE_AFTER_SECONDS must be longer than SLA_SWEEP_INTERVAL_SECONDS"
        )


def _check_email_senders(settings: Settings) -> None:
    """Check the sender-verification settings, naming the variable at fault."""
    for variable, names in (
        ("EMAIL_TRUSTED_AUTHSERV_IDS", settings.trusted_authserv_ids),
        ("EMAIL_STAFF_DOMAINS", settings.staff_email_domains),
    ):
        for name in names:
            if not _HOST_NAME.fullmatch(name):
                raise SettingsError(
                    f"{variable} must be comma-separated host or domain names, not {name!r}"
                )
    if not 0 <= settings.email_max_rejections_per_hour <= 100_000:
        raise SettingsError("EMAIL_MAX_REJECTIONS_PER_HOUR must be between 0 and 100000")


def _check_console(settings: Settings) -> None:
    """Check the console's log-in limits and session lifetimes."""
    _check_ranges(settings, _CONSOLE_RANGES)
    if settings.console_login_lockout_max_seconds < settings.console_login_lockout_seconds:
        raise SettingsError(
            "CONSOLE_LOGIN_LOCKOUT_MAX_SECONDS must be at least CONSOLE_LOGIN_LOCKOUT_SECONDS"
        )
    if settings.console_session_idle_minutes > settings.console_session_max_hours * 60:
        raise SettingsError(
            "CONSOLE_SESSION_IDLE_MINUTES must not exceed CONSOLE_SESSION_MAX_HOURS"
        )


def _check_production_secrets(settings: Settings) -> None:
    """Refuse missing, default, short or guessable secrets, naming the variable."""
    for variable in settings.required_secrets:
        value = _value(settings, variable)
        if value in _KNOWN_WEAK:
            raise SettingsError(
                f"{variable} is missing or set to a default value; production needs a "
                "real secret (or set APP_ENV=development for local use)"
            )
        # HS256 keys shorter than the hash (32 bytes) weaken the portal tokens (RFC 7518).
        minimum = 32 if variable == "PORTAL_JWT_SECRET" else _MIN_SECRET_LENGTH
        if len(value) < minimum:
            raise SettingsError(f"{variable} is too short; use at least {minimum} characters")
    # Optional secrets switch a feature on; when one is set it must be a real secret.
    for variable in _OPTIONAL_SECRETS:
        value = _value(settings, variable)
        if value is not None and (value in _KNOWN_WEAK or len(value) < _MIN_SECRET_LENGTH):
            raise SettingsError(
                f"{variable} is too weak; use at least {_MIN_SECRET_LENGTH} random "
                "characters (or leave it unset to turn that feature off)"
            )
    _check_secret_strength(settings)


# -- secret strength (production) ---------------------------------------------------------------
# Measured over 300,000 draws each: a random hex secret of the minimum length (16) fails these
# floors about once (a decimal-only one about once in 4,000: use a wider alphabet), a
# `secrets.token_urlsafe` one never; typed or patterned values do.
_MIN_DISTINCT_CHARACTERS = 5
_MIN_ENTROPY_BITS_PER_CHARACTER = 2.0
# SMTP_PASSWORD is the mail provider's to choose, so it takes part in the reuse check only.
_REUSE_ONLY_SECRETS = ("SMTP_PASSWORD",)


def _check_secret_strength(settings: Settings) -> None:
    """Refuse low-entropy secrets and one value used for two secrets, naming the variables."""
    strength_checked = [*settings.required_secrets, *_OPTIONAL_SECRETS]
    named: list[tuple[str, str]] = [
        (variable, value)
        for variable in (*strength_checked, *_REUSE_ONLY_SECRETS)
        if (value := _value(settings, variable)) is not None
    ]
    named += [
        (f"TWILIO_SHARED_KEYS ({key_id})", secret)
        for key_id, secret in settings.twilio_shared_key_secrets().items()
    ]
    for variable, value in named:
        if variable in _REUSE_ONLY_SECRETS:
            continue
        problem = _secret_weakness(value)
        if problem:
            raise SettingsError(
                f"{variable} {problem}; production needs a random secret "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
    # Each secret guards something different: the holder of one (a provider, the portal team)
    # must not be able to forge what another protects, e.g. console sessions with the portal key.
    first_with: dict[str, str] = {}
    for variable, value in named:
        key = value.strip().casefold()
        if key in first_with:
            raise SettingsError(
                f"{first_with[key]} and {variable} have the same value; every secret must be "
                "different"
            )
        first_with[key] = variable


def _secret_weakness(value: str) -> str | None:
    """Say what makes a secret guessable, or None."""
    if not value.strip():
        return "is only whitespace"
    if value != value.strip():
        return "starts or ends with whitespace (a copy-and-paste slip?)"
    counts = Counter(value)
    if len(counts) < _MIN_DISTINCT_CHARACTERS:
        return (
            f"uses only {len(counts)} different characters "
            f"(at least {_MIN_DISTINCT_CHARACTERS} expected)"
        )
    length = len(value)
    for period in range(1, length // 2 + 1):
        if value == value[:period] * (length // period) + value[: length % period]:
            return "repeats a short sequence"
    entropy = -sum(n / length * math.log2(n / length) for n in counts.values())
    if entropy < _MIN_ENTROPY_BITS_PER_CHARACTER:
        return (
            f"has too little entropy ({entropy:.1f} bits per character; at least "
            f"{_MIN_ENTROPY_BITS_PER_CHARACTER:.0f} expected)"
        )
    return None


# Scheduler limits: (lowest, highest) allowed value of each variable.
_SCHEDULER_RANGES = {
    "SLA_SWEEP_INTERVAL_SECONDS": (1, 600),
    "SLA_SWEEP_BATCH_SIZE": (1, 10_000),
    "SCHEDULER_MAINTENANCE_INTERVAL_SECONDS": (1, 86400),
    "SCHEDULER_STALE_AFTER_SECONDS": (2, 86400),
    # A standby takes over within a minute of the active scheduler's death.
    "SCHEDULER_LOCK_RETRY_SECONDS": (1, 60),
    "SCHEDULER_LOCK_KEY": (-(2**63), 2**63 - 1),
    "NOTIFY_WEBHOOK_TIMEOUT_SECONDS": (1, 60),
    "NOTIFY_MAX_ATTEMPTS": (1, 50),
    "METRICS_CACHE_SECONDS": (0, 300),
    # Offers to agents: long enough to react, short enough that a missed offer moves on.
    "OFFER_TIMEOUT_VOICE_SECONDS": (5, 3600),
    "OFFER_TIMEOUT_CHAT_SECONDS": (5, 3600),
    "OFFER_TIMEOUT_EMAIL_SECONDS": (5, 3600),
    "OFFER_TIMEOUT_PORTAL_SECONDS": (5, 3600),
}
# Voice limits: (lowest, highest) allowed value of each variable.
_VOICE_RANGES = {
    "PIN_TRIES_PER_CALL": (1, 10),
    "PIN_LOCKOUT_FAILURES": (1, 1000),
    "PIN_LOCKOUT_WINDOW_SECONDS": (60, 7 * 86400),
    "PIN_LOCKOUT_SECONDS": (60, 7 * 86400),
    "PIN_ALERT_FAILURES": (1, 1_000_000),
    "PIN_ALERT_WINDOW_SECONDS": (60, 86400),
    "PIN_GLOBAL_RATE_PER_MINUTE": (1, 60_000),
    "PIN_GLOBAL_BURST": (1, 10_000),
    "PIN_ALERT_RATE_PER_MINUTE": (1, 60_000),
    "IVR_PROMPT_REPEATS": (0, 5),
    "IVR_GATHER_TIMEOUT_SECONDS": (1, 60),
}
# Web server limits (gunicorn.conf.py): (lowest, highest) allowed value of each variable.
_SERVER_RANGES = {
    "WEB_THREADS": (1, 256),
    "REQUEST_READ_TIMEOUT_SECONDS": (1, 600),
    "REQUEST_MIN_BYTES_PER_SECOND": (1, 1 << 30),
}
# Console log-in limits and session lifetimes: (lowest, highest) allowed value of each variable.
_CONSOLE_RANGES = {
    "CONSOLE_LOGIN_LOCKOUT_FAILURES": (1, 100),
    "CONSOLE_LOGIN_LOCKOUT_SECONDS": (1, 86400),
    "CONSOLE_LOGIN_LOCKOUT_MAX_SECONDS": (1, 30 * 86400),
    "CONSOLE_LOGIN_IP_FAILURES": (1, 100_000),
    "CONSOLE_LOGIN_IP_WINDOW_SECONDS": (1, 86400),
    "CONSOLE_SESSION_IDLE_MINUTES": (1, 30 * 24 * 60),
    "CONSOLE_SESSION_MAX_HOURS": (1, 30 * 24),
}
_OPTIONAL_SECRETS = (
    "SENDGRID_BASIC_PASSWORD",
    "POSTMARK_BASIC_PASSWORD",
    "MAILGUN_SIGNING_KEY",
    "INBOUND_MIME_TOKEN",
    "NOTIFY_WEBHOOK_SECRET",
)
_POSITIVE = (
    "CHAT_MESSAGE_MAX_CHARS",
    "CHAT_MAX_MESSAGES",
    "PORTAL_TEXT_MAX_CHARS",
    "QUEUE_WAIT_WINDOW_MINUTES",
    "QUEUE_WAIT_SAMPLE",
)
_EMAIL_POSITIVE = (
    "SMTP_TIMEOUT_SECONDS",
    "EMAIL_MAX_MESSAGE_BYTES",
    "EMAIL_WEBHOOK_MAX_AGE_SECONDS",
    "EMAIL_REJECTION_REPLY_HOURS",
    "EMAIL_MAX_REPLIES_PER_HOUR",
    "EMAIL_SEND_MAX_ATTEMPTS",
)
