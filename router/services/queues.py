"""Queues for staff: list, create, change and delete them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.policy import Policy
from router.core.validation import normalise_email
from router.services import audit
from router.services.errors import Conflict, Invalid, NotFound
from router.services.paging import Page, query_page
from router.services.queue_overview import Waiting, nobody_waiting, waiting_by_queue
from router.services.rules import current_state
from router.store.db import Database
from router.store.models import Contact, Queue

QUEUE_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
QUEUE_KINDS = ("human", "bot", "deflection")
_EDITABLE = ("name", "team", "kind", "owners", "webhook_url", "active")
# Queues the code and the shipped policy name by key: deleting or deactivating one would break
# what relies on it, so both are refused (409) with the reason. The SLA policies' escalation
# queues are added from the policy (system_queues).
_BUILT_IN_QUEUES: Final = {
    # ivr/machine.py FALLBACK_QUEUE; config/policy.py requires it in queues.toml.
    "fallback": "the voice Fallback URL puts callers in it when the service is degraded, "
    "without the database",
    "help-center": "the shipped routing rules (config/policy/routing.toml) deflect free-tier "
    "contacts to it; routing falls back to them, and rolling back to them needs it",
    "supportbot": "the shipped routing rules (config/policy/routing.toml) start Standard chats "
    "with SupportBot in it; routing falls back to them, and rolling back to them needs it",
}


@dataclass(frozen=True)
class QueueView:
    """A queue, as staff see it."""

    key: str
    name: str
    team: str
    kind: str
    owners: tuple[str, ...]
    webhook_url: str | None
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, queue: Queue) -> QueueView:
        """Return the view of a stored queue."""
        return cls(
            key=queue.key,
            name=queue.name,
            team=queue.team,
            kind=queue.kind,
            owners=tuple(queue.owners or []),
            webhook_url=queue.webhook_url,
            active=queue.active,
            created_at=queue.created_at,
            updated_at=queue.updated_at,
        )


@dataclass(frozen=True)
class QueueDetail(QueueView):
    """A queue with the rules that route to it and its waiting contacts."""

    rules: tuple[str, ...]
    waiting: Waiting


def list_queues(
    db: Database,
    *,
    page: int,
    per_page: int,
    team: str | None = None,
    kind: str | None = None,
    active: bool | None = None,
) -> Page[QueueView]:
    """Return queues by key, filtered by team, kind and active."""
    stmt = select(Queue).order_by(Queue.key)
    if team:
        stmt = stmt.where(Queue.team == team)
    if kind:
        stmt = stmt.where(Queue.kind == kind)
    if active is not None:
        stmt = stmt.where(Queue.active.is_(active))
    with db.session() as session:
        return query_page(session, stmt, page, per_page).map(QueueView.of)


def get_queue(db: Database, policy: Policy, key: str, now: datetime) -> QueueDetail:
    """Return a queue with the rules that route to it and its waiting contacts' summary."""
    with db.session() as session:
        queue = session.get(Queue, key)
        if queue is None:
            raise NotFound(f"no queue {key!r}")
        return QueueDetail(
            **vars(QueueView.of(queue)),
            rules=tuple(_rules_using(session, policy, key)),
            waiting=waiting_by_queue(session, now, [key]).get(key) or nobody_waiting(),
        )


def system_queues(policy: Policy) -> dict[str, str]:
    """Return the queues that cannot be deleted or deactivated, each with the reason."""
    reasons = dict(_BUILT_IN_QUEUES)
    for name, escalation in sorted(policy.escalations.items()):
        if escalation.queue and escalation.queue not in reasons:
            reasons[escalation.queue] = (
                f"SLA policy {name!r} (config/policy/sla.toml) moves breached contacts to it"
            )
    return reasons


def _refuse_system_queue(policy: Policy, key: str, change: str) -> None:
    reason = system_queues(policy).get(key)
    if reason is not None:
        raise Conflict(f"queue {key!r} is a system queue and cannot be {change}: {reason}")


def _rules_using(session: Session, policy: Policy, key: str) -> list[str]:
    state = current_state(session, policy)
    return [str(doc["id"]) for doc in state.documents if doc.get("then", {}).get("queue") == key]


def _check(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate queue fields; raise Invalid naming each bad one."""
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in ("name", "team"):
            text = str(value).strip()
            if not text:
                errors[name] = ["must not be empty"]
            out[name] = text
        elif name == "kind":
            if value not in QUEUE_KINDS:
                errors[name] = [f"must be one of {', '.join(QUEUE_KINDS)}"]
            out[name] = value
        elif name == "owners":
            owners = []
            for i, owner in enumerate(value or []):
                try:
                    owners.append(normalise_email(str(owner)))
                except ValueError as exc:
                    errors.setdefault(name, []).append(f"[{i}]: {exc}")
            out[name] = sorted(set(owners))
        elif name == "webhook_url":
            if value in (None, ""):
                out[name] = None
                continue
            parts = urlsplit(str(value))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                errors[name] = ["must be an http:// or https:// URL"]
            out[name] = str(value)
        elif name == "active":
            out[name] = bool(value)
    if errors:
        raise Invalid("invalid queue fields", errors=errors)
    return out


def create_queue(db: Database, values: Mapping[str, Any], *, actor: str) -> QueueView:
    """Create a queue; its key is permanent (rules and contacts refer to it)."""
    key = str(values.get("key", ""))
    if not QUEUE_KEY.fullmatch(key):
        raise Invalid(
            "invalid queue key",
            errors={"key": ["use 1-64 lower-case letters, digits, '-' or '_'"]},
        )
    fields = _check(
        {
            "kind": "human",
            "owners": [],
            "active": True,
            **{name: values[name] for name in _EDITABLE if name in values},
        }
    )
    for required in ("name", "team"):
        if required not in fields:
            raise Invalid("invalid queue fields", errors={required: ["is required"]})
    with db.transaction() as session:
        if session.get(Queue, key) is not None:
            raise Conflict(f"queue {key!r} already exists")
        queue = Queue(key=key, **fields)
        session.add(queue)
        session.flush()
        view = QueueView.of(queue)
        audit.record(
            session,
            actor=actor,
            action="queue.create",
            entity_type="queue",
            entity_id=key,
            after=_audit_view(view),
        )
    return view


def update_queue(
    db: Database, policy: Policy, key: str, changes: Mapping[str, Any], *, actor: str
) -> QueueView:
    """Change a queue's fields; a system queue, or one rules route to, cannot be deactivated."""
    fields = _check({name: changes[name] for name in _EDITABLE if name in changes})
    with db.transaction() as session:
        queue = session.get(Queue, key)
        if queue is None:
            raise NotFound(f"no queue {key!r}")
        before = _audit_view(QueueView.of(queue))
        if fields.get("active") is False and queue.active:
            _refuse_system_queue(policy, key, "deactivated")
            rules = _rules_using(session, policy, key)
            if rules:
                raise Conflict(
                    f"queue {key!r} is the target of rule(s) {', '.join(rules)}; "
                    "route them elsewhere before deactivating it",
                    rules=rules,
                )
        for name, value in fields.items():
            setattr(queue, name, value)
        queue.updated_at = datetime.now(UTC)
        session.flush()
        view = QueueView.of(queue)
        audit.record(
            session,
            actor=actor,
            action="queue.update",
            entity_type="queue",
            entity_id=key,
            before=before,
            after=_audit_view(view),
        )
    return view


def delete_queue(db: Database, policy: Policy, key: str, *, actor: str) -> None:
    """Delete a queue that no rule routes to, no contact ever waited in, and no code needs."""
    with db.transaction() as session:
        queue = session.get(Queue, key)
        if queue is None:
            raise NotFound(f"no queue {key!r}")
        _refuse_system_queue(policy, key, "deleted")
        rules = _rules_using(session, policy, key)
        if rules:
            raise Conflict(
                f"queue {key!r} is the target of rule(s) {', '.join(rules)}; change them first",
                rules=rules,
            )
        used = session.scalar(select(func.count()).where(Contact.queue_key == key)) or 0
        if used:
            raise Conflict(
                f"{used} contact(s) were routed to queue {key!r}; deactivate it instead",
                contacts=used,
            )
        before = _audit_view(QueueView.of(queue))
        session.delete(queue)
        audit.record(
            session,
            actor=actor,
            action="queue.delete",
            entity_type="queue",
            entity_id=key,
            before=before,
        )


def _audit_view(queue: QueueView) -> dict[str, Any]:
    data = audit.snapshot(queue)
    return {name: data[name] for name in ("key", *_EDITABLE)}
