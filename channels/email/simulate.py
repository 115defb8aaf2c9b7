"""`flask --app app simulate email`: send an email to a running instance's raw MIME endpoint."""

from __future__ import annotations

import json
import mimetypes
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, BinaryIO

import click
from flask.cli import with_appcontext

from router.runtime import runtime

DEFAULT_SENDER = "alice@acme.example"
DEFAULT_BODY = (
    "Since 09:00 this morning the agent on our Windows laptops has stopped reporting.\n"
    "We tried restarting the agent service and rebooting two of them.\n"
    'The error message is "Agent failed to connect".\n'
)


@click.command("email")
@click.option(
    "--url", default="http://127.0.0.1:5000", show_default=True, help="The instance's base URL."
)
@click.option(
    "--token", default=None, help="Bearer token (default: INBOUND_MIME_TOKEN of this app)."
)
@click.option("--from", "sender", default=DEFAULT_SENDER, show_default=True, help="Sender address.")
@click.option("--from-name", default=None, help="Sender display name (default: Alice's, for her).")
@click.option("--to", "recipient", default=None, help="Recipient (default: MAIL_FROM).")
@click.option("--subject", default="[Sev2] Windows agent not reporting", show_default=True)
@click.option("--body", default=DEFAULT_BODY, help="Plain-text body.")
@click.option(
    "--attach",
    "attachments",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Attach a file (repeatable), e.g. a jcagent.log.",
)
@click.option(
    "--message-id",
    default=None,
    help="Message-ID to use (default: a new one); resend to test duplicates.",
)
@click.option(
    "--in-reply-to", default=None, help="Message-ID this replies to (threads onto its contact)."
)
@click.option("--header", "headers", multiple=True, help="Extra header 'Name: value' (repeatable).")
@click.option(
    "--unauthenticated",
    is_flag=True,
    help="Leave out the Authentication-Results a trusted receiving host would add (the sender "
    "is then not verified).",
)
@click.option(
    "--file",
    "raw_file",
    type=click.File("rb"),
    default=None,
    help="Send this raw RFC 5322 message instead of building one.",
)
@with_appcontext
def email_command(
    url: str,
    token: str | None,
    sender: str,
    from_name: str | None,
    recipient: str | None,
    subject: str,
    body: str,
    attachments: tuple[Path, ...],
    message_id: str | None,
    in_reply_to: str | None,
    headers: tuple[str, ...],
    unauthenticated: bool,
    raw_file: BinaryIO | None,
) -> None:
    """Send an email as an MTA would, and print what the customer receives."""
    settings = runtime().settings
    token = token or settings.inbound_mime_token
    if not token:
        raise click.ClickException("INBOUND_MIME_TOKEN is not set for this app; pass --token")
    # Play the trusted receiving host (EMAIL_TRUSTED_AUTHSERV_IDS): it checked the sender's
    # domain and says so, as a real MTA in front of the router would.
    trusted = sorted(settings.trusted_authserv_ids)
    authserv_id = trusted[0] if trusted and not unauthenticated else None
    if authserv_id is None and not unauthenticated and raw_file is None:
        click.echo(
            "note: EMAIL_TRUSTED_AUTHSERV_IDS is not set, so the sender cannot be verified",
            err=True,
        )
    if raw_file is not None:
        raw = raw_file.read()
    else:
        raw = _build(
            authserv_id=authserv_id,
            sender=sender,
            from_name=from_name or ("Alice Admin" if sender == DEFAULT_SENDER else ""),
            recipient=recipient or settings.mail_from,
            subject=subject,
            body=body,
            attachments=attachments,
            message_id=message_id,
            in_reply_to=in_reply_to,
            headers=headers,
        )
    endpoint = url.rstrip("/") + "/email/inbound/mime"
    request = urllib.request.Request(
        endpoint,
        data=raw,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "message/rfc822"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, answer = response.status, _json(response.read())
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, _json(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"could not reach {endpoint}: {exc}") from None
    click.echo(f"POST {endpoint} -> {status}")
    if status >= 400:
        raise click.ClickException(str(answer.get("message") or answer))
    click.echo(
        f"message {answer.get('message_id')}: {answer.get('outcome')}, contact "
        f"{answer.get('contact')} ({answer.get('status')}"
        + (f", {answer.get('reason')}" if answer.get("reason") else "")
        + (f", queue {answer.get('queue')}" if answer.get("queue") else "")
        + (f", first response due {answer.get('due_at')}" if answer.get("due_at") else "")
        + ")"
    )
    for why in answer.get("suppressed") or []:
        click.echo(f"no reply: {why}")
    replies = answer.get("replies") or []
    if not replies:
        click.echo("the customer receives no email")
    for reply in replies:
        state = {
            "sent": "sent",
            "queued": "queued: sent right after the answer",
            "failed": "not sent yet: the outbox retries it",
        }.get(reply.get("status") or ("sent" if reply.get("sent") else "failed"), "unknown")
        click.echo(f"\n--- {reply.get('kind')} to {reply.get('to')} ({state})")
        click.echo(f"Subject: {reply.get('subject')}\n")
        click.echo(reply.get("text", ""))


def _build(
    *,
    authserv_id: str | None,
    sender: str,
    from_name: str,
    recipient: str,
    subject: str,
    body: str,
    attachments: tuple[Path, ...],
    message_id: str | None,
    in_reply_to: str | None,
    headers: tuple[str, ...],
) -> bytes:
    message = EmailMessage()
    if authserv_id is not None:
        domain = sender.rpartition("@")[2]
        message["Authentication-Results"] = (
            f"{authserv_id}; spf=pass smtp.mailfrom={sender}; dmarc=pass header.from={domain}"
        )
    message["From"] = f"{from_name} <{sender}>" if from_name else sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(
        domain=sender.rpartition("@")[2] or "localhost"
    )
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for header in headers:
        name, separator, value = header.partition(":")
        if not separator or not name.strip():
            raise click.BadParameter(f"{header!r} is not 'Name: value'", param_hint="--header")
        message[name.strip()] = value.strip()
    message.set_content(body)
    for path in attachments:
        kind, _ = mimetypes.guess_type(path.name)
        maintype, _, subtype = (kind or "application/octet-stream").partition("/")
        if path.suffix == ".log":
            maintype, subtype = "text", "plain"
        message.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
        )
    return message.as_bytes()


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {"message": data.decode("utf-8", "replace")[:500]}
    return value if isinstance(value, dict) else {"message": str(value)}
