"""Email channel HTTP handlers (SPEC 4.2): verify, normalise, call the email service, render.

Every endpoint answers 2xx once the message is stored (or deliberately not: a duplicate, our
own mail), 5xx only when it could not be stored so the provider retries, and a clear 4xx for
credentials (401; 403 when the endpoint is not configured or a token is replayed), size (413),
media type (415) and malformed payloads (400).

The replies a message is owed are sent after the answer by the app's background sender
(``channels/email/sender.py``), or before it with ``EMAIL_SEND_MODE=inline``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NoReturn

import click
from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from channels.email import ecdsa, mailgun, postmark, rawmime, sendgrid
from channels.email.formdata import FormData, FormError, parse_form
from channels.email.normalise import InboundEmail, MalformedEmail
from channels.email.replay_tokens import ReplayedToken
from channels.email.sender import EmailSender
from channels.email.service import EmailService
from channels.email.webhook_auth import WebhookAuthError, check_basic, check_bearer
from channels.http import error_response, refuse, unavailable
from config.settings import Settings
from router.runtime import runtime
from router.services.outbox import OutboxSender, retry_email_outbox

blueprint = Blueprint("email", __name__, cli_group="email")
log = logging.getLogger(__name__)

SERVICE_KEY = "channels.email"  # the app's EmailService in app.extensions
SENDER_KEY = "email_sender"  # the app's EmailSender in app.extensions


def email_service(app: Flask | None = None) -> EmailService:
    """Return the email channel create_app built for ``app`` (the current app by default)."""
    channel: EmailService = (app if app is not None else current_app).extensions[SERVICE_KEY]
    return channel


def background_sender(app: Flask) -> EmailSender:
    """Return the app's background sender of replies (its thread starts on the first submit)."""
    sender: EmailSender = app.extensions[SENDER_KEY]
    return sender


@blueprint.before_request
def _limit_size() -> None:
    """Apply the email size limit (instead of the app-wide one) to these endpoints."""
    limit = runtime().settings.email_max_message_bytes
    request.max_content_length = limit
    request.max_form_memory_size = limit


@blueprint.post("/email/inbound/sendgrid")
def inbound_sendgrid() -> tuple[Response, int]:
    """Take a SendGrid Inbound Parse post (parsed or raw mode)."""
    settings = runtime().settings
    basic = settings.sendgrid_basic_user and settings.sendgrid_basic_password
    key_text = settings.sendgrid_webhook_public_key
    if not basic and not key_text:
        _refuse_unconfigured(
            "sendgrid",
            "SENDGRID_BASIC_USER and SENDGRID_BASIC_PASSWORD (or SENDGRID_WEBHOOK_PUBLIC_KEY)",
        )
    if basic:
        _authenticate(
            lambda: check_basic(
                request.headers.get("Authorization"),
                settings.sendgrid_basic_user or "",
                settings.sendgrid_basic_password or "",
            ),
            basic_realm="sendgrid",
        )
    body = _body(settings)
    if key_text:
        try:
            key = ecdsa.PublicKey.load(key_text)
        except ecdsa.PublicKeyError as exc:
            log.error("SENDGRID_WEBHOOK_PUBLIC_KEY is unusable: %s", exc)
            refuse(503, "the SendGrid verification key is misconfigured; the request was not taken")
        _authenticate(
            lambda: sendgrid.verify_signature(
                key,
                body,
                request.headers.get(sendgrid.SIGNATURE_HEADER),
                request.headers.get(sendgrid.TIMESTAMP_HEADER),
                now=datetime.now(UTC),
                max_age_seconds=settings.email_webhook_max_age_seconds,
            )
        )
    form = _form(body)
    return _accept(_parse(lambda: sendgrid.parse(form, _own(settings))))


@blueprint.post("/email/inbound/mailgun")
def inbound_mailgun() -> tuple[Response, int]:
    """Take a Mailgun route post, signed with the webhook signing key."""
    settings = runtime().settings
    signing_key = settings.mailgun_signing_key
    if not signing_key:
        _refuse_unconfigured("mailgun", "MAILGUN_SIGNING_KEY")
    form = _form(_body(settings))
    fields: tuple[str, str, str] = ("", "", "")

    def verify() -> None:
        nonlocal fields
        fields = mailgun.signature_fields(form)
        mailgun.verify(
            signing_key or "",
            *fields,
            now=datetime.now(UTC),
            max_age_seconds=settings.email_webhook_max_age_seconds,
        )

    _authenticate(verify)
    email = _parse(lambda: mailgun.parse(form, _own(settings)))
    return _accept(email, replay_token=("mailgun", fields[1][:255]))


@blueprint.post("/email/inbound/postmark")
def inbound_postmark() -> tuple[Response, int]:
    """Take a Postmark inbound post (JSON, HTTP Basic credentials)."""
    settings = runtime().settings
    user, password = settings.postmark_basic_user, settings.postmark_basic_password
    if not user or not password:
        _refuse_unconfigured("postmark", "POSTMARK_BASIC_USER and POSTMARK_BASIC_PASSWORD")
    _authenticate(
        lambda: check_basic(request.headers.get("Authorization"), user or "", password or ""),
        basic_realm="postmark",
    )
    body = _body(settings)
    if request.mimetype != "application/json":
        refuse(415, f"expected application/json, not {request.mimetype or 'no content type'}")
    return _accept(_parse(lambda: postmark.parse(postmark.load(body), _own(settings))))


@blueprint.post("/email/inbound/mime")
def inbound_mime() -> tuple[Response, int]:
    """Take a raw RFC 5322 message as the body (bearer token)."""
    settings = runtime().settings
    token = settings.inbound_mime_token
    if not token:
        _refuse_unconfigured("mime", "INBOUND_MIME_TOKEN")
    _authenticate(lambda: check_bearer(request.headers.get("Authorization"), token or ""))
    if request.mimetype.startswith("multipart/") or request.mimetype.endswith("form-urlencoded"):
        refuse(415, "post the raw message itself as the body (e.g. message/rfc822), not a form")
    body = _body(settings)
    return _accept(_parse(lambda: rawmime.parse(body, _own(settings))))


@blueprint.cli.command("retry-outbox")
@click.option("--limit", default=100, show_default=True, help="Most replies to try in this run.")
def retry_outbox(limit: int) -> None:
    """Send the email replies whose earlier attempts failed and are due again."""
    summary = retry_email_outbox(runtime(), limit=limit)
    click.echo(
        f"email outbox: {summary.attempted} attempted, {summary.sent} sent, "
        f"{summary.failed} failed (retried later or abandoned)"
    )


def _accept(
    email: InboundEmail, replay_token: tuple[str, str] | None = None
) -> tuple[Response, int]:
    """Store the message, send (or queue) the replies it is owed, and answer the provider."""
    rt = runtime()
    channel = email_service()
    try:
        receipt = channel.receive(email, datetime.now(UTC), replay_token=replay_token)
    except ReplayedToken:
        refuse(403, "this webhook token was used before: replayed request refused")
    except SQLAlchemyError as exc:
        # Any store error, a bug in a statement too: the provider keeps the message and retries.
        log.error(
            "email %s from %s not stored: %s", email.message_id, email.provider, type(exc).__name__
        )
        return unavailable("the message could not be stored; retry later", retry_after=60), 503
    outbox_ids = [reply.outbox_id for reply in receipt.replies]
    status = dict.fromkeys(outbox_ids, "queued")
    if outbox_ids and rt.settings.email_send_mode == "inline":
        status = _send_inline(channel.outbox, outbox_ids, receipt.reference)
    elif outbox_ids:
        # Committed above, so a full queue or a dying process leaves the rows to the retry job;
        # so does a thread that cannot be started: the message is stored, the answer is 200.
        try:
            background_sender(current_app).submit(outbox_ids)
        except Exception:
            log.exception("replies to contact %s left for the retry job", receipt.reference)
    log.info(
        "email %s via %s: %s %s (%s)",
        email.message_id,
        email.provider,
        receipt.outcome,
        receipt.reference,
        receipt.status,
    )
    replies = [
        {
            "kind": reply.kind,
            "to": reply.to,
            "subject": reply.subject,
            "text": reply.body,
            "message_id": reply.message_id,
            "sent": status[reply.outbox_id] == "sent",
            "status": status[reply.outbox_id],
        }
        for reply in receipt.replies
    ]
    return jsonify({**receipt.to_dict(), "message_id": email.message_id, "replies": replies}), 200


def _send_inline(
    outbox: OutboxSender, outbox_ids: list[int], reference: str | None
) -> dict[int, str]:
    """Send the rows before answering; return each one's status: sent, failed or queued."""
    try:
        deliveries = outbox.deliver(outbox_ids)
    except Exception:  # stored and owed: the outbox retries it; the provider must not
        log.exception("replies to contact %s not sent now; left for retry", reference)
        return dict.fromkeys(outbox_ids, "failed")
    # A row not attempted here was claimed by another sender (the retry job): still queued.
    status = dict.fromkeys(outbox_ids, "queued")
    status.update({d.outbox_id: "sent" if d.sent else "failed" for d in deliveries})
    return status


def _parse(parse: Callable[[], InboundEmail]) -> InboundEmail:
    try:
        return parse()
    except MalformedEmail as exc:
        refuse(400, str(exc))


def _form(body: bytes) -> FormData:
    try:
        return parse_form(request.content_type, body)
    except FormError as exc:
        status = 415 if str(exc).startswith("expected") else 400
        refuse(status, str(exc))


def _body(settings: Settings) -> bytes:
    limit = settings.email_max_message_bytes
    too_big = f"the email is larger than the {limit}-byte limit (EMAIL_MAX_MESSAGE_BYTES)"
    if request.content_length is not None and request.content_length > limit:
        refuse(413, too_big)
    try:
        return request.get_data(cache=True)
    except RequestEntityTooLarge:
        refuse(413, too_big)


def _authenticate(check: Callable[[], None], basic_realm: str | None = None) -> None:
    try:
        check()
    except WebhookAuthError as exc:
        challenge = {"WWW-Authenticate": f'Basic realm="{basic_realm}"'} if basic_realm else None
        abort(error_response(401, exc.reason, headers=challenge))


def _refuse_unconfigured(provider: str, variables: str) -> NoReturn:
    refuse(403, f"the {provider} endpoint is not configured: set {variables}")


def _own(settings: Settings) -> frozenset[str]:
    return frozenset({settings.mail_from.strip().lower()})
