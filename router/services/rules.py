"""Routing rules administration: versions, optimistic concurrency, validation, dry-run, roll back.

The rules in force are the highest stored ``RuleSetVersion``; every change stores a new, complete
version (nothing is edited in place), named by the version it was based on. A change based on an
older version than the one in force is refused (409), so two staff editing at once never lose each
other's work. Every version is validated against the stored queues and the policy's SLA policies
before it is stored, and audited with the state before and after.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.policy import Policy
from router.core.rules import (
    ContactAttributes,
    RuleError,
    RuleSet,
    RuleValidationError,
    compile_rules,
    validate_rules,
)
from router.intake.service import ContactRequest, IdentityError, IntakeService
from router.services import audit
from router.services.errors import Conflict, Invalid, NotFound
from router.services.paging import iso, page_dict
from router.services.routing import RoutingCache
from router.store.db import Database
from router.store.models import Queue, RuleSetVersion


@dataclass(frozen=True)
class RuleSetState:
    """The rule set in force: its version (0 = the shipped rules, nothing stored yet)."""

    version: int
    documents: list[dict[str, Any]]
    created_at: datetime | None
    created_by: str | None
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the state as JSON-ready data, each rule with its position."""
        return {
            "version": self.version,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "note": self.note,
            "rules": [with_position(doc, i) for i, doc in enumerate(self.documents)],
        }

    def index(self, rule_id: str) -> int:
        """Return the position of ``rule_id``; raise NotFound."""
        for i, doc in enumerate(self.documents):
            if doc.get("id") == rule_id:
                return i
        raise NotFound(f"no rule {rule_id!r} in version {self.version}")


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


def errors_to_dicts(errors: Sequence[RuleError]) -> list[dict[str, str]]:
    """Return rule errors as JSON-ready {path, message} pairs."""
    return [{"path": error.path, "message": error.message} for error in errors]


# -- reading -----------------------------------------------------------------------------------


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
    return _state(row)


def _state(row: RuleSetVersion) -> RuleSetState:
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


def get_rule(db: Database, policy: Policy, rule_id: str) -> dict[str, Any]:
    """Return one rule of the set in force, with its position and the version."""
    state = get_rules(db, policy)
    index = state.index(rule_id)
    return {"version": state.version, "rule": with_position(state.documents[index], index)}


def list_versions(
    db: Database, page: int, per_page: int, created_by: str | None = None
) -> dict[str, Any]:
    """Return stored versions, newest first, each with what changed from the one before."""
    with db.session() as session:
        stmt = select(RuleSetVersion)
        count = select(func.count()).select_from(RuleSetVersion)
        if created_by:
            stmt = stmt.where(RuleSetVersion.created_by == created_by.strip().lower())
            count = count.where(RuleSetVersion.created_by == created_by.strip().lower())
        total = session.scalar(count) or 0
        rows = list(
            session.scalars(
                stmt.order_by(RuleSetVersion.version.desc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
        )
        wanted = {row.version - 1 for row in rows} - {row.version for row in rows}
        previous = {
            row.version: row
            for row in session.scalars(
                select(RuleSetVersion).where(RuleSetVersion.version.in_(wanted))
            )
        }
        previous.update({row.version: row for row in rows})
        items = []
        for row in rows:
            before = previous.get(row.version - 1)
            items.append(
                {
                    "version": row.version,
                    "created_at": iso(row.created_at),
                    "created_by": row.created_by,
                    "note": row.note,
                    "rule_count": len(row.documents.get("rules", [])),
                    "changes": diff(
                        before.documents.get("rules", []) if before else [],
                        row.documents.get("rules", []),
                    ),
                }
            )
    return page_dict(items, page, per_page, total)


def get_version(db: Database, version: int) -> dict[str, Any]:
    """Return one stored version in full."""
    with db.session() as session:
        row = session.get(RuleSetVersion, version)
        if row is None:
            raise NotFound(f"no rule set version {version}")
        return _state(row).to_dict()


def diff(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Summarise what changed between two rule lists: added, removed, changed, reordered."""
    old = {doc.get("id"): normalise(doc) for doc in before}
    new = {doc.get("id"): normalise(doc) for doc in after}
    common_old = [rule_id for rule_id in old if rule_id in new]
    common_new = [rule_id for rule_id in new if rule_id in old]
    return {
        "added": [str(rule_id) for rule_id in new if rule_id not in old],
        "removed": [str(rule_id) for rule_id in old if rule_id not in new],
        "changed": [str(rule_id) for rule_id in common_new if old[rule_id] != new[rule_id]],
        "reordered": common_old != common_new,
    }


# -- validation and dry-run --------------------------------------------------------------------


def _known(session: Session, policy: Policy) -> tuple[set[str], set[str]]:
    return set(session.scalars(select(Queue.key))), set(policy.sla_policies)


def validate(db: Database, policy: Policy, documents: Any) -> list[dict[str, str]]:
    """Return every problem in a complete list of rule documents (empty when they compile)."""
    with db.session() as session:
        queues, sla_policies = _known(session, policy)
    return errors_to_dicts(validate_rules(documents, queues=queues, sla_policies=sla_policies))


def candidate_documents(
    current: Sequence[Mapping[str, Any]],
    rule: Mapping[str, Any],
    *,
    replacing: str | None = None,
    position: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Return the rule list with ``rule`` put in (replacing a rule, or inserted), and its index."""
    documents = [dict(doc) for doc in current]
    if replacing is not None:
        for i, doc in enumerate(documents):
            if doc.get("id") == replacing:
                index = i
                break
        else:
            raise NotFound(f"no rule {replacing!r} to replace")
        documents[index] = dict(rule)
        if position is not None and position != index:
            moved = documents.pop(index)
            index = _insert_at(documents, position)
            documents.insert(index, moved)
        return documents, index
    index = _insert_at(documents, position if position is not None else len(documents) - 1)
    documents.insert(index, dict(rule))
    return documents, index


def _insert_at(documents: Sequence[Mapping[str, Any]], position: int) -> int:
    """Check an insertion point: anywhere before the last (default) rule."""
    last = max(0, len(documents) - 1)
    if not 0 <= position <= last:
        raise Invalid(
            f"position must be between 0 and {last} (the default rule stays last)",
            errors=[{"path": "position", "message": f"must be between 0 and {last}"}],
        )
    return position


def compile_candidate(session: Session, policy: Policy, documents: Any, version: int) -> RuleSet:
    """Compile candidate rules against the stored queues; raise Invalid listing every problem."""
    queues, sla_policies = _known(session, policy)
    try:
        return compile_rules(documents, queues=queues, sla_policies=sla_policies, version=version)
    except RuleValidationError as exc:
        raise Invalid(
            f"{len(exc.errors)} problem(s) in the routing rules",
            errors=errors_to_dicts(exc.errors),
        ) from None


class _CandidateCache(RoutingCache):
    """Route with candidate rules; calendars come from the live cache."""

    def __init__(self, live: RoutingCache, ruleset: RuleSet) -> None:
        super().__init__(live.policy)
        self._live = live
        self._candidate = ruleset

    def rules(self, session: Session) -> RuleSet:
        return self._candidate

    def calendar(self, session: Session, **kwargs: Any) -> Any:
        return self._live.calendar(session, **kwargs)


def dry_run(
    intake: IntakeService,
    documents: Sequence[Mapping[str, Any]] | None,
    sample: ContactAttributes | ContactRequest,
    *,
    rule: Mapping[str, Any] | None = None,
    replacing: str | None = None,
    position: int | None = None,
    assume_enabled: bool = True,
) -> dict[str, Any]:
    """Route a sample contact with candidate rules and with the rules in force; store nothing.

    Give either a complete candidate list (``documents``) or one ``rule`` to put into the set in
    force (replacing a rule, or inserted at ``position``). A single candidate rule is tried as
    enabled unless ``assume_enabled`` is False, since rules are usually dry-run before enabling.
    """
    with intake.db.session() as session:
        state = current_state(session, intake.policy)
        candidate_index: int | None = None
        if documents is None:
            if rule is None:
                raise Invalid("give the candidate rules, or one candidate rule")
            candidate = dict(rule)
            if assume_enabled and not candidate.get("default", False):
                candidate["enabled"] = True
            documents, candidate_index = candidate_documents(
                state.documents, candidate, replacing=replacing, position=position
            )
        ruleset = compile_candidate(session, intake.policy, documents, state.version + 1)
    trial = IntakeService(intake.db, intake.policy, _CandidateCache(intake.cache, ruleset))
    try:
        if isinstance(sample, ContactAttributes):
            with_candidate = trial.explain_attributes(sample)
            in_force = intake.explain_attributes(sample)
        else:
            with_candidate = trial.explain_request(sample)
            in_force = intake.explain_request(sample)
    except IdentityError as exc:
        raise NotFound(f"cannot identify the sample contact: {exc.reason}") from None
    rule_id = None
    if candidate_index is not None:
        rule_id = ruleset.rules[candidate_index].id
    changed = _routing(with_candidate) != _routing(in_force)
    return {
        "base_version": state.version,
        "candidate_rule": rule_id,
        "candidate_position": candidate_index,
        "candidate_matched": rule_id is not None
        and with_candidate["decision"]["matched_rule"] == rule_id,
        "changed": changed,
        "candidate": with_candidate,
        "in_force": in_force,
    }


def _routing(explained: Mapping[str, Any]) -> tuple[Any, ...]:
    decision = explained["decision"]
    return (
        decision["queue"],
        decision["priority"],
        decision["sla_policy"],
        tuple(decision["tags"]),
        decision["matched_rule"],
    )


# -- changing ----------------------------------------------------------------------------------


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
            return _state(row)
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
) -> dict[str, Any]:
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

    new = _commit(db, policy, base_version, actor, note, change)
    return _rule_result(new, str(rule_id))


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
) -> dict[str, Any]:
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

    new = _commit(db, policy, base_version, actor, note, change)
    return _rule_result(new, new_id)


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
) -> dict[str, Any]:
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

    new = _commit(db, policy, base_version, actor, note, change)
    return _rule_result(new, rule_id)


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


def _rule_result(state: RuleSetState, rule_id: str) -> dict[str, Any]:
    index = state.index(rule_id)
    return {"version": state.version, "rule": with_position(state.documents[index], index)}
