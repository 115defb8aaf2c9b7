"""Routing rules as stored: the set in force, single rules, the version history and its diffs.

The rules in force are the highest stored ``RuleSetVersion``; every change stores a new, complete
version (nothing is edited in place; see router.services.rule_changes). Version 0 stands for the
rules shipped with the policy, in force until the first change is stored.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.policy import Policy
from router.services.errors import NotFound
from router.services.paging import Page, list_page, query_page
from router.store.db import Database
from router.store.models import RuleSetVersion


@dataclass(frozen=True)
class RuleSetState:
    """The rule set in force: its version (0 = the shipped rules, nothing stored yet)."""

    version: int
    documents: list[dict[str, Any]]
    created_at: datetime | None
    created_by: str | None
    note: str | None

    @property
    def rules(self) -> list[dict[str, Any]]:
        """Return every rule document with its position."""
        return [with_position(doc, i) for i, doc in enumerate(self.documents)]

    def index(self, rule_id: str) -> int:
        """Return the position of ``rule_id``; raise NotFound."""
        for i, doc in enumerate(self.documents):
            if doc.get("id") == rule_id:
                return i
        raise NotFound(f"no rule {rule_id!r} in version {self.version}")

    def rule(self, rule_id: str) -> RuleInVersion:
        """Return one rule with its position and this version; raise NotFound."""
        index = self.index(rule_id)
        return RuleInVersion(version=self.version, rule=with_position(self.documents[index], index))


@dataclass(frozen=True)
class RuleInVersion:
    """One rule document (with its position) and the version it belongs to."""

    version: int
    rule: dict[str, Any]


@dataclass(frozen=True)
class RulePage(Page[dict[str, Any]]):
    """One page of the rules in force, and the version they belong to."""

    version: int
    created_at: datetime | None
    created_by: str | None
    note: str | None


@dataclass(frozen=True)
class RuleDiff:
    """What changed between two rule lists, by rule id."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    reordered: bool


@dataclass(frozen=True)
class VersionSummary:
    """A stored version, with what it changed from the one before."""

    version: int
    created_at: datetime
    created_by: str | None
    note: str | None
    rule_count: int
    changes: RuleDiff


def normalise(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Return a rule document with every optional key filled in (for display and editing)."""
    out: dict[str, Any] = {
        "id": doc.get("id"),
        "description": doc.get("description", ""),
        "enabled": doc.get("enabled", True),
        "default": doc.get("default", False),
    }
    if "when" in doc:
        out["when"] = copy.deepcopy(doc["when"])
    then = copy.deepcopy(dict(doc.get("then") or {}))
    then.setdefault("tags", [])
    out["then"] = then
    return out


def with_position(doc: Mapping[str, Any], position: int) -> dict[str, Any]:
    """Return a rule document with its position in the list."""
    return {**normalise(doc), "position": position}


def current_state(session: Session, policy: Policy) -> RuleSetState:
    """Return the rule set in force."""
    version = session.scalar(select(func.max(RuleSetVersion.version)))
    if version is None:
        return RuleSetState(
            version=0,
            documents=[normalise(doc) for doc in policy.rule_documents],
            created_at=None,
            created_by=None,
            note="shipped default rules (nothing stored yet)",
        )
    row = session.get(RuleSetVersion, version)
    assert row is not None
    return stored_state(row)


def stored_state(row: RuleSetVersion) -> RuleSetState:
    """Return a stored version as a rule set."""
    return RuleSetState(
        version=row.version,
        documents=[normalise(doc) for doc in row.documents.get("rules", [])],
        created_at=row.created_at,
        created_by=row.created_by,
        note=row.note,
    )


def get_rules(db: Database, policy: Policy) -> RuleSetState:
    """Return the rule set in force."""
    with db.session() as session:
        return current_state(session, policy)


def get_rule(db: Database, policy: Policy, rule_id: str) -> RuleInVersion:
    """Return one rule of the set in force, with its position and the version."""
    return get_rules(db, policy).rule(rule_id)


def list_rules(
    state: RuleSetState,
    *,
    page: int,
    per_page: int,
    enabled: bool | None = None,
    queue: str | None = None,
    text: str | None = None,
) -> RulePage:
    """Return one page of the rules in force, in order, filtered by enabled, queue and text."""
    found = state.rules
    if enabled is not None:
        found = [rule for rule in found if rule["enabled"] is enabled]
    if queue:
        found = [rule for rule in found if rule["then"].get("queue") == queue]
    if text:
        needle = text.lower()
        found = [
            rule
            for rule in found
            if needle in str(rule["id"]).lower() or needle in rule["description"].lower()
        ]
    chosen = list_page(found, page, per_page)
    return RulePage(
        chosen.items,
        chosen.page,
        chosen.per_page,
        chosen.total,
        version=state.version,
        created_at=state.created_at,
        created_by=state.created_by,
        note=state.note,
    )


def list_versions(
    db: Database, page: int, per_page: int, created_by: str | None = None
) -> Page[VersionSummary]:
    """Return stored versions, newest first, each with what changed from the one before."""
    stmt = select(RuleSetVersion).order_by(RuleSetVersion.version.desc())
    if created_by:
        stmt = stmt.where(RuleSetVersion.created_by == created_by.strip().lower())
    with db.session() as session:
        rows = query_page(session, stmt, page, per_page)
        # The version before each row's: one query for those not on this page already.
        wanted = {row.version - 1 for row in rows.items} - {row.version for row in rows.items}
        previous = {
            row.version: row
            for row in session.scalars(
                select(RuleSetVersion).where(RuleSetVersion.version.in_(wanted))
            )
        }
        previous.update({row.version: row for row in rows.items})
        return rows.map(lambda row: _summarise(row, previous.get(row.version - 1)))


def _summarise(row: RuleSetVersion, before: RuleSetVersion | None) -> VersionSummary:
    return VersionSummary(
        version=row.version,
        created_at=row.created_at,
        created_by=row.created_by,
        note=row.note,
        rule_count=len(row.documents.get("rules", [])),
        changes=diff(
            before.documents.get("rules", []) if before else [],
            row.documents.get("rules", []),
        ),
    )


def get_version(db: Database, version: int) -> RuleSetState:
    """Return one stored version in full."""
    with db.session() as session:
        row = session.get(RuleSetVersion, version)
        if row is None:
            raise NotFound(f"no rule set version {version}")
        return stored_state(row)


def diff(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> RuleDiff:
    """Summarise what changed between two rule lists: added, removed, changed, reordered."""
    old = {doc.get("id"): normalise(doc) for doc in before}
    new = {doc.get("id"): normalise(doc) for doc in after}
    common_old = [rule_id for rule_id in old if rule_id in new]
    common_new = [rule_id for rule_id in new if rule_id in old]
    return RuleDiff(
        added=[str(rule_id) for rule_id in new if rule_id not in old],
        removed=[str(rule_id) for rule_id in old if rule_id not in new],
        changed=[str(rule_id) for rule_id in common_new if old[rule_id] != new[rule_id]],
        reordered=common_old != common_new,
    )
