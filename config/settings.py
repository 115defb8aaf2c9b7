"""Settings read once from the environment into a frozen, typed object.

This module is the only reader of ``os.environ`` in the project.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POLICY_DIR = Path(__file__).resolve().parent / "policy"
DEFAULT_SQLITE_URL = f"sqlite:///{PROJECT_ROOT / 'instance' / 'router.sqlite3'}"

# Development stand-ins; production refuses every one of them.
DEV_SECRET = "dev-only-not-secret"
_KNOWN_WEAK = {DEV_SECRET, "", "changeme", "change-me", "secret", "password", "dev", "test"}
_MIN_SECRET_LENGTH = 16

ENVIRONMENTS = ("development", "test", "production")
MAIL_TRANSPORTS = ("smtp", "console")
SMTP_SECURITY_MODES = ("none", "starttls", "tls")
EMAIL_SEND_MODES = ("background", "inline")


class SettingsError(ValueError):
    """Raised when the environment does not describe a runnable service."""


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment."""

    env: str = "development"
    database_url: str = DEFAULT_SQLITE_URL
    secret_key: str = DEV_SECRET
    public_base_url: str | None = None
    trusted_proxy_count: int = 0
    twilio_auth_token: str = DEV_SECRET
    portal_jwt_secret: str = DEV_SECRET
    pin_pepper: str = DEV_SECRET
    sendgrid_basic_user: str | None = None
    sendgrid_basic_password: str | None = None
    sendgrid_webhook_public_key: str | None = None
    mailgun_signing_key: str | None = None
    postmark_basic_user: str | None = None
    postmark_basic_password: str | None = None
    inbound_mime_token: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    mail_from: str = "support@example.com"
    # Email channel and the mailer (channels/email, router/mailer.py).
    mail_from_name: str = "Support"
    mail_transport: str | None = None  # smtp or console; unset: smtp in production, else console
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: str = "none"  # none, starttls or tls
    smtp_timeout_seconds: int = 10
    email_max_message_bytes: int = 25 * 1024 * 1024
    email_webhook_max_age_seconds: int = 300
    email_rejection_reply_hours: int = 24
    email_max_replies_per_hour: int = 10
    email_send_max_attempts: int = 8
    # background: a per-process thread sends replies after the webhook is answered; inline:
    # they are sent before it is answered (a slow mail server then holds the webhook).
    email_send_mode: str = "background"
    # Email sender verification (channels/email/authentication.py): the authserv-ids of the
    # receiving hosts whose Authentication-Results are believed, the domains staff write from,
    # and the cap on rejection replies across all senders. Comma-separated lists.
    email_trusted_authserv_ids: str | None = None
    email_staff_domains: str | None = None
    email_max_rejections_per_hour: int = 100
    hold_music_url: str | None = None
    # Chat and the portal's Contact Support form (channels/chat).
    portal_jwt_leeway_seconds: int = 30
    portal_token_max_lifetime_seconds: int = 3600
    chat_message_max_chars: int = 4000
    chat_max_messages: int = 500
    portal_text_max_chars: int = 20000
    help_center_url: str = "https://help.example.com"
    queue_wait_window_minutes: int = 120
    queue_wait_sample: int = 25
    policy_dir: Path = DEFAULT_POLICY_DIR
    log_level: str = "INFO"
    # Voice channel (channels/voice, ivr/). Twilio Webhooks SharedKey secrets as
    # "KEY_ID=SECRET[,KEY_ID=SECRET]" (two during a key rotation).
    twilio_shared_keys: str | None = None
    pin_tries_per_call: int = 3
    pin_lockout_failures: int = 10
    pin_lockout_window_seconds: int = 3600
    pin_lockout_seconds: int = 3600
    pin_alert_failures: int = 50
    pin_alert_window_seconds: int = 600
    # PIN checks across all calls and web processes (a token bucket in the database); the
    # alert rate applies while the failure-rate alert holds.
    pin_global_rate_per_minute: int = 60
    pin_global_burst: int = 20
    pin_alert_rate_per_minute: int = 12
    ivr_prompt_repeats: int = 2
    ivr_gather_timeout_seconds: int = 6
    # Serving (gunicorn.conf.py): threads per worker, and how long a client may take to send
    # a request (headers and body) before its connection is closed.
    web_threads: int = 8
    request_read_timeout_seconds: int = 10
    request_min_bytes_per_second: int = 32768
    # Scheduler process, SLA sweep and notifications (router/scheduler, router/services).
    sla_sweep_interval_seconds: int = 30
    sla_sweep_batch_size: int = 500
    scheduler_maintenance_interval_seconds: int = 300
    scheduler_stale_after_seconds: int = 300
    scheduler_lock_retry_seconds: int = 10
    scheduler_lock_key: int = 0x5EC0_4E11_0001  # PostgreSQL advisory lock key
    notify_webhook_secret: str | None = None
    notify_webhook_timeout_seconds: int = 5
    notify_max_attempts: int = 8
    metrics_cache_seconds: int = 5
    # Console log-in: lock-outs per email address, throttling per client address, sessions.
    console_login_lockout_failures: int = 5
    console_login_lockout_seconds: int = 300
    console_login_lockout_max_seconds: int = 3600
    console_login_ip_failures: int = 20
    console_login_ip_window_seconds: int = 600
    console_session_idle_minutes: int = 120
    console_session_max_hours: int = 12
    # Secrets production must be given; names are the environment variables.
    required_secrets: tuple[str, ...] = field(
        default=("SECRET_KEY", "PIN_PEPPER", "PORTAL_JWT_SECRET", "TWILIO_AUTH_TOKEN"),
        repr=False,
    )

    def __repr__(self) -> str:
        """Show the settings without any secret value."""
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name in _PUBLIC_FIELDS}
        return f"Settings({shown})"

    @property
    def is_production(self) -> bool:
        """Return True when running as a production service."""
        return self.env == "production"

    @property
    def effective_mail_transport(self) -> str:
        """Return the mail transport in use: MAIL_TRANSPORT, else smtp in production only."""
        return self.mail_transport or ("smtp" if self.is_production else "console")

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with some fields replaced (for tests and tools)."""
        return replace(self, **changes).validated()

    def validated(self) -> Settings:
        """Check the settings as a whole; raise SettingsError naming the variable."""
        if self.env not in ENVIRONMENTS:
            raise SettingsError(
                f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, not {self.env!r}"
            )
        if self.trusted_proxy_count < 0:
            raise SettingsError("TRUSTED_PROXY_COUNT must be 0 or more")
        self._validate_mail()
        if not 0 <= self.portal_jwt_leeway_seconds <= 300:
            raise SettingsError("PORTAL_JWT_LEEWAY_SECONDS must be between 0 and 300")
        if not 60 <= self.portal_token_max_lifetime_seconds <= 86400:
            raise SettingsError("PORTAL_TOKEN_MAX_LIFETIME_SECONDS must be between 60 and 86400")
        for variable in _POSITIVE:
            if getattr(self, _ENV_TO_FIELD[variable]) < 1:
                raise SettingsError(f"{variable} must be 1 or more")
        if not self.help_center_url.startswith(("http://", "https://")):
            raise SettingsError("HELP_CENTER_URL must start with http:// or https://")
        if not self.database_url.split(":", 1)[0].startswith(("sqlite", "postgresql")):
            raise SettingsError("DATABASE_URL must be a sqlite:// or postgresql:// URL")
        if self.public_base_url and not self.public_base_url.startswith(("http://", "https://")):
            raise SettingsError("PUBLIC_BASE_URL must start with http:// or https://")
        self._validate_voice()
        self._validate_server()
        self._validate_scheduler()
        self._validate_email_senders()
        self._validate_console()
        if self.is_production:
            for variable in self.required_secrets:
                value = getattr(self, _ENV_TO_FIELD[variable])
                if value in _KNOWN_WEAK:
                    raise SettingsError(
                        f"{variable} is missing or set to a default value; production needs a "
                        "real secret (or set APP_ENV=development for local use)"
                    )
                # HS256 keys shorter than the hash (32 bytes) weaken the portal tokens (RFC 7518).
                minimum = 32 if variable == "PORTAL_JWT_SECRET" else _MIN_SECRET_LENGTH
                if len(value) < minimum:
                    raise SettingsError(
                        f"{variable} is too short; use at least {minimum} characters"
                    )
            # Optional secrets switch a feature on; when one is set it must be a real secret.
            for variable in _OPTIONAL_SECRETS:
                value = getattr(self, _ENV_TO_FIELD[variable])
                if value is not None and (value in _KNOWN_WEAK or len(value) < _MIN_SECRET_LENGTH):
                    raise SettingsError(
                        f"{variable} is too weak; use at least {_MIN_SECRET_LENGTH} random "
                        "characters (or leave it unset to turn that feature off)"
                    )
            _check_secret_strength(self)
            if self.database_url == DEFAULT_SQLITE_URL:
                raise SettingsError("DATABASE_URL is missing; production needs a database URL")
        return self

    def _validate_mail(self) -> None:
        """Check the mailer and email channel settings."""
        if self.mail_transport not in (None, *MAIL_TRANSPORTS):
            raise SettingsError(f"MAIL_TRANSPORT must be one of {', '.join(MAIL_TRANSPORTS)}")
        if self.smtp_security not in SMTP_SECURITY_MODES:
            raise SettingsError(f"SMTP_SECURITY must be one of {', '.join(SMTP_SECURITY_MODES)}")
        if self.email_send_mode not in EMAIL_SEND_MODES:
            raise SettingsError(
                f"EMAIL_SEND_MODE must be one of {', '.join(EMAIL_SEND_MODES)}, "
                f"not {self.email_send_mode!r}"
            )
        if not 1 <= self.smtp_port <= 65535:
            raise SettingsError("SMTP_PORT must be between 1 and 65535")
        for variable in _EMAIL_POSITIVE:
            if getattr(self, _ENV_TO_FIELD[variable]) < 1:
                raise SettingsError(f"{variable} must be 1 or more")
        if bool(self.smtp_username) != bool(self.smtp_password):
            raise SettingsError("SMTP_USERNAME and SMTP_PASSWORD must be set together")
        if self.is_production and self.smtp_username and self.smtp_security == "none":
            raise SettingsError(
                "SMTP_SECURITY must be starttls or tls when SMTP_USERNAME is set in production "
                "(credentials are never sent in clear text)"
            )

    def _validate_scheduler(self) -> None:
        """Check the scheduler, SLA sweep and notification settings."""
        for variable, (lowest, highest) in _SCHEDULER_RANGES.items():
            value = getattr(self, _ENV_TO_FIELD[variable])
            if not lowest <= value <= highest:
                raise SettingsError(f"{variable} must be between {lowest} and {highest}")
        if self.scheduler_stale_after_seconds <= self.sla_sweep_interval_seconds:
            raise SettingsError(
                "SCHEDULER_STALE_AFTER_SECONDS must be longer than SLA_SWEEP_INTERVAL_SECONDS"
            )

    def _validate_console(self) -> None:
        """Check the console's log-in limits and session lifetimes."""
        for variable, (lowest, highest) in _CONSOLE_RANGES.items():
            value = getattr(self, _ENV_TO_FIELD[variable])
            if not lowest <= value <= highest:
                raise SettingsError(
                    f"{variable} must be between {lowest} and {highest}, not {value}"
                )
        if self.console_login_lockout_max_seconds < self.console_login_lockout_seconds:
            raise SettingsError(
                "CONSOLE_LOGIN_LOCKOUT_MAX_SECONDS must be at least CONSOLE_LOGIN_LOCKOUT_SECONDS"
            )
        if self.console_session_idle_minutes > self.console_session_max_hours * 60:
            raise SettingsError(
                "CONSOLE_SESSION_IDLE_MINUTES must not exceed CONSOLE_SESSION_MAX_HOURS"
            )

    def twilio_shared_key_secrets(self) -> dict[str, str]:
        """Return the Twilio SharedKey secrets by key id (empty when none are configured)."""
        secrets: dict[str, str] = {}
        for entry in (self.twilio_shared_keys or "").split(","):
            if not entry.strip():
                continue
            key_id, separator, secret = entry.strip().partition("=")
            if not separator or not key_id.strip() or not secret.strip():
                raise SettingsError(
                    "TWILIO_SHARED_KEYS must be KEY_ID=SECRET pairs, comma-separated"
                )
            secrets[key_id.strip()] = secret.strip()
        return secrets

    def _validate_voice(self) -> None:
        """Check the voice limits and shared keys, naming the variable at fault."""
        for variable, (low, high) in _VOICE_RANGES.items():
            value = getattr(self, _ENV_TO_FIELD[variable])
            if not low <= value <= high:
                raise SettingsError(f"{variable} must be between {low} and {high}, not {value}")
        if self.hold_music_url and not self.hold_music_url.startswith(("http://", "https://")):
            raise SettingsError("HOLD_MUSIC_URL must start with http:// or https://")
        secrets = self.twilio_shared_key_secrets()
        if self.is_production and any(len(s) < _MIN_SECRET_LENGTH for s in secrets.values()):
            raise SettingsError(
                "TWILIO_SHARED_KEYS has a secret that is too short; "
                f"use at least {_MIN_SECRET_LENGTH} characters"
            )
        if self.pin_alert_rate_per_minute > self.pin_global_rate_per_minute:
            raise SettingsError(
                "PIN_ALERT_RATE_PER_MINUTE must not exceed PIN_GLOBAL_RATE_PER_MINUTE"
            )
        # Without it the signed URL's host would come from the request's Host header.
        if self.is_production and not self.public_base_url:
            raise SettingsError(
                "PUBLIC_BASE_URL is missing; production needs the public URL Twilio calls "
                "and signs (e.g. https://support-router.example.com)"
            )
        if self.is_production and self.public_base_url:
            # Webhook bodies carry callers' keyed digits and customers' mail: only over TLS.
            parts = urlsplit(self.public_base_url)
            if parts.scheme != "https" or not parts.hostname:
                raise SettingsError(
                    "PUBLIC_BASE_URL must be an https:// URL with a host name in production "
                    "(e.g. https://support-router.example.com)"
                )

    def _validate_server(self) -> None:
        """Check the web server's threads and request read limits."""
        for variable, (low, high) in _SERVER_RANGES.items():
            value = getattr(self, _ENV_TO_FIELD[variable])
            if not low <= value <= high:
                raise SettingsError(f"{variable} must be between {low} and {high}, not {value}")

    @property
    def trusted_authserv_ids(self) -> frozenset[str]:
        """Return the authserv-ids whose Authentication-Results headers are believed."""
        return _name_list(self.email_trusted_authserv_ids)

    @property
    def staff_email_domains(self) -> frozenset[str]:
        """Return the domains whose verified staff mail records a first response."""
        return _name_list(self.email_staff_domains)

    def _validate_email_senders(self) -> None:
        """Check the sender-verification settings, naming the variable at fault."""
        for variable, names in (
            ("EMAIL_TRUSTED_AUTHSERV_IDS", self.trusted_authserv_ids),
            ("EMAIL_STAFF_DOMAINS", self.staff_email_domains),
        ):
            for name in names:
                if not _HOST_NAME.fullmatch(name):
                    raise SettingsError(
                        f"{variable} must be comma-separated host or domain names, not {name!r}"
                    )
        if not 0 <= self.email_max_rejections_per_hour <= 100_000:
            raise SettingsError("EMAIL_MAX_REJECTIONS_PER_HOUR must be between 0 and 100000")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for variable, (name, kind) in _VARIABLES.items():
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            values[name] = _convert(variable, raw, kind)
        if "database_url" in values:
            values["database_url"] = normalise_database_url(values["database_url"])
        if values.get("env") == "production" and "database_url" not in values:
            raise SettingsError("DATABASE_URL is missing; production needs a database URL")
        if values.get("env", "development") == "development":
            # `flask simulate email` plays this receiving host, so mail it sends to a local
            # instance is verified as a real MTA's would be; other environments trust no host
            # unless told.
            values.setdefault("email_trusted_authserv_ids", DEVELOPMENT_AUTHSERV_ID)
        return cls(**values).validated()


# The receiving host trusted by default in development (see Settings.from_env).
DEVELOPMENT_AUTHSERV_ID = "mx.router.localhost"

_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _name_list(value: str | None) -> frozenset[str]:
    """Return a comma-separated list of names, lower-case, blanks dropped."""
    return frozenset(item.strip().lower() for item in (value or "").split(",") if item.strip())


def normalise_database_url(url: str) -> str:
    """Map provider-style URLs (postgres://) to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


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
        if (value := getattr(settings, _ENV_TO_FIELD[variable])) is not None
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


def _convert(variable: str, raw: str, kind: type) -> Any:
    """Convert one variable's text to its type, naming the variable on failure."""
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{variable} must be a whole number, not {raw!r}") from None
    if kind is Path:
        path = Path(raw)
        if not path.is_dir():
            raise SettingsError(f"{variable} must name an existing directory, not {raw!r}")
        return path
    return raw


# Environment variable -> (field, type). The README's configuration table documents each one.
_VARIABLES: dict[str, tuple[str, type]] = {
    "APP_ENV": ("env", str),
    "DATABASE_URL": ("database_url", str),
    "SECRET_KEY": ("secret_key", str),
    "PUBLIC_BASE_URL": ("public_base_url", str),
    "TRUSTED_PROXY_COUNT": ("trusted_proxy_count", int),
    "TWILIO_AUTH_TOKEN": ("twilio_auth_token", str),
    "PORTAL_JWT_SECRET": ("portal_jwt_secret", str),
    "PIN_PEPPER": ("pin_pepper", str),
    "SENDGRID_BASIC_USER": ("sendgrid_basic_user", str),
    "SENDGRID_BASIC_PASSWORD": ("sendgrid_basic_password", str),
    "SENDGRID_WEBHOOK_PUBLIC_KEY": ("sendgrid_webhook_public_key", str),
    "MAILGUN_SIGNING_KEY": ("mailgun_signing_key", str),
    "POSTMARK_BASIC_USER": ("postmark_basic_user", str),
    "POSTMARK_BASIC_PASSWORD": ("postmark_basic_password", str),
    "INBOUND_MIME_TOKEN": ("inbound_mime_token", str),
    "SMTP_HOST": ("smtp_host", str),
    "SMTP_PORT": ("smtp_port", int),
    "MAIL_FROM": ("mail_from", str),
    "MAIL_FROM_NAME": ("mail_from_name", str),
    "MAIL_TRANSPORT": ("mail_transport", str),
    "SMTP_USERNAME": ("smtp_username", str),
    "SMTP_PASSWORD": ("smtp_password", str),
    "SMTP_SECURITY": ("smtp_security", str),
    "SMTP_TIMEOUT_SECONDS": ("smtp_timeout_seconds", int),
    "EMAIL_MAX_MESSAGE_BYTES": ("email_max_message_bytes", int),
    "EMAIL_WEBHOOK_MAX_AGE_SECONDS": ("email_webhook_max_age_seconds", int),
    "EMAIL_REJECTION_REPLY_HOURS": ("email_rejection_reply_hours", int),
    "EMAIL_MAX_REPLIES_PER_HOUR": ("email_max_replies_per_hour", int),
    "EMAIL_SEND_MAX_ATTEMPTS": ("email_send_max_attempts", int),
    "EMAIL_SEND_MODE": ("email_send_mode", str),
    "EMAIL_TRUSTED_AUTHSERV_IDS": ("email_trusted_authserv_ids", str),
    "EMAIL_STAFF_DOMAINS": ("email_staff_domains", str),
    "EMAIL_MAX_REJECTIONS_PER_HOUR": ("email_max_rejections_per_hour", int),
    "HOLD_MUSIC_URL": ("hold_music_url", str),
    "PORTAL_JWT_LEEWAY_SECONDS": ("portal_jwt_leeway_seconds", int),
    "PORTAL_TOKEN_MAX_LIFETIME_SECONDS": ("portal_token_max_lifetime_seconds", int),
    "CHAT_MESSAGE_MAX_CHARS": ("chat_message_max_chars", int),
    "CHAT_MAX_MESSAGES": ("chat_max_messages", int),
    "PORTAL_TEXT_MAX_CHARS": ("portal_text_max_chars", int),
    "HELP_CENTER_URL": ("help_center_url", str),
    "QUEUE_WAIT_WINDOW_MINUTES": ("queue_wait_window_minutes", int),
    "QUEUE_WAIT_SAMPLE": ("queue_wait_sample", int),
    "POLICY_DIR": ("policy_dir", Path),
    "LOG_LEVEL": ("log_level", str),
    "TWILIO_SHARED_KEYS": ("twilio_shared_keys", str),
    "PIN_TRIES_PER_CALL": ("pin_tries_per_call", int),
    "PIN_LOCKOUT_FAILURES": ("pin_lockout_failures", int),
    "PIN_LOCKOUT_WINDOW_SECONDS": ("pin_lockout_window_seconds", int),
    "PIN_LOCKOUT_SECONDS": ("pin_lockout_seconds", int),
    "PIN_ALERT_FAILURES": ("pin_alert_failures", int),
    "PIN_ALERT_WINDOW_SECONDS": ("pin_alert_window_seconds", int),
    "PIN_GLOBAL_RATE_PER_MINUTE": ("pin_global_rate_per_minute", int),
    "PIN_GLOBAL_BURST": ("pin_global_burst", int),
    "PIN_ALERT_RATE_PER_MINUTE": ("pin_alert_rate_per_minute", int),
    "WEB_THREADS": ("web_threads", int),
    "REQUEST_READ_TIMEOUT_SECONDS": ("request_read_timeout_seconds", int),
    "REQUEST_MIN_BYTES_PER_SECOND": ("request_min_bytes_per_second", int),
    "IVR_PROMPT_REPEATS": ("ivr_prompt_repeats", int),
    "IVR_GATHER_TIMEOUT_SECONDS": ("ivr_gather_timeout_seconds", int),
    "SLA_SWEEP_INTERVAL_SECONDS": ("sla_sweep_interval_seconds", int),
    "SLA_SWEEP_BATCH_SIZE": ("sla_sweep_batch_size", int),
    "SCHEDULER_MAINTENANCE_INTERVAL_SECONDS": ("scheduler_maintenance_interval_seconds", int),
    "SCHEDULER_STALE_AFTER_SECONDS": ("scheduler_stale_after_seconds", int),
    "SCHEDULER_LOCK_RETRY_SECONDS": ("scheduler_lock_retry_seconds", int),
    "SCHEDULER_LOCK_KEY": ("scheduler_lock_key", int),
    "NOTIFY_WEBHOOK_SECRET": ("notify_webhook_secret", str),
    "NOTIFY_WEBHOOK_TIMEOUT_SECONDS": ("notify_webhook_timeout_seconds", int),
    "NOTIFY_MAX_ATTEMPTS": ("notify_max_attempts", int),
    "METRICS_CACHE_SECONDS": ("metrics_cache_seconds", int),
    "CONSOLE_LOGIN_LOCKOUT_FAILURES": ("console_login_lockout_failures", int),
    "CONSOLE_LOGIN_LOCKOUT_SECONDS": ("console_login_lockout_seconds", int),
    "CONSOLE_LOGIN_LOCKOUT_MAX_SECONDS": ("console_login_lockout_max_seconds", int),
    "CONSOLE_LOGIN_IP_FAILURES": ("console_login_ip_failures", int),
    "CONSOLE_LOGIN_IP_WINDOW_SECONDS": ("console_login_ip_window_seconds", int),
    "CONSOLE_SESSION_IDLE_MINUTES": ("console_session_idle_minutes", int),
    "CONSOLE_SESSION_MAX_HOURS": ("console_session_max_hours", int),
}
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
_ENV_TO_FIELD = {variable: name for variable, (name, _) in _VARIABLES.items()}
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
_PUBLIC_FIELDS = {
    "env",
    "sla_sweep_interval_seconds",
    "sla_sweep_batch_size",
    "scheduler_maintenance_interval_seconds",
    "scheduler_stale_after_seconds",
    "scheduler_lock_retry_seconds",
    "scheduler_lock_key",
    "notify_webhook_timeout_seconds",
    "notify_max_attempts",
    "metrics_cache_seconds",
    "public_base_url",
    "trusted_proxy_count",
    "smtp_host",
    "smtp_port",
    "mail_from",
    "mail_from_name",
    "mail_transport",
    "smtp_security",
    "smtp_timeout_seconds",
    "email_max_message_bytes",
    "email_webhook_max_age_seconds",
    "email_rejection_reply_hours",
    "email_max_replies_per_hour",
    "email_send_max_attempts",
    "email_send_mode",
    "email_trusted_authserv_ids",
    "email_staff_domains",
    "email_max_rejections_per_hour",
    "hold_music_url",
    "portal_jwt_leeway_seconds",
    "portal_token_max_lifetime_seconds",
    "chat_message_max_chars",
    "chat_max_messages",
    "portal_text_max_chars",
    "help_center_url",
    "queue_wait_window_minutes",
    "queue_wait_sample",
    "policy_dir",
    "log_level",
    "pin_tries_per_call",
    "pin_lockout_failures",
    "pin_lockout_window_seconds",
    "pin_lockout_seconds",
    "pin_alert_failures",
    "pin_alert_window_seconds",
    "pin_global_rate_per_minute",
    "pin_global_burst",
    "pin_alert_rate_per_minute",
    "web_threads",
    "request_read_timeout_seconds",
    "request_min_bytes_per_second",
    "ivr_prompt_repeats",
    "ivr_gather_timeout_seconds",
    "console_login_lockout_failures",
    "console_login_lockout_seconds",
    "console_login_lockout_max_seconds",
    "console_login_ip_failures",
    "console_login_ip_window_seconds",
    "console_session_idle_minutes",
    "console_session_max_hours",
}
