"""A web worker killed (SIGKILL) in the middle of a burst of deliveries loses nothing acknowledged.

gunicorn runs as the Procfile starts it; a burst of email deliveries, chat starts and IVR topic
steps (the step that opens a call's contact) arrives on eight connections while workers are
killed outright. Every delivery answered 2xx must be stored at once; every other one must be
stored after the provider's retry (the same request again); and nothing is stored twice.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO

import pytest

from tests.reliability.harness import (
    ACME_PIN,
    Answer,
    Census,
    Delivery,
    Server,
    census,
    chat,
    email,
    enqueued,
    gather_action,
    mime_message,
    production_env,
    send,
    voice,
    voice_params,
)

EMAILS, CHATS, CALLS = 90, 50, 30
# Kill a worker each time the burst has answered this share of its deliveries more: tied to
# progress, not to the clock, so a faster server cannot finish the burst before the kills.
KILL_AT = (0.15, 0.35, 0.55, 0.75)


def open_calls(port: int, count: int) -> list[Delivery]:
    """Take ``count`` calls to the topic menu; return each call's topic step (not yet sent)."""
    steps = []
    for index in range(count):
        params = voice_params(
            f"CAcrash{index:04d}{random.randrange(10**8):08d}", f"+1303555{index:04d}"
        )
        answer = send(port, voice("/voice/incoming", params))
        assert answer.status == 200, answer
        for digits in (ACME_PIN, "2"):  # the PIN, then severity S2
            answer = send(port, voice(gather_action(answer.body), {**params, "Digits": digits}))
            assert answer.status == 200, answer
        steps.append(voice(gather_action(answer.body), {**params, "Digits": "1"}))
    return steps


def burst(
    server: Server, deliveries: list[Delivery], answered: Callable[[], None] = lambda: None
) -> list[tuple[Delivery, Answer]]:
    """Send every delivery on eight connections at once; call ``answered`` after each."""

    def deliver(delivery: Delivery) -> tuple[Delivery, Answer]:
        answer = send(server.port, delivery)
        answered()
        return delivery, answer

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(deliver, deliveries))


def assert_stored(store: Census, delivery: Delivery, answer: Answer) -> None:
    """The delivery answered 2xx: its contact (and, for email, its message) is stored."""
    if delivery.kind == "email":
        assert store.messages.get(delivery.key) == 1, f"acknowledged email {delivery.key} lost"
        assert store.contact("email", delivery.key) is not None
    elif delivery.kind == "chat":
        contact_id = json.loads(answer.body)["contact_id"]
        assert contact_id in store.contacts.values(), f"acknowledged chat {contact_id} lost"
    else:
        contact_id = store.contact("voice", delivery.key)
        assert contact_id is not None, f"acknowledged call {delivery.key} has no contact"
        assert store.calls[delivery.key] == contact_id
        assert enqueued(answer.body) is not None


@pytest.mark.slow
def test_killed_workers_lose_no_acknowledged_contact(store: str, server_log: IO[str]) -> None:
    server = Server(production_env(store), server_log, workers=2)
    try:
        server.wait_ready()
        calls = open_calls(server.port, CALLS)
        deliveries: list[Delivery] = [
            email(raw, mid) for mid, raw in (mime_message() for _ in range(EMAILS))
        ]
        deliveries += [chat() for _ in range(CHATS)]
        deliveries += calls
        random.Random(9).shuffle(deliveries)

        killed: list[int] = []
        progress = threading.Condition()
        done = [0]
        finished = threading.Event()

        def answered() -> None:
            with progress:
                done[0] += 1
                progress.notify_all()

        def killer() -> None:
            # A worker killed while serving cuts its delivery short (eight are in flight at
            # any moment, over two workers); kill a random live one at each KILL_AT mark.
            chooser = random.Random(4)
            for share in KILL_AT:
                mark = int(share * len(deliveries))
                with progress:
                    progress.wait_for(lambda m=mark: done[0] >= m or finished.is_set())
                if finished.is_set():
                    return
                workers = [pid for pid in server.worker_pids() if pid not in killed]
                if workers:
                    victim = chooser.choice(workers)
                    server.kill_worker(victim)
                    killed.append(victim)

        thread = threading.Thread(target=killer)
        thread.start()
        try:
            results = burst(server, deliveries, answered)
        finally:
            finished.set()
            with progress:
                progress.notify_all()
            thread.join()
        assert len(killed) >= 2, "the burst ended before two workers were killed"

        acknowledged = [(d, a) for d, a in results if 200 <= a.status < 300]
        failed = [d for d, a in results if not 200 <= a.status < 300]
        # Killing a busy worker must have cut at least one delivery short; otherwise the test
        # proved nothing about in-flight work.
        assert failed, "no delivery was interrupted by the kills"
        assert all(a.status in (0, 503) for d, a in results if d in failed), [
            (d.kind, a.status, a.body[:200]) for d, a in results if d in failed
        ]

        stored = census(store)
        for delivery, answer in acknowledged:
            assert_stored(stored, delivery, answer)

        # The providers retry what was not acknowledged, byte for byte, until it is.
        pending = failed
        for _ in range(20):
            pending = [d for d in pending if not 200 <= send(server.port, d).status < 300]
            if not pending:
                break
            time.sleep(0.25)  # a killed worker is being replaced
        assert not pending, [(d.kind, d.key) for d in pending]

        final = census(store)
        assert not final.duplicates, final.duplicates
        assert not final.orphans, final.orphans
        # One contact per delivery: every email, chat and call, none twice, none lost.
        assert len(final.contacts) == EMAILS + CHATS + CALLS
        for delivery in deliveries:
            if delivery.kind == "email":
                assert final.messages.get(delivery.key) == 1, delivery.key
            if delivery.kind == "voice":
                assert final.calls[delivery.key] == final.contact("voice", delivery.key)
    finally:
        server.stop()
