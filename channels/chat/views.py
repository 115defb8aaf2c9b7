"""Chat channel HTTP handlers (SPEC 4): verify, normalise, call the intake service, render.

``POST /chat/sessions``, ``GET /chat/sessions/<id>``, ``POST /chat/sessions/<id>/messages``,
``POST /chat/sessions/<id>/handoff`` and ``POST /portal/requests``, all authenticated by the
portal's HS256 token. Retries with the same ``Idempotency-Key`` header answer the first result.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy.exc import DataError, DBAPIError, ProgrammingError

from channels.chat import forms
from channels.chat.service import (
    AuthError,
    ChatService,
    Conflict,
    KeyReused,
    LimitReached,
    NotFound,
    Outcome,
    PortalUser,
)

log = logging.getLogger("router.chat")

blueprint = Blueprint("chat", __name__)

SERVICE_KEY = "channels.chat"
# Contact ids are 32-bit integers in the store; a larger one is no session (404), not an error.
CONTACT_ID = "int(max=2147483647)"

Reply = tuple[Response, int] | tuple[Response, int, dict[str, str]]


def chat_service(app: Flask | None = None) -> ChatService:
    """Return the chat service create_app built for ``app`` (the current app by default)."""
    service: ChatService = (app if app is not None else current_app).extensions[SERVICE_KEY]
    return service


@blueprint.post("/chat/sessions")
def open_session() -> Reply:
    """Open a chat for the admin the portal token names (SPEC 4.3)."""
    service = chat_service()
    # The token only: the service checks the admin it names in the transaction that stores.
    claims = service.verify(request.headers.get("Authorization"))
    form = forms.parse_chat_open(_body(), message_max_chars=service.settings.chat_message_max_chars)
    return _render(service.open_session(claims, form, _key()))


@blueprint.get(f"/chat/sessions/<{CONTACT_ID}:contact_id>")
def session_state(contact_id: int) -> Reply:
    """Answer a session's current mode, queue position and estimated wait."""
    service = chat_service()
    return jsonify(service.session_state(_user(service), contact_id)), 200


@blueprint.post(f"/chat/sessions/<{CONTACT_ID}:contact_id>/messages")
def post_message(contact_id: int) -> Reply:
    """Append the admin's message to the session's timeline."""
    service = chat_service()
    user = _user(service)
    message = forms.parse_chat_message(_body(), max_chars=service.settings.chat_message_max_chars)
    return _render(service.post_message(user, contact_id, message, _key()))


@blueprint.post(f"/chat/sessions/<{CONTACT_ID}:contact_id>/handoff")
def handoff(contact_id: int) -> Reply:
    """Hand a SupportBot session to a human (or say when one is back)."""
    service = chat_service()
    user = _user(service)
    reason = forms.parse_handoff(
        _body(allow_empty=True), max_chars=service.settings.chat_message_max_chars
    )
    return _render(service.handoff(user, contact_id, reason))


@blueprint.post("/portal/requests")
def portal_request() -> Reply:
    """Create a contact from the portal's Contact Support form."""
    service = chat_service()
    claims = service.verify(request.headers.get("Authorization"))
    form = forms.parse_portal_request(
        _body(), text_max_chars=service.settings.portal_text_max_chars
    )
    return _render(service.submit_request(claims, form, _key()))


def _user(service: ChatService) -> PortalUser:
    return service.authenticate(request.headers.get("Authorization"))


def _key() -> str | None:
    return forms.parse_idempotency_key(request.headers.get("Idempotency-Key"))


_NOT_JSON = object()  # fails every form's "must be a JSON object" check


def _body(*, allow_empty: bool = False) -> object:
    if allow_empty and not request.get_data(cache=True).strip():
        return None
    # Portals send JSON; a missing or wrong Content-Type is not worth refusing a customer for.
    parsed = request.get_json(force=True, silent=True)
    return _NOT_JSON if parsed is None else parsed


def _render(outcome: Outcome) -> Reply:
    return jsonify(outcome.body), 201 if outcome.created else 200


def _error(status: int, error: str, message: str, **extra: object) -> tuple[Response, int]:
    return jsonify(error=error, message=message, **extra), status


@blueprint.errorhandler(AuthError)
def _unauthorised(exc: AuthError) -> Reply:
    # The reason, never the token: tokens are credentials.
    log.info("portal token refused on %s: %s", request.path, exc.reason)
    challenge = f'Bearer realm="portal", error="invalid_token", error_description="{exc.reason}"'
    response, status = _error(401, "Unauthorized", exc.message, reason=exc.reason)
    return response, status, {"WWW-Authenticate": challenge}


@blueprint.errorhandler(forms.TooLong)
def _too_long(exc: forms.TooLong) -> Reply:
    return _error(413, "Payload Too Large", f"{exc.field} {exc.message}", field=exc.field)


@blueprint.errorhandler(forms.FormError)
def _bad_request(exc: forms.FormError) -> Reply:
    return _error(400, "Bad Request", f"{exc.field} {exc.message}", field=exc.field)


@blueprint.errorhandler(NotFound)
def _not_found(_exc: NotFound) -> Reply:
    return _error(404, "Not Found", "no such chat session for this administrator")


@blueprint.errorhandler(Conflict)
def _conflict(exc: Conflict) -> Reply:
    return _error(409, "Conflict", exc.message, reason=exc.reason)


@blueprint.errorhandler(KeyReused)
def _key_reused(_exc: KeyReused) -> Reply:
    return _error(
        422,
        "Unprocessable Entity",
        "this Idempotency-Key was already used for a different request; use a new key",
        reason="idempotency_key_reused",
    )


@blueprint.errorhandler(LimitReached)
def _limit(_exc: LimitReached) -> Reply:
    limit = chat_service().settings.chat_max_messages
    return _error(
        429,
        "Too Many Requests",
        f"this chat has reached its limit of {limit} messages; continue by email or open a "
        "new chat",
        reason="message_limit",
    )


@blueprint.errorhandler(DBAPIError)
def _unavailable(exc: DBAPIError) -> Reply:
    # Unreachable, locked or failing storage shows up as OperationalError, InterfaceError (a
    # dropped connection) or, on SQLite, a plain DatabaseError ("file is not a database"): the
    # portal is told to retry. Only errors in the statement itself are bugs (a 500).
    if isinstance(exc, ProgrammingError | DataError):
        log.exception("database error on %s", request.path)
        return _error(500, "Internal Server Error", "unexpected error; it was logged")
    log.error("database unavailable on %s: %s", request.path, type(exc).__name__)
    response, status = _error(
        503, "Service Unavailable", "support chat is briefly unavailable; please retry"
    )
    return response, status, {"Retry-After": "5"}
