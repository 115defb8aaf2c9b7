"""One-time webhook tokens (Mailgun's): remember each, refuse one used before on new mail."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from config.settings import Settings
from router.store.models.email import WebhookReplayToken

# (provider, token) as the webhook carried it.
Token = tuple[str, str]


class ReplayedToken(Exception):
    """The webhook's one-time token was used before."""


def token_seen(session: Session, token: Token) -> bool:
    """Return whether ``token`` was remembered before."""
    provider, value = token
    return (
        session.scalar(
            select(WebhookReplayToken.id).where(
                WebhookReplayToken.provider == provider, WebhookReplayToken.token == value
            )
        )
        is not None
    )


def remember_token(session: Session, token: Token, now: datetime, settings: Settings) -> None:
    """Record a one-time token, and forget those too old to pass the freshness check anyway."""
    provider, value = token
    window = timedelta(seconds=2 * settings.email_webhook_max_age_seconds)
    session.execute(
        delete(WebhookReplayToken)
        .where(WebhookReplayToken.provider == provider, WebhookReplayToken.seen_at < now - window)
        .execution_options(synchronize_session=False)
    )
    session.add(WebhookReplayToken(provider=provider, token=value, seen_at=now))
