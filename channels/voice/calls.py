"""The call-state store: one ``ivr_calls`` row per CallSid, its steps, and their stored answers.

Every step URL carries the step it answers: a delivery of a step already answered (Twilio
retrying, or `I-Twilio-Idempotency-Token` seen before) gets the stored TwiML again and changes
nothing, so a PIN failure is never counted twice. A step is claimed by one conditional UPDATE in
the same transaction as its effects, so concurrent deliveries of one step cannot both count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from channels.voice.pin_checks import LOCKED_UNTIL
from ivr.machine import Stage, Turn
from router.store.db import Database
from router.store.models.voice import IvrCall

log = logging.getLogger(__name__)

# CallStatus values after which the call is over.
TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})

# A call's stored row: the ORM entity, or the same columns as a Core row (the PIN step).
CallRecord = IvrCall | Row[Any]

_CALLS = cast(Table, IvrCall.__table__)
# The hot paths' statements are built once (Core: no per-call statement building).
# A new call is stored in one statement that also reads the calling number's lock-out (one
# round trip fewer on PostgreSQL); the rare locked-out caller's row is then corrected.
_INSERT_CALL = insert(_CALLS).returning(LOCKED_UNTIL.scalar_subquery())
_LOCKED_OUT_CALL = update(_CALLS).where(_CALLS.c.call_sid == bindparam("locked_call_sid"))
# The PIN step reads through Core rows, not ORM entities: identity-map bookkeeping for three
# loads was a fifth of the step's time. Rows answer the same attribute names.
_CALL_BY_SID = select(_CALLS).where(IvrCall.call_sid == bindparam("call_sid"))
_CLAIM_STEP = update(_CALLS).where(
    _CALLS.c.call_sid == bindparam("claim_call_sid"),
    _CALLS.c.step == bindparam("claim_step"),
)


@dataclass(frozen=True)
class CallRequest:
    """What the IVR uses from one Twilio voice webhook (normalised by the handler)."""

    call_sid: str
    from_number: str
    to_number: str
    idempotency_token: str | None = None


class StepTaken(Exception):
    """Another delivery of the same step claimed it first; answer with what it stored."""


def insert_new(
    connection: Connection,
    call: CallRequest,
    *,
    turn: Turn,
    region: str,
    voice: str,
    twiml: str,
    caller: str,
    now: datetime,
) -> datetime | None:
    """Store a new call answered with ``twiml``; return when its calling number's lock-out ends.

    A call stored before (a repeated delivery of its first webhook) raises IntegrityError.
    """
    locked_until: datetime | None = connection.scalar(
        _INSERT_CALL,
        {
            "call_sid": call.call_sid,
            "state": turn.state.stage.value,
            "data": turn.state.to_data(),
            "region": region,
            "language": voice,
            "from_number": call.from_number[:64] or None,
            "to_number": call.to_number[:64] or None,
            "pin_failures": 0,
            "step": 1,
            "response": twiml,
            "idempotency_token": call.idempotency_token,
            "created_at": now,
            "updated_at": now,
            "caller": caller,
        },
    )
    return locked_until


def answer_locked_out(connection: Connection, call_sid: str, turn: Turn, twiml: str) -> None:
    """Replace a new call's first turn with the lock-out message."""
    connection.execute(
        _LOCKED_OUT_CALL,
        {
            "locked_call_sid": call_sid,
            "state": turn.state.stage.value,
            "data": turn.state.to_data(),
            "response": twiml,
        },
    )


def find(db: Database, call_sid: str) -> IvrCall | None:
    """Return the call's row, or None for a call never stored."""
    with db.session() as session:
        return session.get(IvrCall, call_sid)


def find_in(session: Session, call_sid: str) -> Row[Any] | None:
    """Return the call's columns as a Core row, read in the step's transaction."""
    return session.connection().execute(_CALL_BY_SID, {"call_sid": call_sid}).first()


def replay_if_answered(row: CallRecord, call: CallRequest, step: int, stage: Stage) -> str | None:
    """Return the stored answer when this delivery is for a step already answered."""
    if call.idempotency_token and call.idempotency_token == row.idempotency_token:
        return replay(row, stage.value)
    if step != row.step or row.state != stage.value:
        return replay(row, stage.value)
    return None


def replay(row: CallRecord, step_name: str) -> str:
    """Return the answer stored for the call's last step (a repeated delivery)."""
    log.info("voice call %s: %s delivered again; same answer", row.call_sid, step_name)
    if row.response is None:
        raise RuntimeError(f"call {row.call_sid} has no stored answer")
    response: str = row.response
    return response


def stored_response(db: Database, call: CallRequest, step_name: str) -> str:
    """Return the answer a concurrent delivery of the same step stored."""
    with db.session() as session:
        row = session.get(IvrCall, call.call_sid)
        if row is None or row.response is None:
            raise RuntimeError(f"call {call.call_sid} has no stored answer")
        return replay(row, step_name)


def advance(
    session: Session,
    call: CallRequest,
    step: int,
    turn: Turn,
    twiml: str,
    now: datetime,
    **values: Any,
) -> None:
    """Claim ``step`` and store the next state and answer, or raise StepTaken."""
    # A Core UPDATE on the table: the conditional claim needs no ORM bookkeeping.
    row = {
        "step": step + 1,
        "state": turn.state.stage.value,
        "data": turn.state.to_data(),
        "language": turn.state.voice,
        "response": twiml,
        "idempotency_token": call.idempotency_token,
        "updated_at": now,
        **values,
    }
    # The SET clause is the parameters' columns; the statement itself is built once.
    claimed = session.connection().execute(
        _CLAIM_STEP, {**row, "claim_call_sid": call.call_sid, "claim_step": step}
    )
    if claimed.rowcount != 1:
        raise StepTaken


def set_contact(session: Session, call_sid: str, contact_id: int) -> None:
    """Link the call to the contact intake opened for it."""
    session.execute(
        update(IvrCall).where(IvrCall.call_sid == call_sid).values(contact_id=contact_id)
    )


def claim_queue_result(
    session: Session,
    call: CallRequest,
    row: IvrCall,
    result: str,
    data: dict[str, Any],
    twiml: str,
    now: datetime,
    **values: Any,
) -> None:
    """Store why the caller left the queue and the answer, or raise StepTaken."""
    # Claimed against the result read, so a concurrent duplicate records nothing.
    claimed = session.execute(
        update(_CALLS)
        .where(
            _CALLS.c.call_sid == call.call_sid,
            _CALLS.c.queue_result.is_not_distinct_from(row.queue_result),
        )
        .values(
            queue_result=result,
            data=data,
            response=twiml,
            idempotency_token=call.idempotency_token,
            updated_at=now,
            **values,
        )
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise StepTaken


def set_status(session: Session, call_sid: str, call_status: str, now: datetime) -> None:
    """Store a status report of a call still in progress."""
    session.execute(
        update(_CALLS)
        .where(_CALLS.c.call_sid == call_sid, _CALLS.c.ended_at.is_(None))
        .values(status=call_status, updated_at=now)
    )


def end(session: Session, call_sid: str, call_status: str, now: datetime) -> bool:
    """Store the end of a call; return False when another report of the end came first."""
    ended = session.execute(
        update(_CALLS)
        .where(_CALLS.c.call_sid == call_sid, _CALLS.c.ended_at.is_(None))
        .values(status=call_status, ended_at=now, updated_at=now)
    )
    return bool(ended.rowcount == 1)  # type: ignore[attr-defined]
