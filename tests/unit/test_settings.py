"""Settings come from the environment once, and production refuses weak secrets."""

from __future__ import annotations

import pytest

from config.settings import DEFAULT_SQLITE_URL, DEV_SECRET, Settings, SettingsError

STRONG = {
    "SECRET_KEY": "s" * 32,
    "PIN_PEPPER": "p" * 32,
    "PORTAL_JWT_SECRET": "j" * 32,
    "TWILIO_AUTH_TOKEN": "t" * 32,
    "DATABASE_URL": "postgres://user:pw@db.internal:5432/router",
}


def production(**changes: str) -> dict[str, str]:
    environ = {"APP_ENV": "production", **STRONG, **changes}
    return {key: value for key, value in environ.items() if value is not None}


def test_development_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.database_url == DEFAULT_SQLITE_URL
    assert settings.secret_key == DEV_SECRET
    assert settings.trusted_proxy_count == 0


def test_values_are_typed_and_urls_normalised() -> None:
    settings = Settings.from_env(production(TRUSTED_PROXY_COUNT="2", SMTP_PORT="2525"))
    assert settings.is_production
    assert settings.trusted_proxy_count == 2
    assert settings.smtp_port == 2525
    assert settings.database_url == "postgresql+psycopg://user:pw@db.internal:5432/router"


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.secret_key = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "variable", ["SECRET_KEY", "PIN_PEPPER", "PORTAL_JWT_SECRET", "TWILIO_AUTH_TOKEN"]
)
def test_production_refuses_a_missing_secret_and_names_it(variable: str) -> None:
    environ = production()
    del environ[variable]
    with pytest.raises(SettingsError, match=f"^{variable} is missing"):
        Settings.from_env(environ)


@pytest.mark.parametrize("weak", [DEV_SECRET, "changeme", "secret"])
def test_production_refuses_a_default_secret(weak: str) -> None:
    with pytest.raises(SettingsError, match="^PIN_PEPPER is missing or set to a default value"):
        Settings.from_env(production(PIN_PEPPER=weak))


def test_production_refuses_a_short_secret() -> None:
    with pytest.raises(SettingsError, match="^SECRET_KEY is too short"):
        Settings.from_env(production(SECRET_KEY="short-but-real"))


def test_production_needs_a_database_url() -> None:
    environ = production()
    del environ["DATABASE_URL"]
    with pytest.raises(SettingsError, match="^DATABASE_URL is missing"):
        Settings.from_env(environ)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TRUSTED_PROXY_COUNT", "two", "TRUSTED_PROXY_COUNT must be a whole number"),
        ("TRUSTED_PROXY_COUNT", "-1", "TRUSTED_PROXY_COUNT must be 0 or more"),
        ("SMTP_PORT", "25x", "SMTP_PORT must be a whole number"),
        ("APP_ENV", "staging", "APP_ENV must be one of"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL must be a sqlite:// or postgresql:// URL"),
        ("PUBLIC_BASE_URL", "router.example.com", "PUBLIC_BASE_URL must start with http"),
        ("POLICY_DIR", "/nonexistent/policy", "POLICY_DIR must name an existing directory"),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({variable: value})


def test_repr_shows_no_secret() -> None:
    settings = Settings.from_env(production(MAILGUN_SIGNING_KEY="mailgun-signing-secret"))
    shown = repr(settings)
    for secret in [*STRONG.values(), "mailgun-signing-secret", "pw@db.internal"]:
        assert secret not in shown
    assert "production" in shown


def test_portal_secret_needs_32_characters() -> None:
    with pytest.raises(SettingsError, match="^PORTAL_JWT_SECRET is too short; use at least 32"):
        Settings.from_env(production(PORTAL_JWT_SECRET="j" * 31))


@pytest.mark.parametrize(
    "variable",
    [
        "SENDGRID_BASIC_PASSWORD",
        "POSTMARK_BASIC_PASSWORD",
        "MAILGUN_SIGNING_KEY",
        "INBOUND_MIME_TOKEN",
    ],
)
def test_production_refuses_a_weak_provider_secret(variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable} is too weak"):
        Settings.from_env(production(**{variable: "test"}))
    assert Settings.from_env(production(**{variable: "x" * 24})).is_production
