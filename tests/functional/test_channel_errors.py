"""The one error answer every channel gives (channels/http.py)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy.exc import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    InvalidRequestError,
    OperationalError,
    ProgrammingError,
    TimeoutError,
)
from werkzeug.exceptions import HTTPException

from channels.http import error_response, refuse, status_phrase, store_unavailable, unavailable


@pytest.fixture(scope="module")
def app() -> Flask:
    return Flask(__name__)


def test_error_body_names_the_status_and_the_reason(app: Flask) -> None:
    with app.test_request_context():
        response = error_response(409, "the chat has ended", reason="ended")
    assert response.status_code == 409
    assert response.get_json() == {
        "error": "Conflict",
        "message": "the chat has ended",
        "reason": "ended",
    }


def test_refuse_stops_the_request_with_the_same_body(app: Flask) -> None:
    with app.test_request_context(), pytest.raises(HTTPException) as stopped:
        refuse(413, "too big", field="text")
    response = stopped.value.get_response()
    assert response.status_code == 413
    assert response.get_json() == {
        "error": "Request Entity Too Large",
        "message": "too big",
        "field": "text",
    }


def test_unavailable_asks_for_a_retry(app: Flask) -> None:
    with app.test_request_context():
        response = unavailable("retry later", retry_after=60)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    assert response.get_json()["error"] == "Service Unavailable"


@pytest.mark.parametrize(
    ("error", "down"),
    [
        (OperationalError("SELECT 1", {}, Exception("connection refused")), True),
        (InterfaceError("SELECT 1", {}, Exception("connection closed")), True),
        (DatabaseError("SELECT 1", {}, Exception("file is not a database")), True),
        (TimeoutError("QueuePool limit reached"), True),
        (ProgrammingError("SELEC 1", {}, Exception("syntax error")), False),
        (DataError("SELECT 1", {}, Exception("value too long")), False),
        (IntegrityError("INSERT", {}, Exception("duplicate key")), True),
        (InvalidRequestError("this session is in 'prepared' state"), False),
    ],
)
def test_only_an_unusable_store_is_unavailability(error: Exception, down: bool) -> None:
    assert store_unavailable(error) is down  # type: ignore[arg-type]


def test_unknown_statuses_still_have_a_phrase() -> None:
    assert status_phrase(422) == "Unprocessable Entity"
    assert status_phrase(599) == "Error"
