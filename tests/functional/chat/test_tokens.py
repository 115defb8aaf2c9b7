"""Portal token verification (pure): pinned algorithm, required claims, expiry with leeway,
maximum lifetime; and the lifetime limit over HTTP."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from channels.chat.service import ChatService
from channels.chat.tokens import (
    DEFAULT_MAX_LIFETIME,
    MAX_TOKEN_LENGTH,
    PortalClaims,
    TokenError,
    bearer_token,
    mint_portal_token,
    verify_portal_token,
)
from config import Settings
from router.store.db import Database
from tests.functional.chat.conftest import FRIDAY, Portal, counts, raw_token

SECRET = "unit-test-portal-secret-0123456789abcdef"
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
LEEWAY = timedelta(seconds=30)


def verify(token: str, *, now: datetime = NOW, secret: str = SECRET) -> PortalClaims:
    return verify_portal_token(token, secret=secret, now=now, leeway=LEEWAY)


def encode(claims: dict[str, object], *, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def forged(header: dict[str, object], claims: dict[str, object], signature: bytes = b"sig") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature)]
    )


def claims(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "sub": "alice@acme.example",
        "org": "acme",
        "exp": int((NOW + timedelta(minutes=5)).timestamp()),
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def reason(token: str, **kwargs: object) -> str:
    with pytest.raises(TokenError) as caught:
        verify(token, **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def test_a_minted_token_verifies() -> None:
    token = mint_portal_token(
        secret=SECRET, admin_email="Alice@Acme.example", account_id="acme", now=NOW
    )
    assert verify(token) == PortalClaims(
        admin_email="alice@acme.example",
        account_id="acme",
        expires_at=NOW + timedelta(minutes=5),
    )


def test_expiry_allows_a_small_clock_skew() -> None:
    exp = int(NOW.timestamp())
    assert verify(encode(claims(exp=exp)), now=NOW + timedelta(seconds=29)).account_id == "acme"
    assert reason(encode(claims(exp=exp)), now=NOW + timedelta(seconds=30)) == "expired"
    assert reason(encode(claims(exp=exp - 3600))) == "expired"


def test_not_before_and_issued_at_in_the_future_are_refused() -> None:
    later = int((NOW + timedelta(minutes=2)).timestamp())
    assert reason(encode(claims(nbf=later))) == "not_yet_valid"
    assert reason(encode(claims(iat=later))) == "not_yet_valid"
    slightly = int((NOW + timedelta(seconds=10)).timestamp())
    assert verify(encode(claims(iat=slightly, nbf=slightly))).account_id == "acme"


def test_wrong_secret_is_refused() -> None:
    assert reason(encode(claims(), secret="another-secret-0123456789abcdef-xyz")) == "bad_signature"


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_refused_even_with_the_right_secret(algorithm: str) -> None:
    assert reason(encode(claims(), algorithm=algorithm, secret=SECRET * 2)) == "wrong_algorithm"


def test_alg_none_is_refused() -> None:
    unsigned = forged({"alg": "none", "typ": "JWT"}, claims(), signature=b"")
    assert reason(unsigned) == "wrong_algorithm"
    assert reason(forged({"alg": "None"}, claims())) == "wrong_algorithm"


def test_public_key_algorithms_are_refused_before_any_key_is_used() -> None:
    assert reason(forged({"alg": "RS256", "typ": "JWT"}, claims())) == "wrong_algorithm"
    assert reason(forged({"typ": "JWT"}, claims())) == "wrong_algorithm"


@pytest.mark.parametrize("missing", ["sub", "org", "exp"])
def test_required_claims(missing: str) -> None:
    assert reason(encode(claims(**{missing: None}))) == "missing_claim"


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": "tomorrow"},
        {"exp": True},
        {"exp": 10**30},
        {"sub": 42},
        {"sub": "not-an-email"},
        {"org": ""},
        {"org": ["acme"]},
        {"nbf": "soon"},
    ],
)
def test_malformed_claims_are_refused(changes: dict[str, object]) -> None:
    assert reason(encode(claims(**changes))) == "invalid_claim"


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "x" * (MAX_TOKEN_LENGTH + 1)])
def test_garbage_is_malformed(token: str) -> None:
    assert reason(token) == "malformed_token"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("BEARER abc", "abc")],
)
def test_bearer_header(header: str, expected: str) -> None:
    assert bearer_token(header) == expected


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic YTpi", "abc"])
def test_bearer_header_refused(header: str | None) -> None:
    with pytest.raises(TokenError) as caught:
        bearer_token(header)
    assert caught.value.reason == "missing_token"


# -- maximum lifetime (issue 12, item 13) --------------------------------------------------------

YEAR_9999 = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())


def test_a_token_valid_until_the_year_9999_is_refused() -> None:
    assert reason(encode(claims(exp=YEAR_9999))) == "lifetime_too_long"
    assert reason(encode(claims(exp=YEAR_9999, iat=int(NOW.timestamp())))) == "lifetime_too_long"


def test_lifetime_is_exp_minus_iat_when_the_token_has_iat() -> None:
    issued = int(NOW.timestamp()) - 600
    hour = int(DEFAULT_MAX_LIFETIME.total_seconds())
    assert verify(encode(claims(iat=issued, exp=issued + hour))).account_id == "acme"
    assert reason(encode(claims(iat=issued, exp=issued + hour + 1))) == "lifetime_too_long"
    # An iat long past does not stretch a token: it is measured from iat, not from now.
    assert reason(encode(claims(iat=issued - 86400, exp=issued + 660))) == "lifetime_too_long"


def test_lifetime_is_what_is_left_of_it_without_iat() -> None:
    start = int(NOW.timestamp())
    hour = int(DEFAULT_MAX_LIFETIME.total_seconds())
    # Clock skew is allowed here (now is the service's clock), as for exp itself.
    assert verify(encode(claims(exp=start + hour + 30))).account_id == "acme"
    assert reason(encode(claims(exp=start + hour + 31))) == "lifetime_too_long"


def test_the_maximum_lifetime_is_a_parameter() -> None:
    day = encode(claims(iat=int(NOW.timestamp()), exp=int(NOW.timestamp()) + 86400))
    assert reason(day) == "lifetime_too_long"
    verified = verify_portal_token(
        day, secret=SECRET, now=NOW, leeway=LEEWAY, max_lifetime=timedelta(days=1)
    )
    assert verified.expires_at == NOW + timedelta(days=1)
    with pytest.raises(TokenError, match="longer than the 5 minutes allowed"):
        verify_portal_token(
            encode(claims(exp=int(NOW.timestamp()) + 600)),
            secret=SECRET,
            now=NOW,
            leeway=LEEWAY,
            max_lifetime=timedelta(minutes=5),
        )


LONG_LIVED = {
    "year 9999": lambda now: {"exp": YEAR_9999},
    "year 9999 with iat": lambda now: {"iat": now, "exp": YEAR_9999},
    "two hours": lambda now: {"iat": now, "exp": now + 7200},
    "two hours, no iat": lambda now: {"exp": now + 7200},
}


@pytest.mark.parametrize("shape", LONG_LIVED, ids=list(LONG_LIVED))
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat/sessions", {"topic": "windows", "subject": "Agent will not start"}),
        ("/portal/requests", {"topic": "windows", "subject": "Agent down", "description": "x"}),
    ],
)
def test_long_lived_tokens_get_401_over_http(
    portal: Portal, db: Database, shape: str, path: str, body: dict[str, str]
) -> None:
    now = int(FRIDAY.timestamp())
    token = raw_token({"sub": "alice@acme.example", "org": "acme", **LONG_LIVED[shape](now)})
    response = portal.post(path, body, token=token)
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["reason"] == "lifetime_too_long"
    assert 'error_description="lifetime_too_long"' in response.headers["WWW-Authenticate"]
    assert counts(db) == (0, 0)
    # An hour-long token from the same portal is accepted.
    hour = raw_token({"sub": "alice@acme.example", "org": "acme", "iat": now, "exp": now + 3600})
    assert portal.post(path, body, token=hour).status_code == 201


def test_portal_token_lifetime_is_configurable(
    service: ChatService, settings: Settings, portal: Portal
) -> None:
    assert Settings.from_env({}).portal_token_max_lifetime_seconds == 3600
    day = Settings.from_env({"PORTAL_TOKEN_MAX_LIFETIME_SECONDS": "86400"})
    assert day.portal_token_max_lifetime_seconds == 86400
    for bad in ("59", "86401"):
        with pytest.raises(ValueError, match="PORTAL_TOKEN_MAX_LIFETIME_SECONDS must be between"):
            Settings.from_env({"PORTAL_TOKEN_MAX_LIFETIME_SECONDS": bad})
    now = int(FRIDAY.timestamp())
    token = raw_token({"sub": "alice@acme.example", "org": "acme", "iat": now, "exp": now + 7200})
    body = {"topic": "windows", "subject": "Agent will not start"}
    assert portal.post("/chat/sessions", body, token=token).status_code == 401
    service.settings = settings.with_overrides(portal_token_max_lifetime_seconds=7200)
    assert portal.post("/chat/sessions", body, token=token).status_code == 201
