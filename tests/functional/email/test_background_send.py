"""Replies sent in the background (EMAIL_SEND_MODE=background): the webhook answers first, and a
slow mail server, a full queue or a failed send loses nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from channels.email.sender import EmailSender
from channels.email.views import SENDER_KEY, background_sender, email_service
from router.mailer import MailError, MailTransport
from router.runtime import EXTENSION_KEY, Runtime
from router.services.outbox import OutboxSender
from router.store.db import Database
from router.store.models.email import EmailOutbox
from tests.functional.email.conftest import (
    Inbox,
    events,
    message,
    post_mime,
    smtp_serving,
    stored_contact,
)

pytestmark = pytest.mark.usefixtures("demo")

SLOW_SECONDS = 1.5  # how long the slow server takes to accept a message
WAIT_SECONDS = 10.0  # the longest any test waits for the background thread


class SlowInbox(Inbox):
    """An inbox whose server takes SLOW_SECONDS to answer each message's DATA."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(SLOW_SECONDS)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(scope="module")
def slow_smtp() -> Iterator[tuple[SlowInbox, int]]:
    """Run a slow SMTP server on a free loopback port for this module."""
    with smtp_serving(SlowInbox()) as served:
        yield served


@pytest.fixture
def background(other_app: Any) -> Iterator[Callable[..., FlaskClient]]:
    """Return a builder of clients of apps sending in the background; stop their senders after."""
    built: list[Flask] = []

    def build(**overrides: Any) -> FlaskClient:
        client: FlaskClient = other_app(email_send_mode="background", **overrides)
        built.append(client.application)
        return client

    yield build
    for application in built:
        # Nothing may still write to the database the next test resets; apps are reused.
        # A stopped sender does not start again: the reused app gets a fresh one.
        sender: EmailSender = application.extensions[SENDER_KEY]
        application.extensions[SENDER_KEY] = EmailSender(email_service(application).outbox.deliver)
        assert sender.stop(timeout=WAIT_SECONDS), "the sender thread did not stop"


@dataclass
class HeldTransport:
    """Hands messages to ``inner`` once ``release`` is set; ``holding`` says one is waiting."""

    inner: MailTransport
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    name: str = "held"

    def deliver(self, message: EmailMessage) -> None:
        self.holding.set()
        if not self.release.wait(WAIT_SECONDS):
            raise MailError("held too long")
        self.inner.deliver(message)


def wait_for(check: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


def outbox(db: Database) -> list[EmailOutbox]:
    with db.session() as session:
        return list(session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)))


def kinds(db: Database, contact_id: int) -> list[str]:
    return [event.kind for event in events(db, contact_id)]


def sender_of(client: FlaskClient) -> EmailSender:
    return background_sender(client.application)


def test_the_answer_says_queued_and_the_acknowledgement_follows(
    background: Callable[..., FlaskClient], db: Database, inbox: Inbox
) -> None:
    client = background()
    msg = message()
    response = post_mime(client, msg)
    assert response.status_code == 200
    (reply,) = response.get_json()["replies"]
    assert (reply["kind"], reply["status"], reply["sent"]) == ("acknowledgement", "queued", False)

    wait_for(lambda: len(inbox.to("alice@acme.example")) == 1, "the acknowledgement")
    (ack,) = inbox.to("alice@acme.example")
    assert ack["Message-ID"] == reply["message_id"] and ack["In-Reply-To"] == msg["Message-ID"]
    assert sender_of(client).drain(WAIT_SECONDS)
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert kinds(db, contact.id)[-1] == "email_sent"
    assert [(row.status, row.attempts) for row in outbox(db)] == [("sent", 1)]


def test_a_slow_mail_server_does_not_hold_the_webhook(
    background: Callable[..., FlaskClient], db: Database, slow_smtp: tuple[SlowInbox, int]
) -> None:
    slow, port = slow_smtp
    slow.clear()
    client = background(smtp_port=port)
    msg = message()
    started = time.monotonic()
    response = post_mime(client, msg)
    answered = time.monotonic() - started
    assert response.status_code == 200
    assert response.get_json()["replies"][0]["status"] == "queued"
    # Inline, the answer would have waited the whole SMTP conversation (SLOW_SECONDS at least).
    assert answered < SLOW_SECONDS / 2, f"the webhook took {answered:.2f} s"
    assert slow.messages == []  # still being sent when the webhook had its answer

    wait_for(lambda: len(slow.to("alice@acme.example")) == 1, "the slow acknowledgement")
    assert time.monotonic() - started >= SLOW_SECONDS
    assert sender_of(client).drain(WAIT_SECONDS)
    contact = stored_contact(db, str(msg["Message-ID"]))
    assert kinds(db, contact.id)[-1] == "email_sent"


def test_a_full_queue_leaves_the_reply_due_for_the_retry_job(
    background: Callable[..., FlaskClient],
    db: Database,
    inbox: Inbox,
    rt: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = background()
    application = client.application
    # A sender with room for one batch whose first send blocks until released.
    outbox_sender = OutboxSender.from_runtime(application.extensions[EXTENSION_KEY])
    held = HeldTransport(outbox_sender.mailer.transport)
    outbox_sender.mailer.transport = held
    sender = application.extensions[SENDER_KEY] = EmailSender(outbox_sender.deliver, capacity=1)

    answers = [post_mime(client, message(subject="first")).get_json()]
    assert held.holding.wait(WAIT_SECONDS)  # the thread is sending the first reply
    with caplog.at_level(logging.WARNING, logger="channels.email.sender"):
        for subject in ("second", "third"):  # the second fills the queue; the third finds it full
            answers.append(post_mime(client, message(subject=subject)).get_json())
    assert [a["replies"][0]["status"] for a in answers] == ["queued"] * 3
    assert "email send queue full" in caplog.text

    now = datetime.now(UTC)
    first, second, third = outbox(db)
    assert (first.status, first.attempts) == ("pending", 1)  # leased by the blocked send
    assert first.next_attempt_at is not None and first.next_attempt_at > now
    for row in (second, third):  # not attempted, and due now: nothing is lost
        assert (row.status, row.attempts) == ("pending", 0)
        assert row.next_attempt_at is not None and row.next_attempt_at <= now

    # The scheduler's email-outbox job (and `email retry-outbox`) sends what is due.
    summary = OutboxSender.from_runtime(rt).retry_due()
    assert (summary.attempted, summary.sent) == (2, 2)
    held.release.set()
    assert sender.drain(WAIT_SECONDS)
    # The thread sent the first; the queued second was already sent, so it was not sent again.
    assert sorted(str(m["Subject"]) for m in inbox.messages) == [
        "Re: [#C-1] first",
        "Re: [#C-2] second",
        "Re: [#C-3] third",
    ]
    assert [(row.status, row.attempts) for row in outbox(db)] == [("sent", 1)] * 3


def test_a_failed_send_in_the_thread_is_recorded_and_the_thread_carries_on(
    background: Callable[..., FlaskClient], db: Database, inbox: Inbox
) -> None:
    client = background()
    inbox.refuse = 1  # the mail server says 451 once
    first = message(subject="first")
    assert post_mime(client, first).get_json()["replies"][0]["status"] == "queued"
    assert sender_of(client).drain(WAIT_SECONDS)
    contact = stored_contact(db, str(first["Message-ID"]))
    failed = events(db, contact.id)[-1]
    assert failed.kind == "email_send_failed" and "451" in failed.data["error"]
    assert (outbox(db)[0].status, outbox(db)[0].attempts) == ("pending", 1)  # retried later

    second = message(subject="second")
    assert post_mime(client, second).get_json()["replies"][0]["status"] == "queued"
    wait_for(lambda: len(inbox.messages) == 1, "the second acknowledgement")
    assert str(inbox.messages[0]["Subject"]) == "Re: [#C-2] second"
    assert sender_of(client).drain(WAIT_SECONDS)
    assert kinds(db, stored_contact(db, str(second["Message-ID"])).id)[-1] == "email_sent"


def test_inline_mode_answers_sent_or_failed(
    client: FlaskClient, db: Database, inbox: Inbox
) -> None:
    inbox.refuse = 1
    (failed,) = post_mime(client, message(subject="first")).get_json()["replies"]
    assert (failed["status"], failed["sent"]) == ("failed", False)
    (sent,) = post_mime(client, message(subject="second")).get_json()["replies"]
    assert (sent["status"], sent["sent"]) == ("sent", True)
    assert [str(m["Subject"]) for m in inbox.messages] == ["Re: [#C-2] second"]
    assert not background_sender(client.application).running  # inline never starts a thread


# --- the sender on its own ----------------------------------------------------------------


class Recorder:
    """A deliver function that records its batches and raises for the ones it is told to."""

    def __init__(self, fail: Sequence[int] = ()) -> None:
        self.batches: list[tuple[int, ...]] = []
        self.fail = set(fail)
        self.threads: set[str] = set()

    def __call__(self, outbox_ids: Sequence[int]) -> None:
        self.threads.add(threading.current_thread().name)
        self.batches.append(tuple(outbox_ids))
        if self.fail & set(outbox_ids):
            raise RuntimeError("database went away")


def test_an_error_in_the_thread_is_logged_and_the_thread_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(fail=[1])
    sender = EmailSender(recorder, name="email-sender-test")
    try:
        with caplog.at_level(logging.ERROR, logger="channels.email.sender"):
            assert sender.submit([1]) and sender.submit([2, 3])
            assert sender.drain(WAIT_SECONDS)
        assert recorder.batches == [(1,), (2, 3)]
        assert recorder.threads == {"email-sender-test"}
        assert "outbox rows [1] not sent in the background" in caplog.text
        assert "database went away" in caplog.text
        assert sender.submit([])  # nothing to send: nothing queued
    finally:
        assert sender.stop(timeout=WAIT_SECONDS)
    assert sender.drain(0)  # stopped: nothing left to wait for


def test_the_thread_starts_on_first_use_and_again_after_stop() -> None:
    before = {thread.name for thread in threading.enumerate()}
    recorder = Recorder()
    sender = EmailSender(recorder, name="email-sender-lazy")
    assert "email-sender-lazy" not in {thread.name for thread in threading.enumerate()}
    assert "email-sender-lazy" not in before
    try:
        assert sender.submit([1]) and sender.drain(WAIT_SECONDS)
        assert sender.stop(timeout=WAIT_SECONDS)
        assert "email-sender-lazy" not in {thread.name for thread in threading.enumerate()}
        assert sender.submit([2]) and sender.drain(WAIT_SECONDS)  # a new thread after a stop
        assert recorder.batches == [(1,), (2,)]
    finally:
        assert sender.stop(timeout=WAIT_SECONDS)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_thread_that_died_is_replaced_on_the_next_submit() -> None:
    delivered: list[tuple[int, ...]] = []

    def deliver(outbox_ids: Sequence[int]) -> None:
        if 1 in outbox_ids:
            raise SystemExit("worse than an exception: it ends the thread")
        delivered.append(tuple(outbox_ids))

    sender = EmailSender(deliver, name="email-sender-dies")
    try:
        assert sender.submit([1]) and sender.drain(WAIT_SECONDS)
        deadline = time.monotonic() + WAIT_SECONDS
        while "email-sender-dies" in {t.name for t in threading.enumerate()}:
            assert time.monotonic() < deadline, "the thread did not end"
            time.sleep(0.01)
        assert sender.submit([2]) and sender.drain(WAIT_SECONDS)  # a new thread sends it
        assert delivered == [(2,)]
    finally:
        assert sender.stop(timeout=WAIT_SECONDS)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_starts_its_own_thread() -> None:
    read_end, write_end = os.pipe()
    sent: list[int] = []

    def deliver(outbox_ids: Sequence[int]) -> None:
        sent.extend(outbox_ids)
        os.write(write_end, b"".join(b"%d\n" % i for i in outbox_ids))

    sender = EmailSender(deliver, name="email-sender-fork")
    try:
        assert sender.submit([1]) and sender.drain(WAIT_SECONDS)  # the parent's thread runs
        pid = os.fork()
        if pid == 0:  # the child: the parent's thread did not come along; a new one must start
            code = 1
            try:
                if sender.submit([2]) and sender.drain(WAIT_SECONDS):
                    code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + WAIT_SECONDS
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("the forked child did not send")
            time.sleep(0.02)
        assert os.waitstatus_to_exitcode(done[1]) == 0
        assert sent == [1]  # the child's send happened in the child only
        assert sender.submit([3]) and sender.drain(WAIT_SECONDS)  # the parent's thread still works
        assert sent == [1, 3]
    finally:
        assert sender.stop(timeout=WAIT_SECONDS)
        os.close(write_end)
    with os.fdopen(read_end) as pipe:
        assert pipe.read().split() == ["1", "2", "3"]  # parent, child, parent
