"""Bearer-token authentication and role checks for the staff API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request
from flask_smorest import abort

from router.core.domain import StaffRole
from router.runtime import runtime
from router.services.logins import StaffIdentity, authenticate_token

F = TypeVar("F", bound=Callable[..., Any])

# Every protected operation declares these in the OpenAPI document.
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def require_role(role: StaffRole) -> Callable[[F], F]:
    """Let the call through only for a valid token whose role is at least ``role``."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                abort(401, message="missing bearer token (Authorization: Bearer <token>)")
            identity = authenticate_token(runtime().db, token.strip(), datetime.now(UTC))
            if identity is None:
                abort(401, message="unknown, expired or revoked token")
            assert identity is not None
            if identity.role.rank < role.rank:
                abort(
                    403, message=f"this needs the {role.value} role; yours is {identity.role.value}"
                )
            g.staff = identity
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def current_staff() -> StaffIdentity:
    """Return the authenticated staff member of this request."""
    identity: StaffIdentity = g.staff
    return identity


def current_actor() -> str:
    """Return who the audit log names for this request's changes (the staff member's email)."""
    return current_staff().email
