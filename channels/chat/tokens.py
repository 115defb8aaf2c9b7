"""Portal tokens: HS256 JWTs the admin portal signs to vouch for an administrator (SPEC 4.3).

Pure: no Flask, no database. ``now`` is an argument, so expiry is checked against the same
clock as everything else (and tests can fix it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "org", "exp")
# A token is a bearer credential; anything this long is not one the portal made.
MAX_TOKEN_LENGTH = 4096
# The longest a token may be valid for (PORTAL_TOKEN_MAX_LIFETIME_SECONDS): a leaked token with
# `exp` in the year 9999 would otherwise open chats as its admin for ever.
DEFAULT_MAX_LIFETIME = timedelta(hours=1)


class TokenError(Exception):
    """The portal token is not acceptable; ``reason`` is a stable code, ``message`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


@dataclass(frozen=True)
class PortalClaims:
    """Who the portal vouches for: an admin's email (``sub``) acting for account ``org``."""

    admin_email: str
    account_id: str
    expires_at: datetime


def bearer_token(authorization: str | None) -> str:
    """Return the token of an ``Authorization: Bearer <token>`` header, or raise TokenError."""
    if not authorization:
        raise TokenError("missing_token", "send the portal token as Authorization: Bearer <token>")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenError("missing_token", "the Authorization header must be 'Bearer <token>'")
    return token


def verify_portal_token(
    token: str,
    *,
    secret: str,
    now: datetime,
    leeway: timedelta,
    max_lifetime: timedelta = DEFAULT_MAX_LIFETIME,
) -> PortalClaims:
    """Verify ``token`` (signature, algorithm, required claims, expiry, lifetime); return claims.

    The lifetime is ``exp - iat`` when the token says when it was issued (an ``iat`` later than
    now is refused, so this also bounds how far ahead ``exp`` may lie), and otherwise what is
    left of it, ``exp - now``, allowing ``leeway`` for clock skew there only.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("malformed_token", "the token is too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise TokenError("malformed_token", "the token is not a JWT") from None
    # The algorithm is pinned: `none`, other HMAC sizes and public-key algorithms are refused
    # before any key is used, so a token cannot choose how it is checked.
    if header.get("alg") != ALGORITHM:
        raise TokenError("wrong_algorithm", f"the token must be signed with {ALGORITHM}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            # Times are checked below against the caller's clock, not the process's.
            options={
                "require": list(REQUIRED_CLAIMS),
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidAlgorithmError:
        raise TokenError("wrong_algorithm", f"the token must be signed with {ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise TokenError("bad_signature", "the token's signature does not verify") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError("missing_claim", f"the token has no {exc.claim!r} claim") from None
    except jwt.DecodeError:
        raise TokenError("malformed_token", "the token cannot be decoded") from None
    except jwt.InvalidTokenError as exc:
        # PyJWT checks some registered claims' types itself (e.g. a non-string `sub`).
        raise TokenError("invalid_claim", f"the token's claims are not valid: {exc}") from None

    now = now.astimezone(UTC)
    slack = leeway.total_seconds()
    instant = now.timestamp()
    exp = _numeric_date(claims, "exp")
    if instant >= exp + slack:
        raise TokenError("expired", "the token has expired; get a new one from the portal")
    if "nbf" in claims and instant < _numeric_date(claims, "nbf") - slack:
        raise TokenError("not_yet_valid", "the token is not valid yet")
    if "iat" in claims and instant < _numeric_date(claims, "iat") - slack:
        raise TokenError("not_yet_valid", "the token was issued in the future")
    admin_email = _text_claim(claims, "sub").lower()
    if "@" not in admin_email:
        raise TokenError("invalid_claim", "the 'sub' claim must be an administrator's email")
    try:
        expires_at = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        raise TokenError("invalid_claim", "the 'exp' claim is out of range") from None
    limit = max_lifetime.total_seconds()
    if "iat" in claims:
        too_long = exp - _numeric_date(claims, "iat") > limit
    else:
        too_long = exp - instant > limit + slack
    if too_long:
        raise TokenError(
            "lifetime_too_long",
            f"the token is valid for longer than the {_duration(max_lifetime)} allowed; "
            "the portal must issue short-lived tokens",
        )
    return PortalClaims(
        admin_email=admin_email, account_id=_text_claim(claims, "org"), expires_at=expires_at
    )


def mint_portal_token(
    *,
    secret: str,
    admin_email: str,
    account_id: str,
    now: datetime,
    ttl: timedelta = timedelta(minutes=5),
    extra: dict[str, Any] | None = None,
) -> str:
    """Sign a portal token as the admin portal does (the simulator and tests use this)."""
    issued = math.floor(now.timestamp())
    claims: dict[str, Any] = {
        "sub": admin_email,
        "org": account_id,
        "iat": issued,
        "exp": issued + math.floor(ttl.total_seconds()),
        **(extra or {}),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _numeric_date(claims: dict[str, Any], name: str) -> float:
    value = claims[name]
    # bool is an int in Python; a JSON true is not a date.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenError("invalid_claim", f"the {name!r} claim must be a NumericDate")
    return float(value)


def _duration(span: timedelta) -> str:
    seconds = math.floor(span.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour{'s' if seconds != 3600 else ''}"
    if seconds % 60 == 0:
        return f"{seconds // 60} minute{'s' if seconds != 60 else ''}"
    return f"{seconds} seconds"


def _text_claim(claims: dict[str, Any], name: str) -> str:
    value = claims[name]
    if not isinstance(value, str) or not value.strip() or len(value) > 320:
        raise TokenError("invalid_claim", f"the {name!r} claim must be a non-empty string")
    return value.strip()
