"""The voice service: call state, PIN verification, lock-outs and queue outcomes, in transactions.

Handlers hand over one normalised ``CallRequest``; this module drives the pure state machine
(``ivr.machine``), keeps its state in ``ivr_calls`` keyed by CallSid, and answers TwiML rendered
by ``ivr.twiml``. Every step URL carries the step it answers: a delivery of a step already
answered (Twilio retrying, or `I-Twilio-Idempotency-Token` seen before) gets the stored TwiML
again and changes nothing, so a PIN failure is never counted twice. A step is claimed by one
conditional UPDATE in the same transaction as its effects, so concurrent deliveries of one step
cannot both count.

The PIN is looked up by its keyed hash in one indexed query and is never stored, logged or
echoed; neither are any Gather digits. Every PIN check takes a token from one bucket shared by all
web processes (``router.services.ratelimit``): PIN_GLOBAL_RATE_PER_MINUTE always, the stricter
PIN_ALERT_RATE_PER_MINUTE while the failure-rate alert holds. A check with no token left is not
made: the caller is answered at once with a pause at Twilio and the PIN prompt again, and that
costs no try and counts no failure (no worker ever sleeps).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from config.policy import Policy, Region
from config.settings import Settings
from ivr import machine
from ivr.catalog import ENGLISH_VOICE, Catalog
from ivr.machine import (
    FALLBACK_QUEUE,
    QUEUE_RESULT_BRIDGED,
    QUEUE_RESULT_FAILURES,
    QUEUE_RESULT_HANGUP,
    Action,
    CallState,
    IntakeOutcome,
    Limits,
    PinInput,
    PinOutcome,
    Stage,
    Turn,
)
from ivr.twiml import TWILIO_HOLD_MUSIC, Urls, Voice, render
from router.core.calendar import BusinessCalendar
from router.core.domain import Channel, ContactStatus, Tier
from router.core.entitlement import Access, channel_entitlement, effective_tier
from router.intake import (
    ContactRequest,
    IntakeResult,
    IntakeService,
    PinAccount,
    Sender,
    account_by_pin,
)
from router.services import ratelimit
from router.services.contact_changes import mark_answered
from router.services.ratelimit import RateLimit
from router.store.db import Database
from router.store.models import (
    Contact,
    ContactEvent,
    OpsEvent,
    PinAttempt,
    PinLockout,
)
from router.store.models.voice import IvrCall

log = logging.getLogger(__name__)

# CallStatus values after which the call is over.
TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# The pin_attempts/pin_lockouts key column is 32 characters wide.
_NUMBER_WIDTH = 32
WITHHELD_NUMBER = "withheld"

# TwiML answers kept by _render (they are a few kilobytes each).
_RENDERED_MAX = 512
# The hot paths' statements are built once (Core: no per-call statement building).
_LOCKED_UNTIL = select(PinLockout.locked_until).where(
    PinLockout.calling_number == bindparam("caller")
)
# A new call is stored in one statement that also reads the calling number's lock-out (one
# round trip fewer on PostgreSQL); the rare locked-out caller's row is then corrected.
_INSERT_CALL = insert(cast(Table, IvrCall.__table__)).returning(_LOCKED_UNTIL.scalar_subquery())
_LOCKED_OUT_CALL = update(cast(Table, IvrCall.__table__)).where(
    IvrCall.__table__.c.call_sid == bindparam("locked_call_sid")
)
# The PIN step's.
_RECENT_FAILURES = (
    select(func.count())
    .select_from(PinAttempt)
    .where(PinAttempt.succeeded.is_(False), PinAttempt.at > bindparam("since"))
)
_INSERT_ATTEMPT = insert(cast(Table, PinAttempt.__table__))
# The PIN step reads through Core rows, not ORM entities: identity-map bookkeeping for three
# loads was a fifth of the step's time. Rows answer the same attribute names.
_CALL_BY_SID = select(cast(Table, IvrCall.__table__)).where(
    IvrCall.call_sid == bindparam("call_sid")
)

# A call's stored row: the ORM entity, or the same columns as a Core row (the PIN step).
CallRecord = IvrCall | Row[Any]
_CLAIM_STEP = update(cast(Table, IvrCall.__table__)).where(
    IvrCall.__table__.c.call_sid == bindparam("claim_call_sid"),
    IvrCall.__table__.c.step == bindparam("claim_step"),
)

EVENT_UNKNOWN_NUMBER = "voice.unknown_number"
EVENT_PIN_LOCKOUT = "voice.pin_lockout"
EVENT_PIN_FAILURE_RATE = "voice.pin_failure_rate"
# The one token bucket every PIN check draws from (all calls, all web processes).
PIN_CHECKS_BUCKET = "voice.pin_checks"
# How long a held caller waits at Twilio before keying the PIN again, in seconds.
HOLD_MIN_SECONDS = 3
HOLD_MAX_SECONDS = 20


@dataclass(frozen=True)
class CallRequest:
    """What the IVR uses from one Twilio voice webhook (normalised by the handler)."""

    call_sid: str
    from_number: str
    to_number: str
    idempotency_token: str | None = None


@dataclass(frozen=True)
class VoiceConfig:
    """The voice channel's limits and constants, read from settings."""

    limits: Limits
    lockout_failures: int
    lockout_window: timedelta
    lockout_duration: timedelta
    alert_failures: int
    alert_window: timedelta
    pin_rate: RateLimit
    pin_alert_rate: RateLimit
    gather_timeout: int
    hold_music_url: str
    support_email: str
    pin_pepper: str

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceConfig:
        """Return the voice configuration in ``settings``."""
        return cls(
            limits=Limits(
                pin_tries=settings.pin_tries_per_call,
                prompt_repeats=settings.ivr_prompt_repeats,
            ),
            lockout_failures=settings.pin_lockout_failures,
            lockout_window=timedelta(seconds=settings.pin_lockout_window_seconds),
            lockout_duration=timedelta(seconds=settings.pin_lockout_seconds),
            alert_failures=settings.pin_alert_failures,
            alert_window=timedelta(seconds=settings.pin_alert_window_seconds),
            pin_rate=RateLimit(
                per_second=settings.pin_global_rate_per_minute / 60,
                burst=float(settings.pin_global_burst),
            ),
            # A smaller burst too: the first check under the alert caps what is left at once.
            pin_alert_rate=RateLimit(
                per_second=settings.pin_alert_rate_per_minute / 60,
                burst=float(min(settings.pin_global_burst, settings.pin_alert_rate_per_minute)),
            ),
            gather_timeout=settings.ivr_gather_timeout_seconds,
            hold_music_url=settings.hold_music_url or TWILIO_HOLD_MUSIC,
            support_email=settings.mail_from,
            pin_pepper=settings.pin_pepper,
        )


@dataclass(frozen=True)
class PinCheck:
    """What one PIN step found (the account only when the PIN matched)."""

    outcome: PinOutcome
    account_id: str | None = None
    failed: bool = False
    hold_seconds: int = 0  # how long a held caller waits at Twilio


class _StepTaken(Exception):
    """Another delivery of the same step claimed it first; answer with what it stored."""


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
        known = {self.catalog.voice_language(r.language) for r in policy.regions.values()}
        self._voices = frozenset(known | {ENGLISH_VOICE})
        self._rendered: dict[tuple[str, str, Urls, int], str] = {}

    # -- no database ------------------------------------------------------------------------

    def region_for(self, dialled: str) -> tuple[Region, bool]:
        """Return the region of the dialled number, or the default region and False."""
        region = self.policy.region_for_number(dialled) if dialled else None
        if region is not None:
            return region, True
        return self.policy.regions[self.policy.default_region], False

    def voice_for(self, dialled: str) -> str:
        """Return the <Say> language for callers of a dialled number."""
        return self.catalog.voice_language(self.region_for(dialled)[0].language)

    def fallback(self, dialled: str, urls: Urls) -> str:
        """Answer without the database: an apology, then the fallback queue."""
        voice = self.voice_for(dialled)
        return self._render(machine.fallback(), voice, urls)

    def failure(self, dialled: str, urls: Urls) -> str:
        """Answer a request the IVR cannot use (the caller hears an apology and how to reach us)."""
        return self._render(machine.failure(), self.voice_for(dialled), urls)

    def queue_left_offline(self, result: str, dialled: str, urls: Urls) -> str:
        """Answer a queue result when it cannot be recorded (the caller is still on the line)."""
        actions = machine.on_queue_left(result, retried=True)
        return self._render(actions, self.voice_for(dialled), urls)

    def wait(self, voice: str, position: int | None, average_wait: int | None, urls: Urls) -> str:
        """Answer the queue's wait URL: position, expected wait, hold music (no database)."""
        if voice not in self._voices:
            voice = self.catalog.voice_language(
                self.policy.regions[self.policy.default_region].language
            )
        actions = machine.waiting(position, average_wait, self.config.hold_music_url)
        return self._render(actions, voice, urls)

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
                twiml = self._render(turn.actions, voice, urls, step=1)
                locked_until = connection.scalar(
                    _INSERT_CALL,
                    {
                        "call_sid": call.call_sid,
                        "state": turn.state.stage.value,
                        "data": turn.state.to_data(),
                        "region": region.key,
                        "language": voice,
                        "from_number": call.from_number[:64] or None,
                        "to_number": call.to_number[:64] or None,
                        "pin_failures": 0,
                        "step": 1,
                        "response": twiml,
                        "idempotency_token": call.idempotency_token,
                        "created_at": now,
                        "updated_at": now,
                        "caller": _caller_key(call),
                    },
                )
                locked = locked_until is not None and locked_until > now
                if locked:
                    turn = machine.start(voice, locked=True, offer_english=offer_english)
                    twiml = self._render(turn.actions, voice, urls, step=1)
                    connection.execute(
                        _LOCKED_OUT_CALL,
                        {
                            "locked_call_sid": call.call_sid,
                            "state": turn.state.stage.value,
                            "data": turn.state.to_data(),
                            "response": twiml,
                        },
                    )
                if not known:
                    connection.execute(
                        insert(cast(Table, OpsEvent.__table__)),
                        {
                            "at": now,
                            "kind": EVENT_UNKNOWN_NUMBER,
                            "severity": "warning",
                            "message": (
                                f"a call came in on a number no region lists; answered as "
                                f"region {region.key!r} (add it to regions.toml)"
                            ),
                            "data": {
                                "dialled": call.to_number,
                                "call_sid": call.call_sid,
                                "region": region.key,
                            },
                        },
                    )
        except IntegrityError:
            # This call's first webhook was stored before: Twilio retrying it, or a concurrent
            # copy of it. Either way it gets the answer stored then.
            with self.db.session() as session:
                row = session.get(IvrCall, call.call_sid)
                if row is None:
                    raise
                return self._replay(row, "incoming")
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
                row = (
                    session.connection().execute(_CALL_BY_SID, {"call_sid": call.call_sid}).first()
                )
                if row is not None:
                    replay = self._replay_if_answered(row, call, step, Stage.PIN)
                    if replay is not None:
                        return replay
                    state = CallState.from_data(row.state, row.data)
                    check = self._check_pin(session, call, state, digits, now)
                    turn = machine.on_pin(
                        state, check.outcome, self.config.limits, hold_seconds=check.hold_seconds
                    )
                    twiml = self._render(turn.actions, turn.state.voice, urls, step=step + 1)
                    self._advance(
                        session,
                        call,
                        step,
                        turn,
                        twiml,
                        now,
                        account_id=check.account_id or row.account_id,
                        pin_failures=row.pin_failures + (1 if check.failed else 0),
                    )
        except _StepTaken:
            return self._stored_response(call, "pin")
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
        with self.db.session() as session:
            row = session.get(IvrCall, call.call_sid)
        if row is None:
            log.info("voice call %s: menu step for an unknown call; starting over", call.call_sid)
            return self.incoming(call, urls)
        replay = self._replay_if_answered(row, call, step, stage)
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
            outcome = _intake_outcome(result)
            queue = result.queue if outcome is IntakeOutcome.QUEUED else FALLBACK_QUEUE
            routed = machine.on_intake(
                turn.state, outcome, queue=queue or FALLBACK_QUEUE, reference=result.reference
            )
            turn = Turn(routed.state, turn.actions + routed.actions)
            contact_id = result.contact_id
            if routed.state.stage is not Stage.QUEUED:
                queue = None
        twiml = self._render(turn.actions, turn.state.voice, urls, step=step + 1)
        try:
            with self.db.transaction() as session:
                extra: dict[str, Any] = {}
                if contact_id is not None:
                    extra["contact_id"] = contact_id
                if queue is not None:
                    extra.update(queue=queue, enqueued_at=now)
                self._advance(session, call, step, turn, twiml, now, **extra)
        except _StepTaken:
            return self._stored_response(call, stage.value)
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
                    return self._render(actions, self.voice_for(call.to_number), urls)
                if call.idempotency_token and call.idempotency_token == row.idempotency_token:
                    return self._replay(row, "queue-result")
                if row.queue_result == result and result not in QUEUE_RESULT_FAILURES:
                    return self._replay(row, "queue-result")
                data = dict(row.data)
                retried = bool(data.get("fallback_enqueued"))
                actions = machine.on_queue_left(result, retried=retried)
                twiml = self._render(actions, row.language or ENGLISH_VOICE, urls)
                values: dict[str, Any] = {}
                if result in QUEUE_RESULT_FAILURES and not retried:
                    data["fallback_enqueued"] = True
                    values.update(queue=FALLBACK_QUEUE, enqueued_at=now)
                # Claimed against the result read, so a concurrent duplicate records nothing.
                table = _calls_table()
                claimed = session.execute(
                    update(table)
                    .where(
                        table.c.call_sid == call.call_sid,
                        table.c.queue_result.is_not_distinct_from(row.queue_result),
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
                    raise _StepTaken
                if row.contact_id is not None:
                    kind, at = _queue_event(result, row.enqueued_at, queue_time, now)
                    session.add(
                        ContactEvent(
                            contact_id=row.contact_id,
                            at=at,
                            kind=kind,
                            actor="twilio",
                            data={
                                "queue": row.queue,
                                "queue_result": result,
                                "queue_time_seconds": queue_time,
                            },
                        )
                    )
                    contact = session.get(Contact, row.contact_id)
                    if kind == "bridged" and contact is not None:
                        # An engineer picked up: the call leaves the queue and its clock stops.
                        mark_answered(session, contact, at, actor="twilio", now=now)
        except _StepTaken:
            return self._stored_response(call, "queue-result")
        log.info("voice call %s left the queue: %s", call.call_sid, result)
        return twiml

    def status(self, call: CallRequest, call_status: str, duration: int | None) -> bool:
        """Record the call's status ("completed" on the timeline); False for an unknown call."""
        now = self.clock()
        table = _calls_table()
        with self.db.transaction() as session:
            row = session.get(IvrCall, call.call_sid)
            if row is None:
                return False
            if row.status == call_status:
                return True  # a retried delivery
            if call_status not in TERMINAL_STATUSES:
                session.execute(
                    update(table)
                    .where(table.c.call_sid == call.call_sid, table.c.ended_at.is_(None))
                    .values(status=call_status, updated_at=now)
                )
                return True
            # Only the first report of the end is recorded, even if two arrive at once.
            ended = session.execute(
                update(table)
                .where(table.c.call_sid == call.call_sid, table.c.ended_at.is_(None))
                .values(status=call_status, ended_at=now, updated_at=now)
            )
            if ended.rowcount == 1 and row.contact_id is not None:  # type: ignore[attr-defined]
                session.add(
                    ContactEvent(
                        contact_id=row.contact_id,
                        at=now,
                        kind="completed",
                        actor="twilio",
                        data={
                            "call_status": call_status,
                            "duration_seconds": duration,
                            "queue_result": row.queue_result,
                        },
                    )
                )
        log.info("voice call %s status: %s", call.call_sid, call_status)
        return True

    # -- PIN checks -------------------------------------------------------------------------

    def _check_pin(
        self,
        session: Session,
        call: CallRequest,
        state: CallState,
        digits: str | None,
        now: datetime,
    ) -> PinCheck:
        keyed = machine.classify_pin(digits, can_switch=state.offer_english)
        if keyed is PinInput.EMPTY:
            return PinCheck(PinOutcome.EMPTY)
        if keyed is PinInput.SWITCH_LANGUAGE:
            return PinCheck(PinOutcome.SWITCH_LANGUAGE)
        caller = _caller_key(call)
        connection = session.connection()
        locked_until = connection.scalar(_LOCKED_UNTIL, {"caller": caller})
        if locked_until is not None and locked_until > now:
            return PinCheck(PinOutcome.LOCKED)
        recent_failures = connection.scalar(
            _RECENT_FAILURES, {"since": now - self.config.alert_window}
        )
        alerting = (recent_failures or 0) >= self.config.alert_failures
        # Taken in this step's transaction: a step that is rolled back (a concurrent duplicate
        # delivery) gives its token back. Every taker waits for the bucket row, so the
        # allowance holds across processes.
        decision = ratelimit.take(
            connection,
            PIN_CHECKS_BUCKET,
            self.config.pin_alert_rate if alerting else self.config.pin_rate,
            now=now,
        )
        if not decision.allowed:
            wait = math.ceil(decision.retry_after_seconds)
            return PinCheck(
                PinOutcome.HELD, hold_seconds=min(HOLD_MAX_SECONDS, max(HOLD_MIN_SECONDS, wait))
            )
        account = None
        if keyed is PinInput.CANDIDATE:
            account = account_by_pin(connection, self.config.pin_pepper, digits or "")
        connection.execute(
            _INSERT_ATTEMPT,
            {
                "calling_number": caller,
                "call_sid": call.call_sid,
                "succeeded": account is not None,
                "at": now,
            },
        )
        if account is not None:
            outcome = (
                PinOutcome.VERIFIED
                if self._phone_open(session, account, now)
                else PinOutcome.NOT_ENTITLED
            )
            return PinCheck(outcome, account_id=account.id)
        if (recent_failures or 0) + 1 >= self.config.alert_failures:
            self._raise_alert(session, (recent_failures or 0) + 1, now)
        if self._lock_if_over_limit(session, caller, locked_until, call, now):
            return PinCheck(PinOutcome.LOCKED, failed=True)
        return PinCheck(PinOutcome.WRONG, failed=True)

    def _phone_open(self, session: Session, account: PinAccount, now: datetime) -> bool:
        """Return True when the account's tier in force offers phone support right now."""
        served = effective_tier(
            account_tier=Tier(account.tier),
            account_trial_started_at=account.trial_started_at,
            partner_tier=None,
            partner_trial_started_at=None,
            via_partner=False,
            now=now,
            trial_days=self.policy.trial_days,
        )
        mode = self.policy.tiers[served.tier].channels[Channel.VOICE]
        calendar = _LazyCalendar(
            lambda: self.intake.cache.account_calendar(session, account, now.date())
        )
        entitlement = channel_entitlement(
            tier=served.tier, channel=Channel.VOICE, mode=mode, now=now, calendar=calendar
        )
        return entitlement.access is Access.LIVE

    def _lock_if_over_limit(
        self,
        session: Session,
        caller: str,
        locked_until: datetime | None,
        call: CallRequest,
        now: datetime,
    ) -> bool:
        """Lock the calling number when its failures in the window reach the limit."""
        since = now - self.config.lockout_window
        if locked_until is not None and locked_until > since:
            since = locked_until  # failures before a lock-out ended were paid for
        failures = session.scalar(
            select(func.count())
            .select_from(PinAttempt)
            .where(
                PinAttempt.calling_number == caller,
                PinAttempt.succeeded.is_(False),
                PinAttempt.at > since,
            )
        )
        if (failures or 0) < self.config.lockout_failures:
            return False
        until = now + self.config.lockout_duration
        values = {"calling_number": caller, "locked_until": until, "failures": failures or 0}
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(PinLockout).values(created_at=now, **values)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[PinLockout.calling_number],
                set_={"locked_until": until, "failures": failures or 0, "created_at": now},
            )
        )
        session.add(
            OpsEvent(
                at=now,
                kind=EVENT_PIN_LOCKOUT,
                severity="warning",
                message=(
                    f"calling number locked out of PIN checks until {until.isoformat()} after "
                    f"{failures} failures (staff can unlock it)"
                ),
                data={
                    "calling_number": caller,
                    "failures": failures,
                    "locked_until": until.isoformat(),
                    "call_sid": call.call_sid,
                },
            )
        )
        log.warning("voice: calling number locked out after %s PIN failures", failures)
        return True

    def _raise_alert(self, session: Session, failures: int, now: datetime) -> None:
        """Record one alert per window while PIN failures across all numbers exceed the limit."""
        window = self.config.alert_window
        already = session.scalar(
            select(OpsEvent.id)
            .where(OpsEvent.kind == EVENT_PIN_FAILURE_RATE, OpsEvent.at > now - window)
            .limit(1)
        )
        if already is not None:
            return
        per_minute = round(self.config.pin_alert_rate.per_second * 60, 3)
        session.add(
            OpsEvent(
                at=now,
                kind=EVENT_PIN_FAILURE_RATE,
                severity="critical",
                message=(
                    f"{failures} PIN failures across all calling numbers in the last "
                    f"{int(window.total_seconds() // 60)} minutes (limit "
                    f"{self.config.alert_failures}); PIN checks across all calls are limited to "
                    f"{per_minute:g} a minute while this lasts"
                ),
                data={
                    "failures": failures,
                    "window_seconds": int(window.total_seconds()),
                    "limit": self.config.alert_failures,
                    "checks_per_minute": per_minute,
                },
            )
        )
        log.warning("voice: PIN failure rate alert: %s failures in the window", failures)

    # -- contacts ---------------------------------------------------------------------------

    def _contact_request(
        self, row: CallRecord, state: CallState, account_id: str
    ) -> ContactRequest:
        region = self.policy.regions.get(row.region or "")
        tags = {"voice:ivr"}
        if state.severity_defaulted:
            tags.add("ivr:severity-defaulted")
        if state.topic_defaulted:
            tags.add("ivr:topic-defaulted")
        return ContactRequest(
            channel=Channel.VOICE,
            external_id=row.call_sid,
            received_at=row.created_at,
            sender=Sender(account_id=account_id, from_address=row.from_number),
            subject=f"Phone call to the {region.name if region else 'support'} number",
            severity=state.severity,
            category=state.category,
            topic=state.topic,
            number_region=row.region,
            language=state.voice,
            tags=frozenset(tags),
            # Never digits: what was chosen is in severity/category/topic, not keyed input.
            details={
                "call_sid": row.call_sid,
                "dialled_number": row.to_number,
                "calling_number": row.from_number,
                "severity_source": "default" if state.severity_defaulted else "caller",
                "topic_source": "default" if state.topic_defaulted else "caller",
            },
        )

    def _open_contact(self, row: IvrCall, state: CallState) -> IntakeResult:
        if row.account_id is None:
            raise RuntimeError(f"call {row.call_sid} reached intake without a verified account")
        return self.intake.intake(self._contact_request(row, state, row.account_id))

    def _record_not_entitled(self, row: CallRecord, state: CallState, account_id: str) -> None:
        """Keep a verified caller without phone support as a deflected contact staff can see."""
        result = self.intake.intake(self._contact_request(row, state, account_id))
        with self.db.transaction() as session:
            session.execute(
                update(IvrCall)
                .where(IvrCall.call_sid == row.call_sid)
                .values(contact_id=result.contact_id)
            )
        log.info(
            "voice call %s: account without phone support; contact %s (%s)",
            row.call_sid,
            result.reference,
            result.status.value,
        )

    # -- state ------------------------------------------------------------------------------

    def _replay_if_answered(
        self, row: CallRecord, call: CallRequest, step: int, stage: Stage
    ) -> str | None:
        """Return the stored answer when this delivery is for a step already answered."""
        if call.idempotency_token and call.idempotency_token == row.idempotency_token:
            return self._replay(row, stage.value)
        if step != row.step or row.state != stage.value:
            return self._replay(row, stage.value)
        return None

    def _advance(
        self,
        session: Session,
        call: CallRequest,
        step: int,
        turn: Turn,
        twiml: str,
        now: datetime,
        **values: Any,
    ) -> None:
        """Claim ``step`` and store the next state and answer, or raise _StepTaken."""
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
            raise _StepTaken

    def _stored_response(self, call: CallRequest, step_name: str) -> str:
        with self.db.session() as session:
            row = session.get(IvrCall, call.call_sid)
            if row is None or row.response is None:
                raise RuntimeError(f"call {call.call_sid} has no stored answer")
            return self._replay(row, step_name)

    def _replay(self, row: CallRecord, step_name: str) -> str:
        log.info("voice call %s: %s delivered again; same answer", row.call_sid, step_name)
        if row.response is None:
            raise RuntimeError(f"call {row.call_sid} has no stored answer")
        return row.response

    def _render(self, actions: tuple[Action, ...], voice: str, urls: Urls, *, step: int = 0) -> str:
        # Rendering is pure and most answers recur (every new call hears one of a few
        # greetings), so they are kept, keyed by everything the TwiML depends on.
        key = (repr(actions), voice, urls, step)
        twiml = self._rendered.get(key)
        if twiml is None:
            spoken = Voice(self.catalog, voice, {"email": self.config.support_email})
            twiml = render(
                actions,
                voice=spoken,
                urls=urls,
                step=step,
                gather_timeout=self.config.gather_timeout,
            )
            if len(self._rendered) >= _RENDERED_MAX:
                self._rendered.clear()
            self._rendered[key] = twiml
        return twiml


class _LazyCalendar:
    """A business calendar built only if entitlement asks (phone modes other than open/closed)."""

    def __init__(self, build: Callable[[], BusinessCalendar]) -> None:
        self._build = build
        self._calendar: BusinessCalendar | None = None

    def _get(self) -> BusinessCalendar:
        if self._calendar is None:
            self._calendar = self._build()
        return self._calendar

    def is_open(self, t: datetime) -> bool:
        return self._get().is_open(t)

    def next_open(self, t: datetime) -> datetime:
        return self._get().next_open(t)


def _calls_table() -> Table:
    return cast(Table, IvrCall.__table__)


def _caller_key(call: CallRequest) -> str:
    """Return the calling number as the PIN tables key it (withheld numbers share one key)."""
    return (call.from_number or WITHHELD_NUMBER)[:_NUMBER_WIDTH]


def _intake_outcome(result: IntakeResult) -> IntakeOutcome:
    if result.status is ContactStatus.WAITING and result.queue:
        return IntakeOutcome.QUEUED
    if result.access in (Access.DENIED, Access.HELP_CENTER):
        return IntakeOutcome.NOT_ENTITLED
    return IntakeOutcome.FAILED


def _queue_event(
    result: str, enqueued_at: datetime | None, queue_time: int | None, now: datetime
) -> tuple[str, datetime]:
    """Return the timeline event kind for a queue result and when it happened."""
    if result == QUEUE_RESULT_BRIDGED:
        if enqueued_at is not None and queue_time is not None:
            # Twilio reports a bridge when the conversation ends; it began after QueueTime.
            return "bridged", enqueued_at + timedelta(seconds=queue_time)
        return "bridged", now
    if result == QUEUE_RESULT_HANGUP:
        return "abandoned", now
    if result in QUEUE_RESULT_FAILURES:
        return "queue_failed", now
    return "left_queue", now
