"""The environment variables the service reads, their development stand-ins, and reading them.

This module is the only reader of ``os.environ`` in the project.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POLICY_DIR = Path(__file__).resolve().parent / "policy"
DEFAULT_SQLITE_URL = f"sqlite:///{PROJECT_ROOT / 'instance' / 'router.sqlite3'}"

# Development stand-ins; production refuses every one of them.
DEV_SECRET = "dev-only-not-secret"

# The receiving host trusted by default in development (see read_environment).
DEVELOPMENT_AUTHSERV_ID = "mx.router.localhost"


class SettingsError(ValueError):
    """Raised when the environment does not describe a runnable service."""


def read_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the Settings field values the environment sets (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for variable, (name, kind) in VARIABLES.items():
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
    return values


def normalise_database_url(url: str) -> str:
    """Map provider-style URLs (postgres://) to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


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
VARIABLES: dict[str, tuple[str, type]] = {
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
    "OFFER_TIMEOUT_VOICE_SECONDS": ("offer_timeout_voice_seconds", int),
    "OFFER_TIMEOUT_CHAT_SECONDS": ("offer_timeout_chat_seconds", int),
    "OFFER_TIMEOUT_EMAIL_SECONDS": ("offer_timeout_email_seconds", int),
    "OFFER_TIMEOUT_PORTAL_SECONDS": ("offer_timeout_portal_seconds", int),
    "CONSOLE_LOGIN_LOCKOUT_FAILURES": ("console_login_lockout_failures", int),
    "CONSOLE_LOGIN_LOCKOUT_SECONDS": ("console_login_lockout_seconds", int),
    "CONSOLE_LOGIN_LOCKOUT_MAX_SECONDS": ("console_login_lockout_max_seconds", int),
    "CONSOLE_LOGIN_IP_FAILURES": ("console_login_ip_failures", int),
    "CONSOLE_LOGIN_IP_WINDOW_SECONDS": ("console_login_ip_window_seconds", int),
    "CONSOLE_SESSION_IDLE_MINUTES": ("console_session_idle_minutes", int),
    "CONSOLE_SESSION_MAX_HOURS": ("console_session_max_hours", int),
}
# Environment variable -> Settings field, for messages and checks that name the variable.
FIELD_OF = {variable: name for variable, (name, _) in VARIABLES.items()}
