"""The voice service: one method per IVR webhook, tying the call machine, the stores and intake.

Handlers hand over one normalised ``CallRequest``; each step drives the pure state machine
(``ivr.machine``), keeps its state through ``calls`` (replaying a step already answered), checks
PINs through ``pin_checks``, opens contacts through intake, and answers TwiML from ``answers``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from channels.voice import calls, contacts, events
from channels.voice.answers import Answers
from channels.voice.calls import CallRecord, CallRequest, StepTaken
from channels.voice.config import VoiceConfig
from channels.voice.pin_checks import PinChecks, caller_key
from config.policy import Policy, Region
from ivr import machine
from ivr.catalog import ENGLISH_VOICE, Catalog
from ivr.machine import (
    FALLBACK_QUEUE,
    QUEUE_RESULT_FAILURES,
    CallState,
    IntakeOutcome,
    PinOutcome,
    Stage,
    Turn,
)
from ivr.twiml import Urls
from router.intake import IntakeResult, IntakeService
from router.store.db import Database
from router.store.models.voice import IvrCall

log = logging.getLogger(__name__)


class VoiceService:
    """Answer the IVR's webhooks; one method per voice URL."""

    def __init__(
        self,
        db: Database,
        policy: Policy,
        intake: IntakeService,
        config: VoiceConfig,
        *,
        catalog: Catalog | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.policy = policy
        self.intake = intake
        self.config = config
        self.catalog = catalog or Catalog(
            english_overrides={
                f"severity.{severity}": entry.definition
                for severity, entry in policy.severities.items()
            }
        )
        # Injectable so tests control time (the PIN lock-outs, alert window and rate limit).
        self.clock = clock or (lambda: datetime.now(UTC))
        self.answers = Answers(
            policy,
            self.catalog,
            support_email=config.support_email,
            gather_timeout=config.gather_timeout,
        )
        self.pin_checks = PinChecks(policy, intake.cache, config)

    # -- no database ------------------------------------------------------------------------

    def region_for(self, dialled: str) -> tuple[Region, bool]:
        """Return the region of the dialled number, or the default region and False."""
        return self.answers.region_for(dialled)

    def voice_for(self, dialled: str) -> str:
        """Return the <Say> language for callers of a dialled number."""
        return self.answers.voice_for(dialled)

    def fallback(self, dialled: str, urls: Urls) -> str:
        """Answer without the database: an apology, then the fallback queue."""
        return self.answers.render(machine.fallback(), self.voice_for(dialled), urls)

    def failure(self, dialled: str, urls: Urls) -> str:
        """Answer a request the IVR cannot use (the caller hears an apology and how to reach us)."""
        return self.answers.render(machine.failure(), self.voice_for(dialled), urls)

    def queue_left_offline(self, result: str, dialled: str, urls: Urls) -> str:
        """Answer a queue result when it cannot be recorded (the caller is still on the line)."""
        actions = machine.on_queue_left(result, retried=True)
        return self.answers.render(actions, self.voice_for(dialled), urls)

    def wait(self, voice: str, position: int | None, average_wait: int | None, urls: Urls) -> str:
        """Answer the queue's wait URL: position, expected wait, hold music (no database)."""
        actions = machine.waiting(position, average_wait, self.config.hold_music_url)
        return self.answers.render(actions, self.answers.known_voice(voice), urls)

    # -- call steps -------------------------------------------------------------------------

    def incoming(self, call: CallRequest, urls: Urls) -> str:
        """Answer a new call: greeting and PIN prompt (or the lock-out message)."""
        now = self.clock()
        region, known = self.region_for(call.to_number)
        voice = self.catalog.voice_language(region.language)
        try:
            with self.db.connection() as connection:
                # A new call is by far the common case, so its CallSid is not looked up first:
                # a repeated delivery fails the insert below and is answered from the stored row.
                offer_english = not self.catalog.is_english(voice)
                turn = machine.start(voice, locked=False, offer_english=offer_english)
                twiml = self.answers.render(turn.actions, voice, urls, step=1)
                locked_until = calls.insert_new(
                    connection,
                    call,
                    turn=turn,
                    region=region.key,
                    voice=voice,
                    twiml=twiml,
                    caller=caller_key(call.from_number),
                    now=now,
                )
                locked = locked_until is not None and locked_until > now
                if locked:
                    turn = machine.start(voice, locked=True, offer_english=offer_english)
                    twiml = self.answers.render(turn.actions, voice, urls, step=1)
                    calls.answer_locked_out(connection, call.call_sid, turn, twiml)
                if not known:
                    events.unknown_number(
                        connection,
                        dialled=call.to_number,
                        call_sid=call.call_sid,
                        region=region.key,
                        now=now,
                    )
        except IntegrityError:
            # This call's first webhook was stored before: Twilio retrying it, or a concurrent
            # copy of it. Either way it gets the answer stored then.
            row = calls.find(self.db, call.call_sid)
            if row is None:
                raise
            return calls.replay(row, "incoming")
        log.info(
            "voice call %s answered: region %s%s%s",
            call.call_sid,
            region.key,
            "" if known else " (unknown dialled number)",
            " (calling number locked out)" if locked else "",
        )
        return twiml

    def pin(self, call: CallRequest, step: int, digits: str | None, urls: Urls) -> str:
        """Check the keyed PIN (or take the silence / language switch) and move on."""
        now = self.clock()
        try:
            with self.db.transaction() as session:
                row = calls.find_in(session, call.call_sid)
                if row is not None:
                    replay = calls.replay_if_answered(row, call, step, Stage.PIN)
                    if replay is not None:
                        return replay
                    state = CallState.from_data(row.state, row.data)
                    check = self.pin_checks.check(
                        session, caller_key(call.from_number), call.call_sid, state, digits, now
                    )
                    turn = machine.on_pin(
                        state, check.outcome, self.config.limits, hold_seconds=check.hold_seconds
                    )
                    twiml = self.answers.render(turn.actions, turn.state.voice, urls, step=step + 1)
                    calls.advance(
                        session,
                        call,
                        step,
                        turn,
                        twiml,
                        now,
                        account_id=check.account_id or row.account_id,
                        pin_failures=row.pin_failures + (1 if check.failed else 0),
                    )
        except StepTaken:
            return calls.stored_response(self.db, call, "pin")
        if row is None:
            log.info("voice call %s: PIN step for an unknown call; starting over", call.call_sid)
            return self.incoming(call, urls)
        log.info("voice call %s: PIN step -> %s", call.call_sid, check.outcome.value)
        if check.outcome is PinOutcome.NOT_ENTITLED and check.account_id is not None:
            try:
                self._record_not_entitled(row, turn.state, check.account_id)
            except SQLAlchemyError:
                # The caller still hears where to go instead (never the human fallback queue);
                # only the staff-visible record of the call is missing.
                log.exception("voice call %s: could not record the deflected call", row.call_sid)
        return twiml

    def menu(
        self, call: CallRequest, stage: Stage, step: int, digits: str | None, urls: Urls
    ) -> str:
        """Take a severity or topic choice; after the topic, open the contact and queue it."""
        now = self.clock()
        row = calls.find(self.db, call.call_sid)
        if row is None:
            log.info("voice call %s: menu step for an unknown call; starting over", call.call_sid)
            return self.incoming(call, urls)
        replay = calls.replay_if_answered(row, call, step, stage)
        if replay is not None:
            return replay
        state = CallState.from_data(row.state, row.data)
        turn = machine.on_menu(state, digits, self.config.limits)
        contact_id: int | None = None
        queue: str | None = None
        if turn.needs_intake:
            # Intake is idempotent by CallSid, so a concurrent retry of this step that also
            # gets here finds the same contact; only one of them then claims the step below.
            result = self._open_contact(row, turn.state)
            outcome = contacts.intake_outcome(result)
            queue = result.queue if outcome is IntakeOutcome.QUEUED else FALLBACK_QUEUE
            routed = machine.on_intake(
                turn.state, outcome, queue=queue or FALLBACK_QUEUE, reference=result.reference
            )
            turn = Turn(routed.state, turn.actions + routed.actions)
            contact_id = result.contact_id
            if routed.state.stage is not Stage.QUEUED:
                queue = None
        twiml = self.answers.render(turn.actions, turn.state.voice, urls, step=step + 1)
        try:
            with self.db.transaction() as session:
                extra: dict[str, Any] = {}
                if contact_id is not None:
                    extra["contact_id"] = contact_id
                if queue is not None:
                    extra.update(queue=queue, enqueued_at=now)
                calls.advance(session, call, step, turn, twiml, now, **extra)
        except StepTaken:
            return calls.stored_response(self.db, call, stage.value)
        log.info("voice call %s: %s step -> %s", call.call_sid, stage.value, turn.state.stage.value)
        return twiml

    def queue_result(
        self, call: CallRequest, result: str, queue_time: int | None, urls: Urls
    ) -> str:
        """Record why the caller left the queue (bridged, abandoned, failed) and answer."""
        now = self.clock()
        try:
            with self.db.transaction() as session:
                row = session.get(IvrCall, call.call_sid)
                if row is None:
                    actions = machine.on_queue_left(result, retried=False)
                    return self.answers.render(actions, self.voice_for(call.to_number), urls)
                if call.idempotency_token and call.idempotency_token == row.idempotency_token:
                    return calls.replay(row, "queue-result")
                if row.queue_result == result and result not in QUEUE_RESULT_FAILURES:
                    return calls.replay(row, "queue-result")
                data = dict(row.data)
                retried = bool(data.get("fallback_enqueued"))
                actions = machine.on_queue_left(result, retried=retried)
                twiml = self.answers.render(actions, row.language or ENGLISH_VOICE, urls)
                values: dict[str, Any] = {}
                if result in QUEUE_RESULT_FAILURES and not retried:
                    data["fallback_enqueued"] = True
                    values.update(queue=FALLBACK_QUEUE, enqueued_at=now)
                calls.claim_queue_result(session, call, row, result, data, twiml, now, **values)
                contacts.record_queue_left(session, row, result, queue_time, now)
        except StepTaken:
            return calls.stored_response(self.db, call, "queue-result")
        log.info("voice call %s left the queue: %s", call.call_sid, result)
        return twiml

    def status(self, call: CallRequest, call_status: str, duration: int | None) -> bool:
        """Record the call's status ("completed" on the timeline); False for an unknown call."""
        now = self.clock()
        with self.db.transaction() as session:
            row = session.get(IvrCall, call.call_sid)
            if row is None:
                return False
            if row.status == call_status:
                return True  # a retried delivery
            if call_status not in calls.TERMINAL_STATUSES:
                calls.set_status(session, call.call_sid, call_status, now)
                return True
            # Only the first report of the end is recorded, even if two arrive at once.
            if calls.end(session, call.call_sid, call_status, now):
                contacts.record_completed(session, row, call_status, duration, now)
        log.info("voice call %s status: %s", call.call_sid, call_status)
        return True

    # -- contacts ---------------------------------------------------------------------------

    def _open_contact(self, row: IvrCall, state: CallState) -> IntakeResult:
        if row.account_id is None:
            raise RuntimeError(f"call {row.call_sid} reached intake without a verified account")
        return self.intake.intake(contacts.contact_request(self.policy, row, state, row.account_id))

    def _record_not_entitled(self, row: CallRecord, state: CallState, account_id: str) -> None:
        """Keep a verified caller without phone support as a deflected contact staff can see."""
        result = self.intake.intake(contacts.contact_request(self.policy, row, state, account_id))
        with self.db.transaction() as session:
            calls.set_contact(session, row.call_sid, result.contact_id)
        log.info(
            "voice call %s: account without phone support; contact %s (%s)",
            row.call_sid,
            result.reference,
            result.status.value,
        )
