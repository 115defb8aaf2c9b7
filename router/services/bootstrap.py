"""Seed the store with the shipped policy's queues and routing rules when they are absent."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from config.policy import Policy
from router.services import audit
from router.store.db import Database
from router.store.models import Queue, RuleSetVersion


@dataclass(frozen=True)
class SeedResult:
    """What seeding added."""

    queues_added: int
    rules_version_added: int | None


def seed_policy_defaults(db: Database, policy: Policy, *, actor: str = "system") -> SeedResult:
    """Add missing default queues, and rule set version 1 if no rules are stored yet."""
    with db.transaction() as session:
        existing = set(session.scalars(select(Queue.key)))
        added = 0
        for queue in policy.queues.values():
            if queue.key in existing:
                continue
            session.add(
                Queue(
                    key=queue.key,
                    name=queue.name,
                    team=queue.team,
                    kind=queue.kind,
                    owners=list(queue.owners),
                )
            )
            added += 1
        session.flush()
        version = None
        if session.scalar(select(func.count()).select_from(RuleSetVersion)) == 0:
            documents = {"rules": [dict(rule) for rule in policy.rule_documents]}
            session.add(
                RuleSetVersion(
                    version=1, documents=documents, created_by=actor, note="shipped default rules"
                )
            )
            version = 1
            audit.record(
                session,
                actor=actor,
                action="rules.seed",
                entity_type="rule_set",
                entity_id="1",
                after=documents,
            )
    return SeedResult(queues_added=added, rules_version_added=version)
