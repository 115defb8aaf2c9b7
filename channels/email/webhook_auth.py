"""Webhook credentials: HTTP Basic and bearer checks, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac


class WebhookAuthError(Exception):
    """The request is not from the provider (answered with 401 and the reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_basic(header: str | None, user: str, password: str) -> None:
    """Raise WebhookAuthError unless ``header`` carries exactly these Basic credentials."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise WebhookAuthError("HTTP Basic credentials are required")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise WebhookAuthError("HTTP Basic credentials are not readable") from None
    given_user, _, given_password = decoded.partition(":")
    # Compare both, always: the time taken says nothing about which one was wrong.
    user_ok = hmac.compare_digest(given_user.encode(), user.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    if not (user_ok and password_ok):
        raise WebhookAuthError("wrong HTTP Basic credentials")


def check_bearer(header: str | None, token: str) -> None:
    """Raise WebhookAuthError unless ``header`` is 'Bearer <token>'."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise WebhookAuthError("a bearer token is required (Authorization: Bearer <token>)")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise WebhookAuthError("wrong bearer token")
