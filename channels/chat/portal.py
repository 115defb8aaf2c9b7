"""Who a portal request is from: the token's claims, the administrator they name, and refusals.

The token is verified without touching the store; the admin it names is checked by intake
(``identify_admin``) in the transaction that stores, so nobody else's contact is ever stored.
Every refusal is the same 401, with a stable ``reason`` the portal can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from channels.chat import idempotency
from channels.chat.tokens import PortalClaims, TokenError, bearer_token, verify_portal_token
from config.settings import Settings
from router.core.domain import Channel, ContactStatus
from router.intake import (
    ContactRequest,
    FollowUp,
    IdentityError,
    IntakeMode,
    IntakeResult,
    IntakeService,
    Sender,
    identify_admin,
)
from router.services.errors import ServiceError

# Intake's reasons, as the portal is told them (the token was fine; the person is not).
_IDENTITY_REASONS = {
    "not_an_admin": ("unknown_admin", "no administrator has this email address"),
    "inactive_admin": ("inactive_admin", "this administrator is not active"),
    "not_admin_of_account": ("wrong_org", "this administrator cannot act for this account"),
    "unknown_account": ("wrong_org", "this administrator cannot act for this account"),
}


class AuthError(ServiceError):
    """The portal token or the person it names is refused (401); ``reason`` is a stable code."""

    status = 401

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason

    def challenge(self) -> str:
        """Return the WWW-Authenticate challenge that names the reason (never the token)."""
        return f'Bearer realm="portal", error="invalid_token", error_description="{self.reason}"'


@dataclass(frozen=True)
class PortalUser:
    """An active administrator the portal vouched for, acting for ``account_id``."""

    admin_id: int
    admin_email: str
    account_id: str
    via_partner_id: str | None


def verify(authorization: str | None, settings: Settings, now: datetime) -> PortalClaims:
    """Verify the portal token alone (signature, algorithm, claims, expiry); no store access."""
    try:
        return verify_portal_token(
            bearer_token(authorization),
            secret=settings.portal_jwt_secret,
            now=now,
            leeway=timedelta(seconds=settings.portal_jwt_leeway_seconds),
            max_lifetime=timedelta(seconds=settings.portal_token_max_lifetime_seconds),
        )
    except TokenError as exc:
        raise AuthError(exc.reason, exc.message) from None


def portal_user(session: Session, claims: PortalClaims) -> PortalUser:
    """Return the active admin ``claims`` name, acting for its org; raise AuthError if none."""
    try:
        identity = identify_admin(
            session, account_id=claims.account_id, admin_email=claims.admin_email
        )
    except IdentityError as exc:
        raise refusal(exc.reason) from None
    assert identity.admin is not None  # the token names an admin
    return PortalUser(
        admin_id=identity.admin.id,
        admin_email=identity.admin.email,
        account_id=identity.account.id,
        via_partner_id=identity.via_partner.id if identity.via_partner else None,
    )


def check_replayer(session: Session, claims: PortalClaims, result: IntakeResult) -> None:
    """Answer a retried request only to an admin who may still act for the account."""
    portal_user(session, claims)
    if result.status is ContactStatus.REJECTED:
        raise refusal(result.reason or "not_an_admin")


def contact_request(
    channel: Channel, claims: PortalClaims, key: str | None, now: datetime, **fields: Any
) -> ContactRequest:
    """Return the contact request of what the token's admin sent, for intake to check."""
    return ContactRequest(
        channel=channel,
        external_id=idempotency.external_id(channel, claims, key),
        received_at=now,
        sender=Sender(account_id=claims.account_id, admin_email=claims.admin_email),
        # Intake checks the admin the token names; anyone else is refused, not stored.
        mode=IntakeMode.AUTHENTICATED,
        **fields,
    )


def intake_for_admin(intake: IntakeService, request: ContactRequest) -> IntakeResult:
    """Take ``request`` in through intake; refuse it if the admin may not act (nothing stored)."""
    try:
        result = intake.intake(request)
    except IdentityError as exc:
        # The admin changed between the token check and intake: refused, nothing stored.
        raise refusal(exc.reason) from None
    if result.status is ContactStatus.REJECTED:
        # A hand-off stored as rejected before: answered as refused again.
        raise refusal(result.reason or "not_an_admin")
    return result


def intake_with_answer(
    intake: IntakeService, request: ContactRequest, answer: FollowUp[dict[str, Any]]
) -> tuple[IntakeResult, dict[str, Any]]:
    """Take ``request`` in and render ``answer`` in intake's transaction; refuse a wrong admin."""
    try:
        return intake.intake_with_follow_up(request, answer)
    except IdentityError as exc:
        raise refusal(exc.reason) from None


def refusal(intake_reason: str) -> AuthError:
    """Return the 401 that tells the portal why intake refused the admin."""
    reason, message = _IDENTITY_REASONS.get(
        intake_reason, ("unknown_admin", "the token does not name an active administrator")
    )
    return AuthError(reason, message)
