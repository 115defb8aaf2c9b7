"""Retried and concurrent deliveries of one CallSid, Message-ID or Idempotency-Key make one contact.

Providers retry, and a load balancer may hand two copies of one delivery to two processes at
the same instant. Here separate processes (each with its own app and connection pool, as two
gunicorn workers or two hosts have) are released together by a barrier to deliver the very same
request, round after round; on PostgreSQL this is the scale-out deployment.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from router.runtime import EXTENSION_KEY
from router.store.db import Database
from router.store.models.voice import IvrCall
from tests.reliability.harness import (
    ACME_PIN,
    ROOT,
    Delivery,
    app_settings,
    census,
    chat,
    deliver_in_rounds,
    email,
    enqueued,
    gather_action,
    mime_message,
    voice,
    voice_params,
)

PROCESSES = 4
ROUNDS = 4


@pytest.fixture
def app(store: str) -> Iterator[Flask]:
    # Built fresh: on this test's own store (a cached app would never be asked for again).
    application = create_app(app_settings(store))
    yield application
    application.extensions[EXTENSION_KEY].db.dispose()


def at_topic_menu(app: Flask, call_sid: str, caller: str) -> Delivery:
    """Take a call to its topic menu; return the topic step that opens its contact."""
    client = app.test_client()
    params = voice_params(call_sid, caller)
    response = client.open("/voice/incoming", **voice("/voice/incoming", params).client_kwargs())
    for digits in (ACME_PIN, "3"):
        step = voice(gather_action(response.data), {**params, "Digits": digits})
        response = client.open(step.path, **step.client_kwargs())
        assert response.status_code == 200
    return voice(gather_action(response.data), {**params, "Digits": "2"})


def test_a_retried_delivery_is_answered_again_and_stored_once(app: Flask, store: str) -> None:
    client = app.test_client()
    message_id, raw = mime_message()
    call = at_topic_menu(app, f"CA{uuid.uuid4().hex}", "+13035550100")
    deliveries = [email(raw, message_id), chat(), call]
    first = [client.open(d.path, **d.client_kwargs()) for d in deliveries]
    again = [client.open(d.path, **d.client_kwargs()) for d in deliveries]
    for one, two in zip(first, again, strict=True):
        assert one.status_code in (200, 201) and two.status_code == 200
    assert json.loads(first[0].data)["contact"] == json.loads(again[0].data)["contact"]
    assert json.loads(again[0].data)["outcome"] == "duplicate"
    assert json.loads(first[1].data)["contact_id"] == json.loads(again[1].data)["contact_id"]
    assert first[2].data == again[2].data  # Twilio hears the same TwiML
    stored = census(store)
    assert not stored.duplicates
    assert len(stored.contacts) == 3
    assert stored.messages[message_id] == 1


@pytest.mark.slow
def test_concurrent_processes_delivering_the_same_request_make_one_contact(
    app: Flask, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[list[Delivery]] = []
    wrong_pin_calls: list[str] = []
    for number in range(ROUNDS):
        message_id, raw = mime_message()
        sid = f"CA{uuid.uuid4().hex}"
        incoming = voice("/voice/incoming", voice_params(sid, f"+130355502{number:02d}"))
        pin_sid = f"CA{uuid.uuid4().hex}"
        pin_caller = f"+130355503{number:02d}"
        client = app.test_client()
        answered = client.open(
            "/voice/incoming",
            **voice("/voice/incoming", voice_params(pin_sid, pin_caller)).client_kwargs(),
        )
        wrong_pin = voice(
            gather_action(answered.data), voice_params(pin_sid, pin_caller, Digits="905172")
        )
        wrong_pin_calls.append(pin_sid)
        rounds.append(
            [
                email(raw, message_id),
                chat(),
                incoming,
                at_topic_menu(app, f"CA{uuid.uuid4().hex}", f"+130355501{number:02d}"),
                wrong_pin,
            ]
        )

    # A spawned process imports this harness by name: it needs the repository on its path.
    monkeypatch.syspath_prepend(str(ROOT))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(target=deliver_in_rounds, args=(store, rounds, barrier, results, index))
        for index in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    expected = PROCESSES * sum(len(round_) for round_ in rounds)
    answers = []
    deadline = time.monotonic() + 120
    while len(answers) < expected:
        try:
            answers.append(results.get(timeout=1))
        except queue.Empty:
            crashed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            assert not crashed, f"a delivering process failed: exit codes {crashed}"
            assert time.monotonic() < deadline, "the delivering processes did not finish"
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    by_key: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    for _worker, _round, key, status, body in answers:
        by_key[key].append((status, body))
    stored = census(store)
    assert not stored.duplicates, stored.duplicates
    assert not stored.orphans, stored.orphans
    for round_ in rounds:
        mail, chat_start, incoming, topic, wrong_pin = round_
        for delivery in round_:
            statuses = [status for status, _ in by_key[delivery.key]]
            assert len(statuses) == PROCESSES
            # Every copy is acknowledged: the provider must not retry what is stored.
            assert all(status in (200, 201) for status in statuses), (delivery.kind, statuses)
        # Email and chat: every copy names the one contact; exactly one says it created it.
        for delivery, field in ((mail, "contact"), (chat_start, "contact_id")):
            ids = {json.loads(body)[field] for _, body in by_key[delivery.key]}
            assert len(ids) == 1, ids
        assert stored.messages[mail.key] == 1
        assert [s for s, _ in by_key[chat_start.key]].count(201) == 1
        # Voice: one call row for the CallSid; the topic step opened one contact, all queued.
        assert incoming.key in stored.calls
        assert len({body for _, body in by_key[incoming.key]}) == 1
        contact_id = stored.contact("voice", topic.key)
        assert contact_id is not None and stored.calls[topic.key] == contact_id
        assert all(enqueued(body) is not None for _, body in by_key[topic.key])
    # Four copies of one wrong PIN count as one failure (the step is claimed once).
    db = Database(store)
    try:
        with db.session() as session:
            failures = dict(
                session.execute(
                    select(IvrCall.call_sid, IvrCall.pin_failures).where(
                        IvrCall.call_sid.in_(wrong_pin_calls)
                    )
                ).all()
            )
    finally:
        db.dispose()
    assert failures == dict.fromkeys(wrong_pin_calls, 1)
    # Emails, chats and calls: one contact each, nothing more.
    assert len(stored.contacts) == 3 * ROUNDS
