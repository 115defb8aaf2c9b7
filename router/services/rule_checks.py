"""Check candidate routing rules without storing them: validate, and dry-run a sample contact.

A candidate is a complete rule list, or one rule put into the set in force (replacing a rule, or
inserted at a position). Candidates are checked against the stored queues and the policy's SLA
policies, exactly as a change is before it is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
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
from router.intake import ContactRequest, IdentityError, IntakeService
from router.services.errors import Invalid, NotFound
from router.services.routing import RoutingCache
from router.services.rules import current_state, get_rules
from router.store.db import Database
from router.store.models import Queue


@dataclass(frozen=True)
class RuleCheck:
    """Whether candidate rules compile, and every problem if not."""

    valid: bool
    base_version: int
    position: int | None
    errors: list[RuleError]


@dataclass(frozen=True)
class DryRun:
    """A sample contact routed with candidate rules and with the rules in force."""

    base_version: int
    candidate_rule: str | None
    candidate_position: int | None
    candidate_matched: bool
    changed: bool
    candidate: dict[str, Any]
    in_force: dict[str, Any]


def errors_to_dicts(errors: Sequence[RuleError]) -> list[dict[str, str]]:
    """Return rule errors as JSON-ready {path, message} pairs."""
    return [{"path": error.path, "message": error.message} for error in errors]


def _known(session: Session, policy: Policy) -> tuple[set[str], set[str]]:
    return set(session.scalars(select(Queue.key))), set(policy.sla_policies)


def validate(db: Database, policy: Policy, documents: Any) -> list[RuleError]:
    """Return every problem in a complete list of rule documents (empty when they compile)."""
    with db.session() as session:
        queues, sla_policies = _known(session, policy)
    return list(validate_rules(documents, queues=queues, sla_policies=sla_policies))


def check(
    db: Database,
    policy: Policy,
    documents: Sequence[Mapping[str, Any]] | None,
    *,
    rule: Mapping[str, Any] | None = None,
    replacing: str | None = None,
    position: int | None = None,
) -> RuleCheck:
    """Validate a complete list, or one ``rule`` put into the set in force; store nothing."""
    state = get_rules(db, policy)
    index = None
    if documents is None:
        if rule is None:
            raise Invalid("give the candidate rules, or one candidate rule")
        documents, index = candidate_documents(
            state.documents, rule, replacing=replacing, position=position
        )
    errors = validate(db, policy, documents)
    return RuleCheck(valid=not errors, base_version=state.version, position=index, errors=errors)


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
) -> DryRun:
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
    return DryRun(
        base_version=state.version,
        candidate_rule=rule_id,
        candidate_position=candidate_index,
        candidate_matched=rule_id is not None
        and with_candidate["decision"]["matched_rule"] == rule_id,
        changed=_routing(with_candidate) != _routing(in_force),
        candidate=with_candidate,
        in_force=in_force,
    )


def _routing(explained: Mapping[str, Any]) -> tuple[Any, ...]:
    decision = explained["decision"]
    return (
        decision["queue"],
        decision["priority"],
        decision["sla_policy"],
        tuple(decision["tags"]),
        decision["matched_rule"],
    )
