"""Settings read once from the environment into a frozen, typed object.

The environment variables and their reading are in ``config.environment`` (the only reader of
``os.environ``); the checks a runnable, and in production a safe, service passes are in
``config.checks``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from config.checks import (
    EMAIL_SEND_MODES,
    ENVIRONMENTS,
    MAIL_TRANSPORTS,
    SMTP_SECURITY_MODES,
    check_settings,
)
from config.environment import (
    DEFAULT_POLICY_DIR,
    DEFAULT_SQLITE_URL,
    DEV_SECRET,
    DEVELOPMENT_AUTHSERV_ID,
    PROJECT_ROOT,
    SettingsError,
    normalise_database_url,
    read_environment,
)

__all__ = [
    "DEFAULT_POLICY_DIR",
    "DEFAULT_SQLITE_URL",
    "DEVELOPMENT_AUTHSERV_ID",
    "DEV_SECRET",
    "EMAIL_SEND_MODES",
    "ENVIRONMENTS",
    "MAIL_TRANSPORTS",
    "PROJECT_ROOT",
    "SMTP_SECURITY_MODES",
    "Settings",
    "SettingsError",
    "normalise_database_url",
]


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
    # How long an agent has to accept an offer of a contact, per channel (router/services/dispatch).
    offer_timeout_voice_seconds: int = 20
    offer_timeout_chat_seconds: int = 45
    offer_timeout_email_seconds: int = 120
    offer_timeout_portal_seconds: int = 120
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

    @property
    def trusted_authserv_ids(self) -> frozenset[str]:
        """Return the authserv-ids whose Authentication-Results headers are believed."""
        return _name_list(self.email_trusted_authserv_ids)

    @property
    def staff_email_domains(self) -> frozenset[str]:
        """Return the domains whose verified staff mail records a first response."""
        return _name_list(self.email_staff_domains)

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

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with some fields replaced (for tests and tools)."""
        return replace(self, **changes).validated()

    def validated(self) -> Settings:
        """Check the settings as a whole; raise SettingsError naming the variable."""
        check_settings(self)
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (``os.environ`` by default)."""
        return cls(**read_environment(environ)).validated()


def _name_list(value: str | None) -> frozenset[str]:
    """Return a comma-separated list of names, lower-case, blanks dropped."""
    return frozenset(item.strip().lower() for item in (value or "").split(",") if item.strip())


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
    "offer_timeout_voice_seconds",
    "offer_timeout_chat_seconds",
    "offer_timeout_email_seconds",
    "offer_timeout_portal_seconds",
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
