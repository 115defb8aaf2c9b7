"""Queues for staff: list, create, change, delete, and the supervisors' overview."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.orm import Session

from config.policy import Policy
from router.core.domain import ContactStatus, SlaState
from router.core.validation import normalise_email
from router.services import audit
from router.services.errors import Conflict, Invalid, NotFound
from router.services.paging import iso, paginate
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
# SLA states a waiting contact can be in, in the order the overview shows them.
LIVE_STATES = (SlaState.OK, SlaState.WARNING, SlaState.BREACHED, SlaState.MET, SlaState.MISSED)


def effective_sla_state(now: datetime) -> ColumnElement[str]:
    """Return the SLA state at ``now`` as SQL: running clocks whose instants passed count on.

    The scheduler records warnings and breaches as they happen; reading through the clock's
    instants keeps the console right between sweeps (and when the scheduler is down).
    """
    running = Contact.sla_state.in_([SlaState.OK.value, SlaState.WARNING.value])
    return case(
        (and_(running, Contact.due_at.is_not(None), Contact.due_at <= now), literal("breached")),
        (
            and_(
                Contact.sla_state == SlaState.OK.value,
                Contact.warning_at.is_not(None),
                Contact.warning_at <= now,
            ),
            literal("warning"),
        ),
        else_=Contact.sla_state,
    )


def queue_dict(queue: Queue) -> dict[str, Any]:
    """Return a queue as JSON-ready data."""
    return {
        "key": queue.key,
        "name": queue.name,
        "team": queue.team,
        "kind": queue.kind,
        "owners": list(queue.owners or []),
        "webhook_url": queue.webhook_url,
        "active": queue.active,
        "created_at": iso(queue.created_at),
        "updated_at": iso(queue.updated_at),
    }


def list_queues(
    db: Database,
    *,
    page: int,
    per_page: int,
    team: str | None = None,
    kind: str | None = None,
    active: bool | None = None,
) -> dict[str, Any]:
    """Return queues by key, filtered by team, kind and active."""
    stmt = select(Queue).order_by(Queue.key)
    if team:
        stmt = stmt.where(Queue.team == team)
    if kind:
        stmt = stmt.where(Queue.kind == kind)
    if active is not None:
        stmt = stmt.where(Queue.active.is_(active))
    with db.session() as session:
        return paginate(session, stmt, page, per_page, queue_dict)


def get_queue(db: Database, policy: Policy, key: str, now: datetime) -> dict[str, Any]:
    """Return a queue with the rules that route to it and its waiting contacts' summary."""
    with db.session() as session:
        queue = session.get(Queue, key)
        if queue is None:
            raise NotFound(f"no queue {key!r}")
        data = queue_dict(queue)
        data["rules"] = _rules_using(session, policy, key)
        rows = _overview_rows(session, now, [key])
        data["waiting"] = rows.get(key, _empty_row())
        return data


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


def create_queue(db: Database, values: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
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
        data = queue_dict(queue)
        audit.record(
            session,
            actor=actor,
            action="queue.create",
            entity_type="queue",
            entity_id=key,
            after=_audit_view(data),
        )
    return data


def update_queue(
    db: Database, policy: Policy, key: str, changes: Mapping[str, Any], *, actor: str
) -> dict[str, Any]:
    """Change a queue's fields; a system queue, or one rules route to, cannot be deactivated."""
    fields = _check({name: changes[name] for name in _EDITABLE if name in changes})
    with db.transaction() as session:
        queue = session.get(Queue, key)
        if queue is None:
            raise NotFound(f"no queue {key!r}")
        before = queue_dict(queue)
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
        data = queue_dict(queue)
        audit.record(
            session,
            actor=actor,
            action="queue.update",
            entity_type="queue",
            entity_id=key,
            before=_audit_view(before),
            after=_audit_view(data),
        )
    return data


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
        before = queue_dict(queue)
        session.delete(queue)
        audit.record(
            session,
            actor=actor,
            action="queue.delete",
            entity_type="queue",
            entity_id=key,
            before=_audit_view(before),
        )


def _audit_view(data: Mapping[str, Any]) -> dict[str, Any]:
    return {name: data[name] for name in ("key", *_EDITABLE)}


# -- overview ----------------------------------------------------------------------------------


def _empty_row() -> dict[str, Any]:
    return {
        "waiting": 0,
        "oldest_received_at": None,
        "oldest_wait_seconds": None,
        "sla": {state.value: 0 for state in (SlaState.NONE, *LIVE_STATES)},
    }


def _overview_rows(
    session: Session, now: datetime, keys: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Count waiting contacts per queue and SLA state, with the oldest arrival: one query."""
    state = effective_sla_state(now).label("state")
    stmt = (
        select(Contact.queue_key, state, func.count(), func.min(Contact.received_at))
        .where(Contact.status == ContactStatus.WAITING.value, Contact.queue_key.is_not(None))
        .group_by(Contact.queue_key, state)
    )
    if keys is not None:
        stmt = stmt.where(Contact.queue_key.in_(keys))
    rows: dict[str, dict[str, Any]] = {}
    for key, sla_state, count, first in session.execute(stmt):
        row = rows.setdefault(str(key), _empty_row())
        row["waiting"] += count
        row["sla"][sla_state] = row["sla"].get(sla_state, 0) + count
        oldest = _aware(first)
        if oldest is not None and (
            row["oldest_received_at"] is None or oldest < row["oldest_received_at"]
        ):
            row["oldest_received_at"] = oldest
    for row in rows.values():
        oldest = row["oldest_received_at"]
        if oldest is not None:
            row["oldest_wait_seconds"] = max(0, int((now - oldest).total_seconds()))
            row["oldest_received_at"] = oldest.isoformat()
    return rows


def _aware(value: Any) -> datetime | None:
    # min() over a column comes back untyped on SQLite (a string or a naive datetime).
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)  # type: ignore[no-any-return]


def overview(
    db: Database,
    now: datetime,
    *,
    page: int,
    per_page: int,
    team: str | None = None,
    kind: str | None = None,
    include_inactive: bool = False,
) -> dict[str, Any]:
    """Return every queue with its waiting contacts, oldest wait and SLA state counts."""
    with db.session() as session:
        stmt = select(Queue).order_by(Queue.team, Queue.key)
        if team:
            stmt = stmt.where(Queue.team == team)
        if kind:
            stmt = stmt.where(Queue.kind == kind)
        if not include_inactive:
            stmt = stmt.where(Queue.active.is_(True))
        queues = list(session.scalars(stmt))
        rows = _overview_rows(session, now, [queue.key for queue in queues])
    items = []
    for queue in queues:
        item = {
            "key": queue.key,
            "name": queue.name,
            "team": queue.team,
            "kind": queue.kind,
            "active": queue.active,
            **rows.get(queue.key, _empty_row()),
        }
        items.append(item)
    # Busiest first, as a supervisor scans: breaches, then warnings, then the longest wait.
    items.sort(
        key=lambda item: (
            -item["sla"]["breached"],
            -item["sla"]["warning"],
            -(item["oldest_wait_seconds"] if item["oldest_wait_seconds"] is not None else -1),
            -item["waiting"],
            item["key"],
        )
    )
    totals = _empty_row()
    for item in items:
        totals["waiting"] += item["waiting"]
        for name, count in item["sla"].items():
            totals["sla"][name] += count
        wait = item["oldest_wait_seconds"]
        if wait is not None and (
            totals["oldest_wait_seconds"] is None or wait > totals["oldest_wait_seconds"]
        ):
            totals["oldest_wait_seconds"] = wait
            totals["oldest_received_at"] = item["oldest_received_at"]
    start = (page - 1) * per_page
    return {
        "generated_at": now.isoformat(),
        "totals": totals,
        "items": items[start : start + per_page],
        "page": page,
        "per_page": per_page,
        "total": len(items),
        "pages": -(-len(items) // per_page) if items else 0,
    }
