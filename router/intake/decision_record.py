"""The decision intake keeps on a contact (its ``decision`` JSON): written and read back here.

A routed contact's record is the routing outcome and its explain trace, plus the entitlement
(``access``, ``next_open_at``) and the attributes it was routed on; a rejected one holds only
the reason. Channels answering a contact later read it back through ``StoredDecision``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from router.core.decision import RoutingOutcome
from router.core.entitlement import Access, ChannelEntitlement
from router.core.rules import ContactAttributes


def routed_record(
    outcome: RoutingOutcome, entitlement: ChannelEntitlement, attrs: ContactAttributes
) -> dict[str, Any]:
    """Return the decision JSON of a contact intake identified and routed."""
    return {
        **outcome.to_dict(),
        "access": entitlement.access.value,
        "next_open_at": entitlement.next_open_at.isoformat() if entitlement.next_open_at else None,
        "attributes": attrs.to_dict(),
    }


def rejected_record(reason: str) -> dict[str, Any]:
    """Return the decision JSON of a contact intake could not tie to an account."""
    return {"rejected": reason}


@dataclass(frozen=True)
class StoredDecision:
    """What a contact's answer needs of its stored decision, typed."""

    access: Access | None
    next_open_at: datetime | None
    rejected: str | None  # why intake rejected the contact, if it did

    @classmethod
    def of(cls, record: Mapping[str, Any] | None) -> StoredDecision:
        """Read a contact's decision JSON (empty for a contact never routed)."""
        record = record or {}
        access = record.get("access")
        next_open = record.get("next_open_at")
        return cls(
            access=Access(access) if access else None,
            next_open_at=datetime.fromisoformat(next_open) if next_open else None,
            rejected=record.get("rejected"),
        )
