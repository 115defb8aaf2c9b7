"""Chat channel HTTP handlers (SPEC 4): verify, normalise, call the intake service, render.

``POST /chat/sessions``, ``GET /chat/sessions/<id>``, ``POST /chat/sessions/<id>/messages``,
``POST /chat/sessions/<id>/handoff`` and ``POST /portal/requests``, all authenticated by the
portal's HS256 token. Retries with the same ``Idempotency-Key`` header answer the first result.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from channels.chat import forms
from channels.chat.bodies import ChatAnswer
from channels.chat.portal import AuthError, PortalUser
from channels.chat.service import ChatService
from channels.http import error_response, store_unavailable, unavailable
from router.services.errors import ServiceError

log = logging.getLogger("router.chat")

blueprint = Blueprint("chat", __name__)

SERVICE_KEY = "channels.chat"
# Contact ids are 32-bit integers in the store; a larger one is no session (404), not an error.
CONTACT_ID = "int(max=2147483647)"

Reply = tuple[Response, int]


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


def _render(answer: ChatAnswer) -> Reply:
    return jsonify(answer.body), 201 if answer.created else 200


@blueprint.errorhandler(AuthError)
def _unauthorised(exc: AuthError) -> Response:
    # The reason, never the token: tokens are credentials.
    log.info("portal token refused on %s: %s", request.path, exc.reason)
    return error_response(
        exc.status, headers={"WWW-Authenticate": exc.challenge()}, **exc.to_dict()
    )


@blueprint.errorhandler(ServiceError)
def _refused(exc: ServiceError) -> Response:
    return error_response(exc.status, **exc.to_dict())


@blueprint.errorhandler(forms.FormError)
def _bad_form(exc: forms.FormError) -> Response:
    status = 413 if isinstance(exc, forms.TooLong) else 400
    return error_response(status, f"{exc.field} {exc.message}", field=exc.field)


@blueprint.errorhandler(SQLAlchemyError)
def _store_error(exc: SQLAlchemyError) -> Response:
    if not store_unavailable(exc):
        # An error in the statement itself is a bug: a retry would not help.
        log.exception("database error on %s", request.path)
        return error_response(500, "unexpected error; it was logged")
    log.error("database unavailable on %s: %s", request.path, type(exc).__name__)
    return unavailable("support chat is briefly unavailable; please retry", retry_after=5)
