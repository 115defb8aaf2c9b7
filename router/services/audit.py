"""The audit log: record who changed what, when, before and after, and read it back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from router.services.paging import Page, query_page
from router.store.db import Database
from router.store.models import AuditEntry


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Add an audit entry to the caller's transaction."""
    entry = AuditEntry(
        at=at or datetime.now(UTC),
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        before=before,
        after=after,
    )
    session.add(entry)
    return entry


def snapshot(view: Any) -> dict[str, Any]:
    """Return a service's frozen view as the JSON the audit log stores (instants as ISO 8601)."""
    return {name: _json_ready(value) for name, value in dataclasses.asdict(view).items()}


def _json_ready(value: Any) -> Any:
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, dict):
        return {name: _json_ready(item) for name, item in value.items()}
    return value


@dataclass(frozen=True)
class AuditEntryView:
    """An audit entry as staff read it."""

    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryView:
        """Return the view of a stored entry."""
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            entity_type=entry.entity_type,
            entity_id=entry.entity_id,
            before=entry.before,
            after=entry.after,
        )


def list_entries(
    db: Database,
    *,
    page: int,
    per_page: int,
    actor: str | None = None,
    action: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[AuditEntryView]:
    """Return audit entries, newest first, filtered by who, what, which and when."""
    stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor.strip().lower())
    if action:
        # "rule" matches rule.create, rule.update, ...; "rule.create" matches only itself.
        if "." in action:
            stmt = stmt.where(AuditEntry.action == action)
        else:
            stmt = stmt.where(AuditEntry.action.startswith(action + ".", autoescape=True))
    if entity_type:
        stmt = stmt.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.at < until)
    with db.session() as session:
        return query_page(session, stmt, page, per_page).map(AuditEntryView.of)
