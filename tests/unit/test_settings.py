"""Settings come from the environment once, and production refuses weak secrets."""

from __future__ import annotations

import pytest

from config.settings import DEFAULT_SQLITE_URL, DEV_SECRET, Settings, SettingsError

STRONG = {
    "SECRET_KEY": "Vq3xN8tR2kLm9ZpW4yHc7JdF6gBs1AeU",
    "PIN_PEPPER": "pepper-6Tf9Qw2Lx8Rk4Nm7Hc3Vb5Zj1Yd",
    "PORTAL_JWT_SECRET": "J4k8Pz2Wq6Xm9Rt3Vn7Hc5Lb1Fd0Gs8Ye",
    "TWILIO_AUTH_TOKEN": "9f8e2d4c6b1a3e5d7c9b0a2f4e6d8c1b",  # Twilio's form: 32 hex digits
    "DATABASE_URL": "postgres://user:pw@db.internal:5432/router",
    "PUBLIC_BASE_URL": "https://support-router.example.com",
}


PUBLIC = "https://support-router.example.com"


def production(**changes: str) -> dict[str, str]:
    environ = {"APP_ENV": "production", "PUBLIC_BASE_URL": PUBLIC, **STRONG, **changes}
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


def test_production_needs_the_public_base_url() -> None:
    # Without it the URL a Twilio signature is checked over would take its host from the
    # request's Host header, which the caller chooses.
    environ = production()
    del environ["PUBLIC_BASE_URL"]
    with pytest.raises(SettingsError, match="^PUBLIC_BASE_URL is missing"):
        Settings.from_env(environ)
    assert Settings.from_env(production()).public_base_url == PUBLIC
    for weak in ("http://support-router.example.com", "https://", "https:///path"):
        with pytest.raises(SettingsError, match="^PUBLIC_BASE_URL must be an https:// URL"):
            Settings.from_env({**production(), "PUBLIC_BASE_URL": weak})


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
        ("WEB_THREADS", "0", "WEB_THREADS must be between 1 and 256"),
        ("REQUEST_READ_TIMEOUT_SECONDS", "0", "REQUEST_READ_TIMEOUT_SECONDS must be between"),
        ("REQUEST_MIN_BYTES_PER_SECOND", "0", "REQUEST_MIN_BYTES_PER_SECOND must be between"),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({variable: value})


def test_repr_shows_no_secret() -> None:
    settings = Settings.from_env(production(MAILGUN_SIGNING_KEY="mailgun-signing-secret"))
    shown = repr(settings)
    secrets = [value for name, value in STRONG.items() if name != "PUBLIC_BASE_URL"]
    for secret in [*secrets, "mailgun-signing-secret", "pw@db.internal"]:
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
    assert Settings.from_env(production(**{variable: "x7Kp2Qm9Rt4Wz8Ln3Vc6Hb1J"})).is_production


# -- secret strength in production (issue 12, item 8) -------------------------------------------

REQUIRED_SECRETS = ["SECRET_KEY", "PIN_PEPPER", "PORTAL_JWT_SECRET", "TWILIO_AUTH_TOKEN"]
OPTIONAL_SECRETS = [
    "SENDGRID_BASIC_PASSWORD",
    "POSTMARK_BASIC_PASSWORD",
    "MAILGUN_SIGNING_KEY",
    "INBOUND_MIME_TOKEN",
    "NOTIFY_WEBHOOK_SECRET",
]


@pytest.mark.parametrize(
    ("weak", "words"),
    [
        (" " * 40, "is only whitespace"),
        ("\t \n" * 12, "is only whitespace"),
        ("a" * 40, "uses only 1 different characters"),
        ("abababababababababababababababab12", "uses only 4 different characters"),
        ("passwordpasswordpasswordpassword", "repeats a short sequence"),
        ("Secret-123Secret-123Secret-123Secret-123", "repeats a short sequence"),
        ("a" * 30 + "bcdefg", "has too little entropy"),
        ("  " + STRONG["SECRET_KEY"], "starts or ends with whitespace"),
        (STRONG["SECRET_KEY"] + "\n", "starts or ends with whitespace"),
    ],
)
@pytest.mark.parametrize("variable", REQUIRED_SECRETS)
def test_production_refuses_a_low_entropy_secret(variable: str, weak: str, words: str) -> None:
    if variable == "SECRET_KEY" and weak.strip() == STRONG["SECRET_KEY"]:
        weak = weak.replace(STRONG["SECRET_KEY"], "Zr5Tq8Wn2Km6Xp9Lv3Hc7Jb4Fd1Gs0Ya")
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(production(**{variable: weak}))
    message = str(refused.value)
    assert message.startswith(f"{variable} {words}")
    assert not weak.strip() or weak.strip() not in message


@pytest.mark.parametrize("variable", OPTIONAL_SECRETS)
def test_production_refuses_a_low_entropy_provider_secret(variable: str) -> None:
    for weak in ("z" * 24, " " * 24, "key-key-key-key-key-key-"):
        with pytest.raises(SettingsError, match=f"^{variable} (uses only|is only|repeats)"):
            Settings.from_env(production(**{variable: weak}))


def test_production_refuses_a_low_entropy_twilio_shared_key() -> None:
    with pytest.raises(SettingsError, match=r"^TWILIO_SHARED_KEYS \(key_b\) uses only 1"):
        Settings.from_env(
            production(TWILIO_SHARED_KEYS=f"key_a={STRONG['SECRET_KEY'][::-1]},key_b={'k' * 24}")
        )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("SECRET_KEY", "PORTAL_JWT_SECRET"),  # the portal team could forge console sessions
        ("SECRET_KEY", "PIN_PEPPER"),
        ("PIN_PEPPER", "TWILIO_AUTH_TOKEN"),
        ("PORTAL_JWT_SECRET", "TWILIO_AUTH_TOKEN"),
        ("SECRET_KEY", "TWILIO_AUTH_TOKEN"),
    ],
)
def test_production_refuses_one_value_for_two_secrets(first: str, second: str) -> None:
    shared = "Rk4Tz8Qm2Wp6Xn9Lv3Hc7Jb5Fd1Gs0YaE"
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(production(**{first: shared, second: shared}))
    message = str(refused.value)
    assert message == f"{first} and {second} have the same value; every secret must be different"
    assert shared not in message


@pytest.mark.parametrize(
    "variable", [*OPTIONAL_SECRETS, "SMTP_PASSWORD", "TWILIO_SHARED_KEYS (current)"]
)
def test_production_refuses_a_provider_secret_reusing_a_core_secret(variable: str) -> None:
    reused = STRONG["PIN_PEPPER"].upper()  # case and surrounding whitespace do not disguise it
    if variable.startswith("TWILIO_SHARED_KEYS"):
        extra = {"TWILIO_SHARED_KEYS": f"current={reused}"}
    elif variable == "SMTP_PASSWORD":
        extra = {"SMTP_USERNAME": "router", "SMTP_PASSWORD": reused, "SMTP_SECURITY": "tls"}
    else:
        extra = {variable: f" {reused} " if variable != "MAILGUN_SIGNING_KEY" else reused}
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(production(**extra))
    message = str(refused.value)
    if "whitespace" not in message:
        assert message.startswith(f"PIN_PEPPER and {variable} have the same value")
    assert reused.strip() not in message and reused.strip().lower() not in message


def test_production_refuses_two_provider_secrets_with_one_value() -> None:
    shared = "Pw5Kx9Qz3Tm7Rn2Lv8Hc4Jb6Fd"
    with pytest.raises(SettingsError, match="^SENDGRID_BASIC_PASSWORD and POSTMARK_BASIC_PASSWORD"):
        Settings.from_env(
            production(SENDGRID_BASIC_PASSWORD=shared, POSTMARK_BASIC_PASSWORD=shared)
        )


@pytest.mark.parametrize(
    "value",
    [
        "0f5a9c3e7b1d2f4a",  # 16 random hex digits (`openssl rand -hex 8`)
        "3c8e1f0b9a7d2c6e4f1a0b8c7d3e9f2a",  # Twilio's auth-token form
        "key-6e2b8d4f0a1c3e5b7d9f1a3c5e7b9d0f",  # Mailgun's form
        "Fh2-Ls9_Qa0xWp4tRk7Bn3Vm8Yc1Zd6E",  # secrets.token_urlsafe(24)
        "correct horse battery staple orbit",  # a passphrase
    ],
)
def test_production_accepts_random_secrets(value: str) -> None:
    assert Settings.from_env(production(NOTIFY_WEBHOOK_SECRET=value)).is_production


def test_weak_and_reused_secrets_are_fine_outside_production() -> None:
    for env in ("development", "test"):
        settings = Settings.from_env(
            {
                "APP_ENV": env,
                "SECRET_KEY": "a" * 32,
                "PIN_PEPPER": "a" * 32,
                "INBOUND_MIME_TOKEN": " ",
            }
        )
        assert settings.secret_key == settings.pin_pepper


def test_development_trusts_the_simulators_receiving_host_only_by_default() -> None:
    development = Settings.from_env({"APP_ENV": "development"})
    assert development.trusted_authserv_ids == frozenset({"mx.router.localhost"})
    chosen = Settings.from_env({"APP_ENV": "development", "EMAIL_TRUSTED_AUTHSERV_IDS": "mx.a"})
    assert chosen.trusted_authserv_ids == frozenset({"mx.a"})
    assert Settings.from_env({"APP_ENV": "test"}).trusted_authserv_ids == frozenset()
