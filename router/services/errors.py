"""Errors services raise for the API and the console to answer (404, 409, 422, 400)."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP status that fits it."""

    status = 400

    def __init__(self, message: str, *, errors: Any = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """Return the error as the JSON body the API sends."""
        body: dict[str, Any] = {"message": self.message, **self.details}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


class BadRequest(ServiceError):
    """The request itself is malformed."""

    status = 400


class NotFound(ServiceError):
    """The thing named does not exist."""

    status = 404


class Conflict(ServiceError):
    """The change collides with the current state (a stale version, a duplicate, a reference)."""

    status = 409


class Invalid(ServiceError):
    """The change is well-formed but its content is not acceptable."""

    status = 422
