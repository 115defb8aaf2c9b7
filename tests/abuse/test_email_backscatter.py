"""Issue 12 item 7: rejections as backscatter.

A rejection goes only to a verified sender, echoes nothing the sender wrote (subject, display
name), and all rejections together are capped per hour by a bucket every web process shares.
Over HTTP through the app, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import create_app
from channels.email.reply_plan import REJECTIONS_BUCKET
from router.runtime import EXTENSION_KEY
from router.services import ratelimit
from router.store.db import Database
from router.store.models.email import EmailOutbox
from tests.abuse.conftest import abuse_settings
from tests.abuse.test_email_senders import passing, post_mime, raw_mail

SPAM_SUBJECT = ("CHEAP WATCHES at spam.example!!! " * 200)[:6153]
SPAM_NAME = "Visit spam.example for free money"
CAP = 3


def build(store: str) -> Flask:
    """Return an app (one web process) on ``store`` with a small rejection cap."""
    # Built fresh on purpose: two apps with equal settings stand for two processes.
    return create_app(
        abuse_settings(
            store,
            email_trusted_authserv_ids="mx.router.example",
            email_max_rejections_per_hour=CAP,
        )
    )


@pytest.fixture(scope="module")
def processes(abuse_store: str) -> Iterator[tuple[Flask, Flask]]:
    """Yield two apps on one store, standing for two web processes."""
    apps = (build(abuse_store), build(abuse_store))
    yield apps
    for application in apps:
        application.extensions[EXTENSION_KEY].db.dispose()


@pytest.fixture
def db(processes: tuple[Flask, Flask]) -> Database:
    database: Database = processes[0].extensions[EXTENSION_KEY].db
    with database.transaction() as session:
        ratelimit.reset(session, REJECTIONS_BUCKET)
    return database


def stranger() -> str:
    """Return a new verified non-admin's address (each gets its own once-a-day explanation)."""
    return f"spammer-{uuid.uuid4().hex[:12]}@spam.example"


def rejections_to(db: Database, address: str) -> list[EmailOutbox]:
    with db.session() as session:
        return list(
            session.scalars(
                select(EmailOutbox).where(
                    EmailOutbox.to_address == address, EmailOutbox.kind == "rejection"
                )
            )
        )


def test_a_rejection_echoes_neither_subject_nor_name(
    processes: tuple[Flask, Flask], db: Database
) -> None:
    client: FlaskClient = processes[0].test_client()
    address = stranger()
    _, raw = raw_mail(
        f'"{SPAM_NAME}" <{address}>', subject=SPAM_SUBJECT, results=passing("spam.example")
    )
    answer = post_mime(client, raw).get_json()
    assert (answer["status"], answer["reason"]) == ("rejected", "not_an_admin")
    (reply,) = answer["replies"]
    (row,) = rejections_to(db, address)
    for text in (reply["subject"], reply["text"], row.subject, row.body_text):
        assert "spam.example" not in text and "WATCHES" not in text and "money" not in text
    assert row.to_name is None and len(row.body_text) < 1500


def test_no_rejection_goes_to_an_unverified_sender(
    processes: tuple[Flask, Flask], db: Database
) -> None:
    client = processes[0].test_client()
    address = stranger()
    _, raw = raw_mail(f'"{SPAM_NAME}" <{address}>', subject=SPAM_SUBJECT)
    answer = post_mime(client, raw).get_json()
    assert (answer["reason"], answer["replies"]) == ("sender_not_verified", [])
    assert answer["suppressed"][0].startswith("the sender is not verified")
    assert rejections_to(db, address) == []


def test_rejections_are_capped_across_processes(
    processes: tuple[Flask, Flask], db: Database
) -> None:
    clients = [application.test_client() for application in processes]
    answers = []
    for number in range(CAP + 3):
        _, raw = raw_mail(f"<{stranger()}>", results=passing("spam.example"))
        # Alternate between the two processes: the allowance is the store's, not a process's.
        answers.append(post_mime(clients[number % 2], raw).get_json())
    assert [len(answer["replies"]) for answer in answers] == [1] * CAP + [0] * 3
    for answer in answers[CAP:]:
        assert answer["status"] == "rejected"  # still stored, only not answered
        assert answer["suppressed"] == [
            f"rejection cap: {CAP} explanations to all senders per hour "
            "(EMAIL_MAX_REJECTIONS_PER_HOUR)"
        ]
