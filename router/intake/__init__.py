"""Intake: the one path every contact takes into the router, and who it is from."""

from router.intake.decision_record import StoredDecision
from router.intake.identity import (
    Identity,
    IdentityError,
    PinAccount,
    ReplyAuthor,
    account_by_pin,
    identify,
    identify_admin,
    reply_author,
)
from router.intake.request import ContactRequest, IntakeMode, IntakeResult, Sender
from router.intake.service import IntakeService
from router.intake.unit_of_work import FollowUp, StoredContact

__all__ = [
    "ContactRequest",
    "FollowUp",
    "Identity",
    "IdentityError",
    "IntakeMode",
    "IntakeResult",
    "IntakeService",
    "PinAccount",
    "ReplyAuthor",
    "Sender",
    "StoredContact",
    "StoredDecision",
    "account_by_pin",
    "identify",
    "identify_admin",
    "reply_author",
]
