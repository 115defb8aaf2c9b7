"""What every staff API blueprint shares: errors, pagination, auth documentation, fields."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Response, jsonify, request
from flask_smorest import Blueprint, abort
from marshmallow import INCLUDE, Schema, fields, validate
from werkzeug.exceptions import HTTPException

from router.api.auth import SECURITY, require_role
from router.core.domain import StaffRole
from router.services.errors import ServiceError
from router.services.paging import DEFAULT_PER_PAGE, MAX_PER_PAGE

F = TypeVar("F", bound=Callable[..., Any])


class ErrorSchema(Schema):
    """Every error the API answers: a name, a sentence, and the details that apply."""

    class Meta:
        # Some errors carry more context (e.g. a contact's status, the rules using a queue).
        unknown = INCLUDE

    error = fields.String(metadata={"description": "HTTP status name, e.g. Conflict"})
    message = fields.String(metadata={"description": "What went wrong, in a sentence"})
    errors = fields.Raw(
        allow_none=True,
        metadata={
            "description": "Details: request fields and their problems, or routing-rule "
            "problems as [{path, message}] (e.g. path rules[3].when.all[1].op)"
        },
    )
    current_version = fields.Integer(
        metadata={"description": "Rules: the version in force (409 on a stale edit)"}
    )
    base_version = fields.Integer(
        metadata={"description": "Rules: the version the refused edit was based on"}
    )


def now() -> datetime:
    """Return the current instant (handlers pass it to services)."""
    return datetime.now(UTC)


def _status_name(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def service_error(error: ServiceError) -> tuple[Response, int]:
    """Answer a refused service call as JSON with its status."""
    return jsonify(error=_status_name(error.status), **error.to_dict()), error.status


def http_error(error: HTTPException) -> tuple[Response, int] | Response:
    """Answer an HTTP error as JSON, keeping the validation details flask-smorest collected."""
    code = error.code or 500
    body: dict[str, Any] = {"error": error.name, "message": error.description}
    data = getattr(error, "data", None) or {}
    if data.get("message"):
        body["message"] = data["message"]
    details = data.get("errors") or data.get("messages")
    if details:
        body["errors"] = details
        if code == 422 and not data.get("message"):
            body["message"] = "the request has invalid fields; see errors"
        elif code == 400 and not data.get("message"):
            body["message"] = "the request could not be read; see errors"
    response = jsonify(body)
    response.status_code = code
    for name, value in (data.get("headers") or {}).items():
        response.headers[name] = value
    if hasattr(error, "get_headers"):
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
    return response


def refuse_nul() -> None:
    """Refuse NUL characters anywhere in the request: no database stores them in text."""
    if "\x00" in request.path or any(
        "\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)
    ):
        abort(400, message="NUL characters are not accepted")
    if request.content_length or request.headers.get("Transfer-Encoding"):
        raw = request.get_data(cache=True)
        if b"\x00" in raw or b"\\u0000" in raw:
            abort(400, message="NUL characters are not accepted")


def make_blueprint(name: str, description: str) -> Blueprint:
    """Return an API blueprint whose errors are JSON in the documented shape."""
    blp = Blueprint(name, __name__, description=description)
    blp.register_error_handler(ServiceError, service_error)
    blp.register_error_handler(HTTPException, http_error)
    blp.before_request(refuse_nul)
    return blp


def protected(blp: Blueprint, role: StaffRole) -> Callable[[F], F]:
    """Require a bearer token of at least ``role`` (checked before the body is read), and say so."""

    def decorate(view: F) -> F:
        view = blp.alt_response(
            401, schema=ErrorSchema, description="Missing, unknown, expired or revoked token"
        )(view)
        view = blp.alt_response(
            403, schema=ErrorSchema, description=f"Needs the {role.value} role or higher"
        )(view)
        view = blp.alt_response(
            400, schema=ErrorSchema, description="The request could not be read"
        )(view)
        view = blp.doc(security=SECURITY)(view)
        return require_role(role)(view)

    return decorate


def responds(blp: Blueprint, *codes: int) -> Callable[[F], F]:
    """Document the error statuses an operation may answer."""
    descriptions = {
        404: "Not found",
        409: "Conflicts with the current state (e.g. a stale rules version; nothing was changed)",
        422: "Invalid content; see errors",
    }

    def decorate(view: F) -> F:
        for code in codes:
            view = blp.alt_response(code, schema=ErrorSchema, description=descriptions[code])(view)
        return view

    return decorate


class PageArgs(Schema):
    """Which page of a list to return."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(
        load_default=DEFAULT_PER_PAGE, validate=validate.Range(min=1, max=MAX_PER_PAGE)
    )


class IsoText(fields.String):
    """A string in the document; a date or an instant in ISO 8601 when the service gives one."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if isinstance(value, date):  # datetimes too
            return value.isoformat()
        return super()._serialize(value, attr, obj, **kwargs)


def page_schema(item: type[Schema], name: str) -> type[Schema]:
    """Return the schema of one page of ``item``."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item), required=True),
            "page": fields.Integer(required=True),
            "per_page": fields.Integer(required=True),
            "total": fields.Integer(required=True),
            "pages": fields.Integer(required=True),
        },
        name=name,
    )


def instant(**kwargs: Any) -> fields.String:
    """Return an output field for an ISO 8601 instant that may be null."""
    return IsoText(allow_none=True, metadata={"format": "date-time", **kwargs})


def one_of(values: Any) -> validate.OneOf:
    """Return a validator accepting an enum's values (or a list of strings)."""
    return validate.OneOf([getattr(value, "value", value) for value in values])


def text(max_length: int = 200, **kwargs: Any) -> fields.String:
    """Return a bounded input string field."""
    return fields.String(validate=validate.Length(max=max_length), **kwargs)
