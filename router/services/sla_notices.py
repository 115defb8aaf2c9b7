"""What the SLA sweep tells people: one outbox row per address and webhook, and what it says.

A warning or breach notifies whom the SLA policy's escalation names (queue owners, the account's
CSM or account manager, the queues' webhooks); each address and URL once per transition.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from router.core.validation import instant_text
from router.store.models import Account, Queue

EVENT_WARNING = "sla.warning"
EVENT_BREACHED = "sla.breached"


@dataclass(frozen=True)
class QueueInfo:
    """What a notification needs of a queue."""

    key: str
    name: str
    kind: str
    active: bool
    owners: tuple[str, ...]
    webhook_url: str | None


@dataclass(frozen=True)
class AccountInfo:
    """What a notification needs of an account."""

    id: str
    name: str
    csm_email: str | None
    account_manager_email: str | None


def load_queues(session: Session) -> dict[str, QueueInfo]:
    """Read every queue once per sweep (a small table)."""
    return {
        queue.key: QueueInfo(
            key=queue.key,
            name=queue.name,
            kind=queue.kind,
            active=queue.active,
            owners=tuple(owner for owner in queue.owners or () if _is_address(owner)),
            webhook_url=queue.webhook_url or None,
        )
        for queue in session.scalars(select(Queue))
    }


def load_accounts(session: Session, ids: set[str | None]) -> dict[str, AccountInfo]:
    """Read the accounts a batch of transitions involves."""
    wanted = [account_id for account_id in ids if account_id]
    if not wanted:
        return {}
    rows = session.execute(
        select(Account.id, Account.name, Account.csm_email, Account.account_manager_email).where(
            Account.id.in_(wanted)
        )
    )
    return {
        row.id: AccountInfo(
            id=row.id,
            name=row.name,
            csm_email=row.csm_email,
            account_manager_email=row.account_manager_email,
        )
        for row in rows
    }


def outbox_rows(
    row: Row[Any],
    targets: Iterable[str],
    queue_keys: Iterable[str | None],
    queues: Mapping[str, QueueInfo],
    accounts: Mapping[str, AccountInfo],
    event: str,
    payload: dict[str, Any],
    now: datetime,
) -> list[dict[str, Any]]:
    """Return the outbox rows for one transition: one per email address and per webhook URL."""
    wanted = set(targets)
    involved = [queues[key] for key in queue_keys if key and key in queues]
    account = accounts.get(row.account_id or "")
    addresses: dict[str, str] = {}  # lower-case -> as written, so nobody is mailed twice
    if "queue_owners" in wanted:
        for queue in involved:
            for owner in queue.owners:
                addresses.setdefault(owner.lower(), owner)
    if account is not None:
        if "csm" in wanted and _is_address(account.csm_email):
            assert account.csm_email is not None
            addresses.setdefault(account.csm_email.lower(), account.csm_email)
        if "account_manager" in wanted and _is_address(account.account_manager_email):
            assert account.account_manager_email is not None
            addresses.setdefault(
                account.account_manager_email.lower(), account.account_manager_email
            )
    urls: list[str] = []
    if "webhook" in wanted:
        for queue in involved:
            if queue.webhook_url and queue.webhook_url not in urls:
                urls.append(queue.webhook_url)
    common = {
        "contact_id": row.id,
        "event": event,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    return [{**common, "channel": "email", "target": address} for address in addresses.values()] + [
        {**common, "channel": "webhook", "target": url} for url in urls
    ]


def notice_payload(
    event: str, row: Row[Any], account: AccountInfo | None, now: datetime
) -> dict[str, Any]:
    """Return what a notification says about a transition (the webhook body, the email's facts)."""
    occurred = row.due_at if event == EVENT_BREACHED else row.warning_at
    return {
        "event": event,
        "event_id": uuid.uuid4().hex,
        "occurred_at": instant_text(occurred),
        "detected_at": now.isoformat(),
        "contact": {
            "id": row.id,
            "reference": f"C-{row.id}",
            "channel": row.channel,
            "subject": row.subject,
            "status": row.status,
            "account": {"id": account.id, "name": account.name} if account else None,
            "tier": row.tier,
            "severity": row.severity,
            "category": row.category,
            "topic": row.topic,
            "queue": row.queue_key,
            "priority": row.priority,
            "received_at": instant_text(row.received_at),
            "sla": {
                "policy": row.sla_policy,
                "state": "breached" if event == EVENT_BREACHED else "warning",
                "warning_at": instant_text(row.warning_at),
                "due_at": instant_text(row.due_at),
            },
        },
    }


def _is_address(value: object) -> bool:
    return isinstance(value, str) and "@" in value and not any(c.isspace() for c in value)
