"""Change the routing rules: add, edit, delete, move, reorder, replace and roll back.

Every change stores a new, complete version named by the version it was based on. A change based
on an older version than the one in force is refused (409), so two staff editing at once never
lose each other's work. Every version is validated against the stored queues and the policy's SLA
policies before it is stored, and audited with the state before and after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.policy import Policy
from router.services import audit
from router.services.errors import Conflict, Invalid, NotFound
from router.services.rule_checks import candidate_documents, compile_candidate
from router.services.rules import (
    RuleInVersion,
    RuleSetState,
    current_state,
    normalise,
    stored_state,
)
from router.store.db import Database
from router.store.models import RuleSetVersion


@dataclass(frozen=True)
class _Change:
    """A new list of rule documents and how to audit it."""

    documents: list[dict[str, Any]]
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    note: str


def _commit(
    db: Database,
    policy: Policy,
    base_version: int,
    actor: str,
    note: str | None,
    change: Callable[[Session, RuleSetState], _Change],
    now: datetime | None = None,
) -> RuleSetState:
    """Store the change as the next version if the rules in force are still ``base_version``."""
    now = now or datetime.now(UTC)
    try:
        with db.transaction() as session:
            state = current_state(session, policy)
            if base_version != state.version:
                raise _stale(base_version, state.version)
            result = change(session, state)
            version = state.version + 1
            ruleset = compile_candidate(session, policy, result.documents, version)
            documents = ruleset.to_documents()
            row = RuleSetVersion(
                version=version,
                documents={"rules": documents},
                created_at=now,
                created_by=actor,
                note=(note or result.note)[:2000],
            )
            session.add(row)
            # Two editors based on the same version race for the same primary key here; the
            # loser's transaction rolls back and is answered with 409.
            session.flush()
            after = dict(result.after or {})
            audit.record(
                session,
                actor=actor,
                action=result.action,
                entity_type=result.entity_type,
                entity_id=result.entity_id,
                before={"version": state.version, **(result.before or {})},
                after={"version": version, **after},
                at=now,
            )
            return stored_state(row)
    except IntegrityError:
        with db.session() as session:
            latest = current_state(session, policy).version
        raise _stale(base_version, latest) from None


def _stale(base_version: int, current: int) -> Conflict:
    return Conflict(
        f"the rules changed: your edit is based on version {base_version} but version {current} "
        "is in force; reload, re-apply your change and save again",
        base_version=base_version,
        current_version=current,
    )


def create_rule(
    db: Database,
    policy: Policy,
    *,
    base_version: int,
    rule: Mapping[str, Any],
    position: int | None,
    actor: str,
    note: str | None = None,
) -> RuleInVersion:
    """Add a rule (by default just above the default rule); return it and the new version."""
    rule_id = rule.get("id")

    def change(session: Session, state: RuleSetState) -> _Change:
        if any(doc.get("id") == rule_id for doc in state.documents):
            raise Conflict(f"a rule with id {rule_id!r} already exists", rule_id=rule_id)
        documents, index = candidate_documents(state.documents, rule, position=position)
        return _Change(
            documents=documents,
            action="rule.create",
            entity_type="rule",
            entity_id=str(rule_id),
            before=None,
            after={"rule": dict(rule), "position": index},
            note=f"created rule {rule_id}",
        )

    return _commit(db, policy, base_version, actor, note, change).rule(str(rule_id))


def update_rule(
    db: Database,
    policy: Policy,
    rule_id: str,
    *,
    base_version: int,
    rule: Mapping[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
    actor: str,
    note: str | None = None,
) -> RuleInVersion:
    """Replace a rule (``rule``) or change some of its keys (``changes``), keeping its place."""

    new_id = rule_id
    if rule is not None:
        new_id = str(rule.get("id", rule_id))

    def change(session: Session, state: RuleSetState) -> _Change:
        index = state.index(rule_id)
        old = state.documents[index]
        if rule is not None:
            updated = {"id": rule_id, **dict(rule)}
        else:
            updated = {**old, **dict(changes or {})}
            updated["id"] = rule_id
        if updated.get("id") != rule_id and any(
            doc.get("id") == updated.get("id") for doc in state.documents
        ):
            raise Conflict(f"a rule with id {updated.get('id')!r} already exists")
        documents = list(state.documents)
        documents[index] = updated
        action = "rule.update"
        if changes is not None and set(changes) == {"enabled"}:
            action = "rule.enable" if changes["enabled"] else "rule.disable"
        return _Change(
            documents=documents,
            action=action,
            entity_type="rule",
            entity_id=rule_id,
            before={"rule": old, "position": index},
            after={"rule": updated, "position": index},
            note={
                "rule.enable": f"enabled rule {rule_id}",
                "rule.disable": f"disabled rule {rule_id}",
            }.get(action, f"edited rule {rule_id}"),
        )

    return _commit(db, policy, base_version, actor, note, change).rule(new_id)


def delete_rule(
    db: Database,
    policy: Policy,
    rule_id: str,
    *,
    base_version: int,
    actor: str,
    note: str | None = None,
) -> RuleSetState:
    """Remove a rule (never the default rule); return the new rule set."""

    def change(session: Session, state: RuleSetState) -> _Change:
        index = state.index(rule_id)
        old = state.documents[index]
        if old.get("default"):
            raise Invalid(
                "the default rule cannot be deleted: it routes everything no other rule matches",
                errors=[{"path": f"rules[{index}]", "message": "the default rule is required"}],
            )
        documents = state.documents[:index] + state.documents[index + 1 :]
        return _Change(
            documents=documents,
            action="rule.delete",
            entity_type="rule",
            entity_id=rule_id,
            before={"rule": old, "position": index},
            after=None,
            note=f"deleted rule {rule_id}",
        )

    return _commit(db, policy, base_version, actor, note, change)


def move_rule(
    db: Database,
    policy: Policy,
    rule_id: str,
    *,
    base_version: int,
    position: int | None = None,
    offset: int | None = None,
    actor: str,
    note: str | None = None,
) -> RuleInVersion:
    """Move a rule to ``position`` or by ``offset`` places (-1: up one); the default stays last."""

    def change(session: Session, state: RuleSetState) -> _Change:
        index = state.index(rule_id)
        if state.documents[index].get("default"):
            raise Invalid("the default rule always stays last")
        target = position if position is not None else index + (offset or 0)
        last = len(state.documents) - 2  # the default rule holds the last place
        if not 0 <= target <= last:
            raise Invalid(
                f"rule {rule_id!r} can move to positions 0 to {last} (the default rule stays last)",
                errors=[{"path": "position", "message": f"must be between 0 and {last}"}],
            )
        documents = list(state.documents)
        documents.insert(target, documents.pop(index))
        return _Change(
            documents=documents,
            action="rule.move",
            entity_type="rule",
            entity_id=rule_id,
            before={"position": index, "order": _ids(state.documents)},
            after={"position": target, "order": _ids(documents)},
            note=f"moved rule {rule_id} from position {index} to {target}",
        )

    return _commit(db, policy, base_version, actor, note, change).rule(rule_id)


def reorder(
    db: Database,
    policy: Policy,
    *,
    base_version: int,
    order: Sequence[str],
    actor: str,
    note: str | None = None,
) -> RuleSetState:
    """Put the rules in the given order (every rule id exactly once)."""

    def change(session: Session, state: RuleSetState) -> _Change:
        ids = _ids(state.documents)
        problems = []
        unknown = [rule_id for rule_id in order if rule_id not in ids]
        missing = [rule_id for rule_id in ids if rule_id not in order]
        repeated = sorted({rule_id for rule_id in order if list(order).count(rule_id) > 1})
        if unknown:
            problems.append(f"unknown rule id(s): {', '.join(unknown)}")
        if missing:
            problems.append(f"missing rule id(s): {', '.join(missing)}")
        if repeated:
            problems.append(f"repeated rule id(s): {', '.join(repeated)}")
        if problems:
            raise Invalid(
                "the order must list every rule id exactly once: " + "; ".join(problems),
                errors=[{"path": "order", "message": problem} for problem in problems],
            )
        by_id = {doc["id"]: doc for doc in state.documents}
        documents = [by_id[rule_id] for rule_id in order]
        return _Change(
            documents=documents,
            action="rules.reorder",
            entity_type="rule_set",
            entity_id="order",
            before={"order": ids},
            after={"order": list(order)},
            note="reordered rules",
        )

    return _commit(db, policy, base_version, actor, note, change)


def replace_rules(
    db: Database,
    policy: Policy,
    *,
    base_version: int,
    documents: Sequence[Mapping[str, Any]],
    actor: str,
    note: str | None = None,
) -> RuleSetState:
    """Store a complete new list of rules."""

    def change(session: Session, state: RuleSetState) -> _Change:
        return _Change(
            documents=[dict(doc) for doc in documents],
            action="rules.replace",
            entity_type="rule_set",
            entity_id="rules",
            before={"rules": state.documents},
            after={"rules": [dict(doc) for doc in documents]},
            note="replaced the rule set",
        )

    return _commit(db, policy, base_version, actor, note, change)


def rollback(
    db: Database,
    policy: Policy,
    to_version: int,
    *,
    base_version: int,
    actor: str,
    note: str | None = None,
) -> RuleSetState:
    """Store a new version equal to an old one (history is never rewritten)."""

    def change(session: Session, state: RuleSetState) -> _Change:
        row = session.get(RuleSetVersion, to_version)
        if row is None:
            raise NotFound(f"no rule set version {to_version}")
        documents = [normalise(doc) for doc in row.documents.get("rules", [])]
        return _Change(
            documents=documents,
            action="rules.rollback",
            entity_type="rule_set",
            entity_id=str(to_version),
            before={"rules": state.documents},
            after={"rolled_back_to": to_version, "rules": documents},
            note=f"rolled back to version {to_version}",
        )

    return _commit(db, policy, base_version, actor, note, change)


def _ids(documents: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(doc.get("id")) for doc in documents]
