"""`flask --app app simulate chat`: open a portal chat against a running instance.

The command signs a portal token with this app's PORTAL_JWT_SECRET, exactly as the admin
portal does, posts ``/chat/sessions`` (optionally a message and a hand-off) and prints what the
customer's chat window would show.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask.cli import with_appcontext

from channels.chat.tokens import mint_portal_token
from router.core.domain import Topic
from router.runtime import runtime

TIMEOUT_SECONDS = 15


class SimulationError(click.ClickException):
    """The instance answered with an error (or not at all)."""


@click.command("chat")
@click.option("--org", "account_id", required=True, help="Account id the admin acts for.")
@click.option("--admin", "admin_email", required=True, help="Administrator's email (token sub).")
@click.option(
    "--topic", type=click.Choice([t.value for t in Topic]), required=True, help="Chat topic."
)
@click.option("--subject", required=True, help="What the chat is about.")
@click.option("--severity", type=click.Choice(["S1", "S2", "S3"]), default=None)
@click.option("--message", "message", default=None, help="First message typed into the chat.")
@click.option(
    "--say", multiple=True, help="A further message to post once the chat is open (repeatable)."
)
@click.option("--handoff", is_flag=True, help="Ask SupportBot for a human (Standard tier).")
@click.option(
    "--url",
    "base_url",
    default="http://127.0.0.1:5000",
    show_default=True,
    help="Base URL of the running instance.",
)
@click.option("--ttl", default=300, show_default=True, help="Token lifetime in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON responses only.")
@with_appcontext
def chat_command(
    account_id: str,
    admin_email: str,
    topic: str,
    subject: str,
    severity: str | None,
    message: str | None,
    say: tuple[str, ...],
    handoff: bool,
    base_url: str,
    ttl: int,
    as_json: bool,
) -> None:
    """Open a chat from the portal as ADMIN of ORG, signed with this app's portal secret."""
    with warnings.catch_warnings():
        # PyJWT warns about HMAC keys under 32 bytes, such as the development stand-in.
        warnings.filterwarnings("ignore", message="The HMAC key is")
        token = mint_portal_token(
            secret=runtime().settings.portal_jwt_secret,
            admin_email=admin_email,
            account_id=account_id,
            now=datetime.now(UTC),
            ttl=timedelta(seconds=ttl),
        )
    if not base_url.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--url")
    base = base_url.rstrip("/")
    body: dict[str, Any] = {"topic": topic, "subject": subject}
    if severity:
        body["severity"] = severity
    if message:
        body["message"] = message
    status, session = _post(f"{base}/chat/sessions", token, body, key=uuid.uuid4().hex)
    _show("POST /chat/sessions", status, session, as_json)
    contact_id = session["contact_id"]
    for text in say:
        status, posted = _post(
            f"{base}/chat/sessions/{contact_id}/messages",
            token,
            {"text": text},
            key=uuid.uuid4().hex,
        )
        _show(f"POST /chat/sessions/{contact_id}/messages", status, posted, as_json)
    if handoff:
        status, handed = _post(f"{base}/chat/sessions/{contact_id}/handoff", token, {})
        _show(f"POST /chat/sessions/{contact_id}/handoff", status, handed, as_json)


def _post(
    url: str, token: str, body: dict[str, Any], *, key: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    if key:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise SimulationError(f"{url} answered {exc.code}: {detail.strip()}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise SimulationError(f"cannot reach {url}: {exc}") from None


def _show(what: str, status: int, body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(body, sort_keys=True))
        return
    click.echo(f"{what} -> {status}")
    if "mode" in body:
        sla = body.get("sla")
        click.echo(f"  contact:  C-{body['contact_id']}  mode: {body['mode']}")
        click.echo(f"  queue:    {body.get('queue') or '-'}  priority: {body.get('priority')}")
        click.echo(
            "  sla:      "
            + (f"{sla['policy']}, first response due {sla['due_at']}" if sla else "none")
        )
        wait = body.get("estimated_wait_seconds")
        click.echo(
            f"  position: {body.get('position') if body.get('position') is not None else '-'}"
            f"  estimated wait: {f'{wait} s' if wait is not None else 'unknown'}"
        )
        for link in (body.get("help_center") or {}).get("links", []):
            click.echo(f"  link:     {link['title']}: {link['url']}")
        click.echo(f"  customer sees: {body.get('message')}")
    else:
        click.echo("  " + json.dumps(body, sort_keys=True))
