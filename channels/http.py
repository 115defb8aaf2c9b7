"""The answers every channel gives when it refuses a request: one JSON error body, one 503.

Voice, email and chat answer their providers and the portal in the same shape,
``{"error": <status phrase>, "message": <why>, ...details}``, and map a store that cannot be
reached to 503 with Retry-After, so a provider retries instead of dropping what it sent.
"""

from __future__ import annotations

from typing import Any, NoReturn

from flask import Response, abort, jsonify
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.http import HTTP_STATUS_CODES


def status_phrase(status: int) -> str:
    """Return the standard phrase for an HTTP status ("Bad Request", "Service Unavailable")."""
    return HTTP_STATUS_CODES.get(status, "Error")


def error_response(
    status: int, message: str, *, headers: dict[str, str] | None = None, **details: Any
) -> Response:
    """Return the JSON error answer: the status phrase, the reason, and any details."""
    response = jsonify(error=status_phrase(status), message=message, **details)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def refuse(status: int, message: str, **details: Any) -> NoReturn:
    """Stop the request with the JSON error answer."""
    abort(error_response(status, message, **details))


def store_unavailable(exc: SQLAlchemyError) -> bool:
    """Return whether ``exc`` means the store cannot be used now, so a retry may succeed.

    Unreachable, locked or failing storage shows up as OperationalError, InterfaceError (a
    dropped connection) or, on SQLite, a plain DatabaseError ("file is not a database"); a pool
    with every connection busy past its timeout as sqlalchemy's TimeoutError. An error in the
    statement itself (ProgrammingError, DataError) or a misuse of the ORM is a bug a retry does
    not fix. A unique-key race (IntegrityError) is retryable: the retry finds the stored row.
    """
    if isinstance(exc, PoolTimeout | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and not isinstance(exc, ProgrammingError | DataError)


def unavailable(message: str, *, retry_after: int) -> Response:
    """Return 503 with Retry-After: the provider or portal should send the request again."""
    return error_response(503, message, headers={"Retry-After": str(retry_after)})
