"""Settings read once from the environment into a frozen, typed object.

This module is the only reader of ``os.environ`` in the project.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POLICY_DIR = Path(__file__).resolve().parent / "policy"
DEFAULT_SQLITE_URL = f"sqlite:///{PROJECT_ROOT / 'instance' / 'router.sqlite3'}"

# Development stand-ins; production refuses every one of them.
DEV_SECRET = "dev-only-not-secret"
_KNOWN_WEAK = {DEV_SECRET, "", "changeme", "change-me", "secret", "password", "dev", "test"}
_MIN_SECRET_LENGTH = 16

ENVIRONMENTS = ("development", "test", "production")


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
    hold_music_url: str | None = None
    policy_dir: Path = DEFAULT_POLICY_DIR
    log_level: str = "INFO"
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
        if not self.database_url.split(":", 1)[0].startswith(("sqlite", "postgresql")):
            raise SettingsError("DATABASE_URL must be a sqlite:// or postgresql:// URL")
        if self.public_base_url and not self.public_base_url.startswith(("http://", "https://")):
            raise SettingsError("PUBLIC_BASE_URL must start with http:// or https://")
        if self.is_production:
            for variable in self.required_secrets:
                value = getattr(self, _ENV_TO_FIELD[variable])
                if value in _KNOWN_WEAK:
                    raise SettingsError(
                        f"{variable} is missing or set to a default value; production needs a "
                        "real secret (or set APP_ENV=development for local use)"
                    )
                if len(value) < _MIN_SECRET_LENGTH:
                    raise SettingsError(
                        f"{variable} is too short; use at least {_MIN_SECRET_LENGTH} characters"
                    )
            if self.database_url == DEFAULT_SQLITE_URL:
                raise SettingsError("DATABASE_URL is missing; production needs a database URL")
        return self

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
        return cls(**values).validated()


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
    "HOLD_MUSIC_URL": ("hold_music_url", str),
    "POLICY_DIR": ("policy_dir", Path),
    "LOG_LEVEL": ("log_level", str),
}
_ENV_TO_FIELD = {variable: name for variable, (name, _) in _VARIABLES.items()}
_PUBLIC_FIELDS = {
    "env",
    "public_base_url",
    "trusted_proxy_count",
    "smtp_host",
    "smtp_port",
    "mail_from",
    "hold_music_url",
    "policy_dir",
    "log_level",
}
