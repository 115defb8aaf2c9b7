"""Signed calls through the app: every regional number and every branch of the IVR.

Every TwiML answer is validated against the conformance XSD by the Phone fixture.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from lxml import etree
from sqlalchemy import func, select

from app import create_app
from channels.voice.events import (
    EVENT_PIN_FAILURE_RATE,
    EVENT_PIN_LOCKOUT,
    EVENT_UNKNOWN_NUMBER,
)
from config.policy import Policy
from ivr.twiml import TWILIO_HOLD_MUSIC
from router.core.pins import pin_hash
from router.services import pins
from router.services.errors import NotFound
from router.store.db import Database
from router.store.models import Contact, ContactEvent, OpsEvent, PinAttempt, PinLockout, SupportPin
from router.store.models.voice import IvrCall
from tests.conftest import TEST_PEPPER, make_settings
from tests.functional.voice.conftest import (
    ACME_PIN,
    BR,
    CA,
    FR,
    GB,
    GLOBEX_PIN,
    HOOLI_PIN,
    IN_DOMESTIC,
    NORTHWIND_PIN,
    NOW,
    PUBLIC,
    US,
    WRONG_PIN,
    AppFactory,
    Call,
    Clock,
    Phone,
    contact_for,
    timeline,
)

NewCall = Callable[..., Call]
MAIL_FROM = "support@example.com"


def dialled_numbers(policy: Policy) -> list[tuple[str, str]]:
    """Return (region, number as a carrier delivers it) for every configured region."""
    return [(key, region.e164 or region.aliases[0]) for key, region in policy.regions.items()]


def ops_events(db: Database, kind: str) -> list[OpsEvent]:
    with db.session() as session:
        return list(session.scalars(select(OpsEvent).where(OpsEvent.kind == kind)))


def failures(db: Database) -> int:
    with db.session() as session:
        return (
            session.scalar(
                select(func.count()).select_from(PinAttempt).where(PinAttempt.succeeded.is_(False))
            )
            or 0
        )


def ivr_call(db: Database, sid: str) -> IvrCall:
    with db.session() as session:
        row = session.get(IvrCall, sid)
        assert row is not None
        return row


# -- every regional number ------------------------------------------------------------------


REGION_VOICES = {
    "au": "en-AU",
    "br": "pt-BR",
    "ca": "en-CA",
    "fr": "fr-FR",
    "in": "en-IN",
    "il": "en-US",
    "sg": "en-US",
    "ae": "en-US",
    "gb": "en-GB",
    "us": "en-US",
}
GREETINGS = {
    "pt-BR": "Obrigado por ligar para o Suporte Premium.",
    "fr-FR": "Merci d'avoir appelé le support Premium.",
}


@pytest.mark.parametrize("region", sorted(REGION_VOICES))
def test_every_regional_number_reaches_a_queue_in_its_language(
    region: str, phone: Phone, vdb: Database, policy: Policy
) -> None:
    number = dict(dialled_numbers(policy))[region]
    voice = REGION_VOICES[region]
    call = phone.simulate(number, f"{ACME_PIN},1,1")
    greeting = GREETINGS.get(voice, "Thank you for calling Premium Support.")
    assert call.heard[0] == greeting
    spoken = {
        verb.attrs["language"]
        for step in call.steps
        for node in step.verbs
        for verb in (node, *node.children)
        if verb.name == "Say" and "English" not in verb.text
    }
    assert spoken == {voice}
    contact = contact_for(vdb, call.call_sid)
    assert contact is not None and contact.status == "accepted"  # answered: bridged
    assert (contact.region, contact.language, contact.queue_key) == (region, voice, "cse-windows")
    assert contact.account_id == "acme" and contact.severity == "S1"
    assert ops_events(vdb, EVENT_UNKNOWN_NUMBER) == []
    assert [e.kind for e in contact.events] == [
        "received",
        "routed",
        "sla_started",
        "bridged",
        "accepted",
        "first_response",
        "sla_met",
        "completed",
    ]


@pytest.mark.parametrize(
    ("number", "region"),
    [
        (IN_DOMESTIC, "in"),
        ("000 800 050 3382", "in"),
        ("+910008000503382", "in"),
        (CA, "ca"),
        (US, "us"),
    ],
)
def test_india_domestic_form_and_canada_come_from_the_table(
    number: str, region: str, new_call: NewCall, vdb: Database
) -> None:
    call = new_call(to=number)
    call.start()
    assert ivr_call(vdb, call.sid).region == region


def test_an_unknown_number_answers_as_the_default_region_and_warns(
    phone: Phone, vdb: Database
) -> None:
    call = phone.simulate("+15557654321", f"{ACME_PIN},2,3")
    assert call.heard[0] == "Thank you for calling Premium Support."
    contact = contact_for(vdb, call.call_sid)
    assert contact is not None and contact.region == "us" and contact.queue_key == "cse-linux"
    (warning,) = ops_events(vdb, EVENT_UNKNOWN_NUMBER)
    assert warning.severity == "warning"
    assert warning.data == {"dialled": "+15557654321", "call_sid": call.call_sid, "region": "us"}


# -- premium success ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digit", "severity", "priority", "hours"),
    [("1", "S1", 90, 1), ("2", "S2", 80, 2), ("3", "S3", 70, 4)],
)
def test_premium_call_per_severity(
    digit: str,
    severity: str,
    priority: int,
    hours: int,
    new_call: NewCall,
    vdb: Database,
    clock: Clock,
) -> None:
    call = new_call(to=GB)
    call.start()
    assert call.action == "/voice/pin?step=1"
    clock.advance(seconds=20)
    call.press(ACME_PIN)
    assert "your PIN is verified" in call.said()
    for definition in (
        "Entire loss of functionality",
        "Major loss of functionality",
        "Partial, non-critical issue",
    ):
        assert definition in call.said()
    assert call.action == "/voice/severity?step=2"
    call.press(digit)
    assert call.action == "/voice/topic?step=3" and "For Windows, press 1." in call.said()
    clock.advance(seconds=20)
    call.press("4")  # identity
    enqueue = call.enqueued()
    assert enqueue is not None and enqueue.text == "cse-identity"
    assert enqueue.attrs["waitUrl"] == "/voice/wait?lang=en-GB"
    assert enqueue.attrs["action"] == "/voice/queue-result"
    contact = contact_for(vdb, call.sid)
    assert contact is not None
    assert f"Your reference is {' '.join(str(contact.id))}." in call.said().replace("C ", "", 1)
    assert (contact.severity, contact.priority, contact.tier) == (severity, priority, "premium")
    assert (contact.category, contact.topic, contact.sla_policy) == (
        "break-fix",
        "identity",
        "premium",
    )
    # The clock runs from when the call came in, not from when the menus were done.
    assert contact.received_at == NOW
    assert contact.due_at == NOW + timedelta(hours=hours)
    assert contact.from_address == "+447700900123"
    assert "voice:ivr" in contact.tags
    row = ivr_call(vdb, call.sid)
    assert (row.state, row.queue, row.contact_id, row.enqueued_at) == (
        "queued",
        "cse-identity",
        contact.id,
        NOW + timedelta(seconds=40),
    )


def test_partner_and_other_region_accounts(phone: Phone, vdb: Database) -> None:
    partner = phone.simulate("+611800953592", f"{NORTHWIND_PIN},2,9")
    contact = contact_for(vdb, partner.call_sid)
    assert contact is not None and contact.account_id == "northwind"
    assert (contact.category, contact.queue_key) == ("escalation", "csm")
    indian = phone.simulate(GB, f"{HOOLI_PIN},3,7")
    contact = contact_for(vdb, indian.call_sid)
    assert contact is not None and contact.account_id == "hooli"
    assert (contact.region, contact.category, contact.queue_key) == (
        "gb",
        "licensing",
        "account-managers",
    )


def test_a_french_caller_can_switch_to_english(new_call: NewCall, vdb: Database) -> None:
    call = new_call(to=FR)
    call.start()
    assert call.languages() == {"fr-FR", "en-US"}
    assert "To continue in English, press star." in call.said()
    call.press("*")
    assert call.languages() == {"en-US"}
    assert call.said() == "Please enter your support PIN, followed by the pound key."
    call.press(ACME_PIN)
    assert call.languages() == {"en-US"} and "verified" in call.said()
    assert failures(vdb) == 0
    call.press("1")
    call.press("2")
    contact = contact_for(vdb, call.sid)
    assert contact is not None and (contact.region, contact.language) == ("fr", "en-US")


def test_star_in_an_english_region_is_a_wrong_pin(new_call: NewCall, vdb: Database) -> None:
    call = new_call()
    call.start()
    call.press("*")
    assert "not recognised" in call.said()
    assert failures(vdb) == 1


# -- wrong PINs, lock-outs, alerts -----------------------------------------------------------


def test_a_wrong_pin_then_the_right_one(new_call: NewCall, vdb: Database) -> None:
    call = new_call()
    call.start()
    call.press(WRONG_PIN)
    assert call.said() == (
        "Sorry, that PIN was not recognised. "
        "Please enter your support PIN again, followed by the pound key."
    )
    assert call.action == "/voice/pin?step=2"
    call.press(ACME_PIN)
    assert "verified" in call.said()
    row = ivr_call(vdb, call.sid)
    assert (row.pin_failures, row.account_id) == (1, "acme")
    with vdb.session() as session:
        attempts = session.execute(select(PinAttempt.succeeded, PinAttempt.calling_number)).all()
    assert sorted(attempts) == [(False, "+447700900123"), (True, "+447700900123")]


def test_three_failures_end_the_call_with_how_to_reach_us(new_call: NewCall, vdb: Database) -> None:
    call = new_call()
    call.start()
    call.press(WRONG_PIN)
    call.press("12345")  # too short: a wrong try, no lookup
    call.press("")  # silence does not count as a try
    assert "did not receive a PIN" in call.said()
    call.press("99887766")
    assert call.said() == (
        "Sorry, that PIN was not recognised. We could not verify your PIN. "
        f"You can reach our support team by email at {MAIL_FROM}, or by chat from your admin "
        "portal. Goodbye."
    )
    assert call.hung_up()
    assert failures(vdb) == 3 and contact_for(vdb, call.sid) is None
    assert ivr_call(vdb, call.sid).state == "ended"


def test_an_unknown_pin_reveals_nothing(new_call: NewCall) -> None:
    answers = []
    for pin in (WRONG_PIN, "48291300", ACME_PIN[:-1] + "4", "1234"):
        call = new_call(caller=f"+4477009{len(answers):05d}")
        call.start()
        call.press(pin)
        answers.append(call.last.data if call.last else b"")
    assert len(set(answers)) == 1
    for secret in (b"acme", b"hooli", b"Acme", WRONG_PIN.encode()):
        assert secret not in answers[0]


def test_ten_failures_in_an_hour_lock_the_number_across_calls(
    new_call: NewCall, vdb: Database, clock: Clock
) -> None:
    caller = "+447700900999"
    for _ in range(3):
        call = new_call(caller=caller)
        call.start()
        for _ in range(3):
            clock.advance(seconds=30)
            call.press(WRONG_PIN)
        assert call.hung_up()
    assert failures(vdb) == 9
    fourth = new_call(caller=caller)
    fourth.start()
    fourth.press(WRONG_PIN)  # the tenth failure
    assert fourth.said().startswith(
        "For your security, PIN entry from this phone number is temporarily locked."
    )
    assert MAIL_FROM in fourth.said() and fourth.hung_up()
    (event,) = ops_events(vdb, EVENT_PIN_LOCKOUT)
    assert event.data["calling_number"] == caller and event.data["failures"] == 10
    # The next call from that number is told at once, even with the right PIN to hand.
    fifth = new_call(caller=caller)
    fifth.start()
    assert "temporarily locked" in fifth.said() and fifth.hung_up()
    assert not [v for v in fifth.verbs if v.name == "Gather"]
    first_answer = fifth.last.data if fifth.last is not None else b""
    fifth.start()  # Twilio retrying the webhook hears the answer stored for the locked call
    assert fifth.last is not None and fifth.last.data == first_answer
    # Another number is not affected.
    other = new_call(caller="+447700900998")
    other.start()
    other.press(ACME_PIN)
    assert "verified" in other.said()
    # An hour later the number may try again, and its old failures no longer count.
    clock.advance(hours=1, seconds=1)
    later = new_call(caller=caller)
    later.start()
    later.press(WRONG_PIN)
    assert "not recognised" in later.said() and not later.hung_up()
    later.press(ACME_PIN)
    assert "verified" in later.said()


def test_failures_older_than_the_window_do_not_count(
    new_call: NewCall, vdb: Database, clock: Clock
) -> None:
    caller = "+447700900777"
    for _ in range(3):
        call = new_call(caller=caller)
        call.start()
        for _ in range(3):
            call.press(WRONG_PIN)
        clock.advance(minutes=25)
    # 9 failures, but the first 3 are 75 minutes old: the tenth only makes 7 in the hour.
    call = new_call(caller=caller)
    call.start()
    call.press(WRONG_PIN)
    assert "not recognised" in call.said()
    assert ops_events(vdb, EVENT_PIN_LOCKOUT) == []


def test_lockout_limits_are_configurable(
    make_app: AppFactory, twiml_schema: etree.XMLSchema
) -> None:
    phone = Phone(make_app(pin_lockout_failures=2, pin_tries_per_call=5), twiml_schema)
    call = Call(phone, caller="+447700900555")
    call.start()
    call.press(WRONG_PIN)
    assert "not recognised" in call.said()
    call.press(WRONG_PIN)
    assert "temporarily locked" in call.said()


def test_staff_unlock_lets_the_number_call_again(
    voice_app: Flask, new_call: NewCall, vdb: Database, clock: Clock
) -> None:
    caller = "+447700900444"
    for _ in range(4):
        call = new_call(caller=caller)
        call.start()
        while not call.hung_up():
            call.press(WRONG_PIN)
            clock.advance(seconds=10)
    clock.advance(minutes=5)
    unlocked_at = clock.now
    # The staff API's and console's unlock.
    pins.unlock(vdb, caller, actor="ops@support.example", now=unlocked_at)
    with pytest.raises(NotFound):  # already unlocked
        pins.unlock(vdb, caller, actor="ops@support.example", now=unlocked_at)
    clock.advance(seconds=30)
    call = new_call(caller=caller)
    call.start()
    call.press(WRONG_PIN)  # earlier failures were paid for: one failure does not re-lock
    assert "not recognised" in call.said()
    call.press(ACME_PIN)
    assert "verified" in call.said()
    with vdb.session() as session:
        lockout = session.get(PinLockout, caller)
        assert lockout is not None and lockout.locked_until == unlocked_at


def held(call: Call) -> int | None:
    """Return the pause of a held PIN check (None when the answer is not a hold)."""
    verbs = call.verbs
    names = [verb.name for verb in verbs]
    if names[:2] != ["Say", "Pause"] or "checking many PINs" not in verbs[0].text:
        return None
    assert "/voice/pin" in call.action, call.action  # the PIN prompt again, at once
    assert not call.enqueued() and not call.hung_up()
    return int(verbs[1].attrs["length"])


def test_pin_checks_beyond_the_global_rate_are_held_at_twilio_and_cost_no_try(
    make_app: AppFactory, twiml_schema: etree.XMLSchema, clock: Clock
) -> None:
    app = make_app(pin_global_rate_per_minute=60, pin_global_burst=4)
    phone = Phone(app, twiml_schema)
    db: Database = app.extensions["contact_router"].db
    caller = Call(phone, caller="+12025550100")
    caller.start()
    caller.press(WRONG_PIN)
    caller.press(WRONG_PIN)  # two tries used
    # Others use up the burst at the same instant (spoofed caller IDs, one guess each).
    for index in range(2):
        guesser = Call(phone, caller=f"+1202555{index:04d}")
        guesser.start()
        guesser.press(WRONG_PIN)
        assert "not recognised" in guesser.said()
    assert failures(db) == 4
    # No token left: the third try is not checked. The caller hears a hold, pauses at Twilio
    # and is asked again; nothing is counted and no one is sent to the fallback queue.
    caller.press(ACME_PIN)
    assert held(caller) == 3  # a token is due in 1 s; the pause is at least 3 s
    assert failures(db) == 4 and ivr_call(db, caller.sid).pin_failures == 2
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(PinAttempt)) == 4
    clock.advance(seconds=1)
    caller.press(WRONG_PIN)  # the third try is still there: checked and refused
    assert "not recognised" in caller.said() and caller.hung_up()
    assert ivr_call(db, caller.sid).pin_failures == 3


def test_a_held_step_delivered_again_gets_the_same_answer(
    make_app: AppFactory, twiml_schema: etree.XMLSchema, clock: Clock
) -> None:
    app = make_app(pin_global_rate_per_minute=60, pin_global_burst=1)
    phone = Phone(app, twiml_schema)
    first = Call(phone, caller="+12025550200")
    first.start()
    first.press(WRONG_PIN)
    caller = Call(phone, caller="+12025550201")
    caller.start()
    action = caller.action
    answer = caller.press(ACME_PIN, token="held-once")
    assert held(caller) == 3
    again = phone.post(action, caller.params(Digits=ACME_PIN), token="held-once")
    assert again.data == answer.data
    clock.advance(seconds=1)  # one token: the caller's next try is checked
    caller.press(ACME_PIN)
    assert "verified" in caller.said()


def test_silence_between_holds_does_not_keep_a_held_call_open(
    make_app: AppFactory, twiml_schema: etree.XMLSchema
) -> None:
    # Issue 12: a hold cleared the misses and silence cleared the holds, so a held caller
    # who keyed nothing in between stayed at the PIN prompt for ever.
    app = make_app(pin_global_rate_per_minute=60, pin_global_burst=1)
    phone = Phone(app, twiml_schema)
    other = Call(phone, caller="+12025550300")
    other.start()
    other.press(WRONG_PIN)  # takes the only token; the clock stands still
    caller = Call(phone, caller="+12025550301")
    caller.start()
    for step in range(40):
        caller.press(ACME_PIN if step % 2 == 0 else "")
        if caller.hung_up():
            break
        if step % 2 == 0:
            assert held(caller) == 3
    assert caller.hung_up() and step < 10
    assert not caller.enqueued()


def test_a_high_failure_rate_across_numbers_alerts_and_tightens_the_global_rate(
    make_app: AppFactory, twiml_schema: etree.XMLSchema, clock: Clock
) -> None:
    app = make_app(
        pin_alert_failures=3,
        pin_alert_window_seconds=600,
        pin_global_rate_per_minute=60,
        pin_global_burst=2,
        pin_alert_rate_per_minute=6,
    )
    phone = Phone(app, twiml_schema)
    db: Database = app.extensions["contact_router"].db
    # A guesser spoofing a new caller ID for every try.
    for index in range(3):
        call = Call(phone, caller=f"+1202555{index:04d}")
        call.start()
        call.press(WRONG_PIN)
        assert held(call) is None
        clock.advance(seconds=10)
    (alert,) = ops_events(db, EVENT_PIN_FAILURE_RATE)
    assert alert.severity == "critical" and alert.data["failures"] == 3
    assert alert.data["checks_per_minute"] == 6
    # While the alert holds, the bucket refills at 6 a minute: after the burst, one check in
    # ten seconds, the right PIN too; the alert is not repeated.
    results = []
    for _ in range(4):
        call = Call(phone, caller="+12025559999")
        call.start()
        call.press(ACME_PIN)
        results.append(held(call))
    assert results == [None, None, 10, 10]
    clock.advance(seconds=10)
    call.press(ACME_PIN)
    assert "verified" in call.said()
    assert len(ops_events(db, EVENT_PIN_FAILURE_RATE)) == 1
    # Once the window has passed, the normal rate applies again.
    clock.advance(minutes=11)
    for _ in range(2):
        call = Call(phone, caller="+12025558888")
        call.start()
        call.press(ACME_PIN)
        assert "verified" in call.said()
    call = Call(phone, caller="+12025558887")
    call.start()
    call.press(ACME_PIN)
    assert held(call) == 3


def test_a_call_held_too_many_times_in_a_row_ends_without_the_fallback_queue(
    make_app: AppFactory, twiml_schema: etree.XMLSchema
) -> None:
    app = make_app(pin_global_rate_per_minute=1, pin_global_burst=1, pin_alert_rate_per_minute=1)
    phone = Phone(app, twiml_schema)
    db: Database = app.extensions["contact_router"].db
    first = Call(phone, caller="+12025550300")
    first.start()
    first.press(WRONG_PIN)  # the only token
    caller = Call(phone, caller="+12025550301")
    caller.start()
    for _ in range(10):
        caller.press(ACME_PIN)
        assert held(caller) == 20  # a token is a minute away; the pause is capped
    caller.press(ACME_PIN)
    assert "cannot check your PIN right now" in caller.said() and caller.hung_up()
    assert not caller.enqueued()
    assert ivr_call(db, caller.sid).pin_failures == 0 and failures(db) == 1


# -- non-premium --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "tier"), [("globex", "standard"), ("initech", "trial"), ("umbrella", "free")]
)
def test_a_verified_non_premium_caller_is_told_phone_is_premium(
    account: str, tier: str, new_call: NewCall, vdb: Database
) -> None:
    pin = GLOBEX_PIN
    if account != "globex":
        pin = {"initech": "517394", "umbrella": "639027"}[account]
        with vdb.transaction() as session:
            session.add(SupportPin(account_id=account, pin_hash=pin_hash(TEST_PEPPER, pin)))
    call = new_call(to=GB)
    call.start()
    call.press(pin)
    assert call.said() == (
        "Phone support is part of Premium Support, and your account's plan does not include it. "
        f"You can reach our support team by email at {MAIL_FROM}, or by chat from your admin "
        "portal. Goodbye."
    )
    assert call.hung_up()
    contact = contact_for(vdb, call.sid)
    assert contact is not None
    assert (contact.status, contact.tier, contact.account_id) == ("deflected", tier, account)
    assert [e.kind for e in contact.events] == ["received", "deflected"]
    assert contact.events[1].data == {"access": "denied", "tier": tier}
    assert ivr_call(vdb, call.sid).contact_id == contact.id
    assert failures(vdb) == 0


# -- silence and invalid input --------------------------------------------------------------


def test_silence_at_the_menus_takes_the_safe_defaults(new_call: NewCall, vdb: Database) -> None:
    call = new_call()
    call.start()
    call.press(ACME_PIN)
    call.press("")
    assert call.said().startswith("Sorry, we did not hear a choice. Please choose how severe")
    call.press("5")
    assert call.said().startswith("Sorry, that is not one of the choices. Please choose how severe")
    call.press("")
    assert call.said().startswith(
        "Sorry, we did not hear a choice. We will record the issue as severity 3. "
        "What is your call about?"
    )
    for _ in range(2):
        call.press("")
        assert "What is your call about?" in call.said()
    call.press("")
    assert call.said().startswith(
        "Sorry, we did not hear a choice. We will pass your call to the next available engineer."
    )
    enqueue = call.enqueued()
    assert enqueue is not None and enqueue.text == "cse-general"
    contact = contact_for(vdb, call.sid)
    assert contact is not None
    assert (contact.severity, contact.category, contact.topic) == ("S3", "break-fix", "other")
    assert {"ivr:severity-defaulted", "ivr:topic-defaulted"} <= set(contact.tags)
    received = contact.events[0].data
    assert (received["severity_source"], received["topic_source"]) == ("default", "default")


def test_silence_at_the_pin_prompt_ends_the_call_after_two_repeats(
    new_call: NewCall, vdb: Database
) -> None:
    call = new_call()
    call.start()
    for _ in range(2):
        call.press("")
        assert call.said() == (
            "Sorry, we did not receive a PIN. "
            "Please enter your support PIN, followed by the pound key."
        )
    call.press("")
    assert call.hung_up() and failures(vdb) == 0


def test_the_redirect_after_a_gather_reaches_the_same_step(new_call: NewCall) -> None:
    """Twilio follows the <Redirect> when a Gather ends without calling its action."""
    call = new_call()
    call.start()
    redirect = next(v for v in call.verbs if v.name == "Redirect")
    call.post(redirect.text)  # no Digits parameter at all
    assert "did not receive a PIN" in call.said()


# -- retries ------------------------------------------------------------------------------


def test_retried_deliveries_get_the_same_twiml_and_count_once(
    new_call: NewCall, phone: Phone, vdb: Database
) -> None:
    call = new_call()
    first = call.start().data
    assert call.start().data == first
    wrong = call.press(WRONG_PIN).data
    again = phone.post("/voice/pin?step=1", call.params(Digits=WRONG_PIN)).data
    assert again == wrong
    # Even a retry carrying other digits (it cannot be a new answer: the step was answered).
    assert phone.post("/voice/pin?step=1", call.params(Digits=ACME_PIN)).data == wrong
    assert failures(vdb) == 1 and ivr_call(vdb, call.sid).pin_failures == 1
    call.press(ACME_PIN)
    severity = call.press("1", token="idem-1").data
    assert (
        phone.post("/voice/severity?step=3", call.params(Digits="1"), token="idem-1").data
        == severity
    )
    topic = call.press("2").data
    assert phone.post("/voice/topic?step=4", call.params(Digits="2")).data == topic
    with vdb.session() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 1
    for _ in range(2):
        call.post("/voice/queue-result", QueueResult="bridged", QueueTime="30")
        phone.post("/voice/status", call.params(CallStatus="completed", CallDuration="300"))
    kinds = [event.kind for event in timeline(vdb, call.sid)]
    assert kinds == [
        "received",
        "routed",
        "sla_started",
        "bridged",
        "accepted",
        "first_response",
        "sla_met",
        "completed",
    ]


def test_a_retry_with_the_same_idempotency_token_replays(
    new_call: NewCall, phone: Phone, vdb: Database
) -> None:
    call = new_call()
    call.start(token="tok-incoming")
    answer = call.press(WRONG_PIN, token="tok-pin-1").data
    # Same token on what looks like the next step: it is the same delivery, not a new try.
    assert (
        phone.post("/voice/pin?step=2", call.params(Digits=WRONG_PIN), token="tok-pin-1").data
        == answer
    )
    assert failures(vdb) == 1


def test_concurrent_deliveries_of_one_pin_step_count_once(
    voice_app: Flask, new_call: NewCall, vdb: Database, twiml_schema: etree.XMLSchema
) -> None:
    call = new_call()
    call.start()
    params = call.params(Digits=WRONG_PIN)
    barrier = threading.Barrier(4)
    answers: list[bytes] = []

    def deliver() -> None:
        client = voice_app.test_client()
        phone = Phone(voice_app, twiml_schema)
        phone.client = client
        barrier.wait()
        answers.append(phone.post("/voice/pin?step=1", params).data)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4 and len(set(answers)) == 1
    assert failures(vdb) == 1 and ivr_call(vdb, call.sid).step == 2


def test_a_step_for_an_unknown_call_starts_over(phone: Phone, vdb: Database) -> None:
    call = Call(phone)
    call.post("/voice/pin?step=3", Digits=ACME_PIN)
    assert call.said().startswith("Thank you for calling Premium Support.")
    assert call.action == "/voice/pin?step=1" and failures(vdb) == 0


# -- queue: wait URL, results, status ---------------------------------------------------------


def test_the_wait_url_announces_position_and_wait_and_plays_hold_music(
    make_app: AppFactory, twiml_schema: etree.XMLSchema
) -> None:
    phone = Phone(make_app(hold_music_url="https://cdn.example.com/hold.mp3"), twiml_schema)
    call = Call(phone, to=FR)
    call.post("/voice/wait?lang=fr-FR", QueuePosition="3", AvgQueueTime="240", QueueTime="12")
    assert call.said() == (
        "Vous êtes en position 3 dans la file d'attente. "
        "Le temps d'attente estimé est d'environ 4 minutes."
    )
    assert [v.text for v in call.verbs if v.name == "Play"] == ["https://cdn.example.com/hold.mp3"]
    call.post("/voice/wait?lang=xx-YY", QueuePosition="1", AvgQueueTime="0")
    assert call.languages() == {"en-US"}
    assert call.said() == "You are number 1 in the queue. An engineer will be with you shortly."


def test_default_hold_music_is_twilios(phone: Phone) -> None:
    call = Call(phone)
    call.post("/voice/wait?lang=en-GB", QueuePosition="junk")
    assert [v.text for v in call.verbs if v.name == "Play"] == [TWILIO_HOLD_MUSIC]


def queued_call(new_call: NewCall, clock: Clock) -> Call:
    call = new_call()
    call.start()
    call.press(ACME_PIN)
    call.press("1")
    clock.advance(seconds=30)
    call.press("3")
    return call


def test_bridged_and_completed_go_on_the_timeline_with_times(
    new_call: NewCall, phone: Phone, vdb: Database, clock: Clock
) -> None:
    call = queued_call(new_call, clock)
    enqueued_at = clock.now
    clock.advance(minutes=10)
    call.post("/voice/queue-result", QueueResult="bridged", QueueTime="95")
    assert call.said() == "Thank you for calling. Goodbye." and call.hung_up()
    clock.advance(seconds=5)
    response = phone.post("/voice/status", call.params(CallStatus="completed", CallDuration="700"))
    assert response.status_code == 204
    events = {event.kind: event for event in timeline(vdb, call.sid)}
    bridged, completed = events["bridged"], events["completed"]
    assert (bridged.kind, bridged.at, bridged.actor) == (
        "bridged",
        enqueued_at + timedelta(seconds=95),
        "twilio",
    )
    assert bridged.data == {
        "queue": "cse-linux",
        "queue_result": "bridged",
        "queue_time_seconds": 95,
    }
    assert (completed.kind, completed.at) == (
        "completed",
        enqueued_at + timedelta(minutes=10, seconds=5),
    )
    assert completed.data == {
        "call_status": "completed",
        "duration_seconds": 700,
        "queue_result": "bridged",
    }
    row = ivr_call(vdb, call.sid)
    assert (row.status, row.queue_result, row.ended_at) == ("completed", "bridged", clock.now)
    # Answered: the contact left its queue and its first response stopped the SLA clock.
    contact = contact_for(vdb, call.sid)
    assert contact is not None
    answered_at = enqueued_at + timedelta(seconds=95)
    assert (contact.status, contact.accepted_at) == ("accepted", answered_at)
    assert (contact.first_response_at, contact.sla_state) == (answered_at, "met")


def test_a_caller_hanging_up_in_the_queue_is_abandoned(
    new_call: NewCall, phone: Phone, vdb: Database, clock: Clock
) -> None:
    call = queued_call(new_call, clock)
    clock.advance(minutes=3)
    call.post("/voice/queue-result", QueueResult="hangup", QueueTime="180")
    phone.post("/voice/status", call.params(CallStatus="completed", CallDuration="240"))
    abandoned, completed = timeline(vdb, call.sid)[-2:]
    assert (abandoned.kind, abandoned.at, abandoned.data["queue_time_seconds"]) == (
        "abandoned",
        clock.now,
        180,
    )
    assert completed.kind == "completed"


def test_a_queue_failure_falls_back_once_then_ends(
    new_call: NewCall, vdb: Database, clock: Clock
) -> None:
    call = queued_call(new_call, clock)
    call.post("/voice/queue-result", QueueResult="queue-full", QueueTime="0")
    enqueue = call.enqueued()
    assert enqueue is not None and enqueue.text == "fallback"
    assert call.said().startswith("Sorry, we could not place you in the queue.")
    call.post("/voice/queue-result", QueueResult="error", QueueTime="0")
    assert call.hung_up() and MAIL_FROM in call.said()
    kinds = [event.kind for event in timeline(vdb, call.sid)]
    assert kinds[-2:] == ["queue_failed", "queue_failed"]


def test_status_for_a_call_the_ivr_never_saw_is_acknowledged(phone: Phone) -> None:
    response = phone.post("/voice/status", Call(phone).params(CallStatus="completed"))
    assert response.status_code == 204
    bad = phone.post("/voice/status", {"CallSid": "CA1", "CallStatus": ""})
    assert bad.status_code == 400


# -- the database going away -----------------------------------------------------------------


@pytest.fixture
def app_without_database() -> Flask:
    """An app whose database cannot be reached (nothing listens on port 1)."""
    unreachable = make_settings("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    # Built fresh per test: none inherits what another's failed requests left in the app.
    app = create_app(unreachable)
    app.config["TESTING"] = True
    return app


@pytest.mark.parametrize(("number", "voice"), [(US, "en-US"), (FR, "fr-FR"), (BR, "pt-BR")])
def test_fallback_answers_with_the_database_down(
    app_without_database: Flask, twiml_schema: etree.XMLSchema, number: str, voice: str
) -> None:
    phone = Phone(app_without_database, twiml_schema)
    call = Call(phone, to=number)
    response = call.post("/voice/fallback")
    assert response.status_code == 200
    enqueue = call.enqueued()
    assert enqueue is not None and enqueue.text == "fallback"
    assert "action" not in enqueue.attrs  # the queue result would need the database
    assert enqueue.attrs["waitUrl"] == f"/voice/wait?lang={voice}"
    assert call.languages() == {voice}
    # The wait URL needs no database either.
    call.post(enqueue.attrs["waitUrl"], QueuePosition="2", AvgQueueTime="60")
    assert call.last is not None and call.last.status_code == 200


def test_steps_degrade_to_the_fallback_queue_when_the_database_is_down(
    app_without_database: Flask, twiml_schema: etree.XMLSchema, caplog: pytest.LogCaptureFixture
) -> None:
    phone = Phone(app_without_database, twiml_schema)
    call = Call(phone)
    for path, extra in (
        ("/voice/incoming", {}),
        ("/voice/pin?step=1", {"Digits": ACME_PIN}),
        ("/voice/topic?step=3", {"Digits": "1"}),
    ):
        response = call.post(path, **extra)
        assert response.status_code == 200
        enqueue = call.enqueued()
        assert enqueue is not None and enqueue.text == "fallback"
    # Reports that cannot be stored are not acknowledged (Twilio may deliver them again).
    assert phone.post("/voice/status", call.params(CallStatus="completed")).status_code == 503
    assert call.post("/voice/queue-result", QueueResult="hangup").status_code == 503
    # A caller still on the line gets an answer all the same.
    bridged = call.post("/voice/queue-result", QueueResult="bridged", QueueTime="30")
    assert bridged.status_code == 200 and call.hung_up()
    assert ACME_PIN not in caplog.text


# -- nothing secret is kept ------------------------------------------------------------------


def test_digits_never_reach_logs_events_or_call_state(
    phone: Phone, vdb: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    phone.simulate(US, f"{WRONG_PIN},{ACME_PIN},2,6")
    phone.simulate(GB, f"{GLOBEX_PIN}")
    stored: list[str] = []
    with vdb.session() as session:
        for model in (IvrCall, OpsEvent, ContactEvent, Contact, PinAttempt):
            for row in session.scalars(select(model)):
                stored.append(
                    repr({c.key: getattr(row, c.key) for c in model.__mapper__.column_attrs})
                )
    dump = "\n".join(stored) + caplog.text
    for pin in (WRONG_PIN, ACME_PIN, GLOBEX_PIN):
        assert pin not in dump
    assert "voice call" in caplog.text  # the flow is logged, without digits
    assert PUBLIC not in caplog.text or "Digits" not in caplog.text


def test_concurrent_duplicate_reports_are_recorded_once(
    voice_app: Flask,
    new_call: NewCall,
    vdb: Database,
    clock: Clock,
    twiml_schema: etree.XMLSchema,
) -> None:
    call = queued_call(new_call, clock)

    def deliver_four_times(path: str, params: dict[str, str]) -> list[int]:
        barrier = threading.Barrier(4)
        statuses: list[int] = []

        def deliver() -> None:
            phone = Phone(voice_app, twiml_schema)
            barrier.wait()
            statuses.append(phone.post(path, params).status_code)

        threads = [threading.Thread(target=deliver) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return statuses

    bridged = call.params(QueueResult="bridged", QueueTime="20")
    assert deliver_four_times("/voice/queue-result", bridged) == [200] * 4
    completed = call.params(CallStatus="completed", CallDuration="80")
    assert deliver_four_times("/voice/status", completed) == [204] * 4
    kinds = [event.kind for event in timeline(vdb, call.sid)]
    assert kinds == [
        "received",
        "routed",
        "sla_started",
        "bridged",
        "accepted",
        "first_response",
        "sla_met",
        "completed",
    ]


def test_a_deactivated_admins_pin_no_longer_verifies(new_call: NewCall, vdb: Database) -> None:
    with vdb.transaction() as session:
        pin = session.scalar(
            select(SupportPin).where(SupportPin.pin_hash == pin_hash(TEST_PEPPER, ACME_PIN))
        )
        assert pin is not None and pin.admin is not None
        pin.admin.active = False  # alice left the customer's company
    call = new_call(caller="+447700900555")
    call.start()
    call.press(ACME_PIN)
    assert "not recognised" in call.said()
