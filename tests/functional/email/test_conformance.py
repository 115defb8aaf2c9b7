"""Real-world test mails (Chatwoot's and Zammad's, in ../shared/conformance/email) through
POST /email/inbound/mime: never a 5xx, each stored once (a retried post stores nothing new),
and the automatic ones -- reports, auto-replies, lists -- recorded as such and never answered.

Which messages are automatic is decided here from each file's own structure, read with the
standard library (report content types, RFC 3834 headers, the null return path, system
senders), independently of the router's classification it checks. Each is posted as our
receiving MTA would pass it (a trusted Authentication-Results with an aligned DMARC pass for its
From: domain), so its sender is verified wherever From: holds one address: "never answered"
then depends on the detection, not on the sender being unknown. None of the senders is an
admin, so a person's mail is rejected, and answered with the one explanation only when its
sender is verified. The files are read where they are; none is copied into the project.
"""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from channels.email.addresses import read_from
from router.store.db import Database
from router.store.models import Contact
from router.store.models.email import EmailMessage as StoredEmail
from router.store.models.email import EmailOutbox
from tests.functional.email.conftest import Inbox, post_mime, trusted_pass
from tests.paths import CONFORMANCE_EMAIL

FOLDER = CONFORMANCE_EMAIL
FILES = (
    sorted(p for p in FOLDER.rglob("*") if p.suffix in (".eml", ".box")) if FOLDER.is_dir() else []
)
MISSING = f"{FOLDER} is absent: the real-world email conformance mails were not checked"

REPORT_TYPES = {"multipart/report", "message/delivery-status", "message/disposition-notification"}
AUTO_REPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-failed-recipients")
SYSTEM_SENDERS = ("mailer-daemon", "postmaster")


def structurally_automatic(raw: bytes) -> bool:
    """Return True when the file's own structure says a machine wrote it."""
    message = BytesParser(policy=policy.compat32).parsebytes(raw)
    if any(part.get_content_type() in REPORT_TYPES for part in message.walk()):
        return True
    if (message.get("Return-Path") or "").strip() == "<>":
        return True
    if str(message.get("Auto-Submitted") or "no").split(";")[0].strip().lower() != "no":
        return True
    if any(name in message for name in AUTO_REPLY_HEADERS):
        return True
    if str(message.get("Precedence") or "").strip().lower() in ("bulk", "junk", "list"):
        return True
    if "List-Id" in message:
        return True
    return any(
        address.split("@")[0].lower() in SYSTEM_SENDERS
        for _, address in getaddresses([str(value) for value in message.get_all("From", [])])
    )


def as_received(raw: bytes) -> tuple[bytes, bool]:
    """Return the file as our MTA posts it (DMARC passed for its From: domain), and whether its
    sender can be verified at all (a single From: with a single address)."""
    message = BytesParser(policy=policy.compat32).parsebytes(raw)
    values = [str(value) for value in message.get_all("From", [])]
    sender = read_from(values)
    results = trusted_pass(values[0] if values else "nobody@invalid.example")
    # No encoded words or line breaks in what the MTA writes: only the address's ASCII form.
    header = b"Authentication-Results: " + results.encode("ascii", "replace") + b"\r\n"
    return header + raw, sender.address is not None and sender.problem is None


def counts(db: Database) -> tuple[int, int, int]:
    """Return how many contacts, received messages and replies owed are stored."""
    with db.session() as session:
        received = select(func.count()).where(StoredEmail.direction == "in")
        return (
            session.scalar(select(func.count()).select_from(Contact)) or 0,
            session.scalar(received) or 0,
            session.scalar(select(func.count()).select_from(EmailOutbox)) or 0,
        )


def test_the_conformance_folder_is_there() -> None:
    if not FILES:
        pytest.skip(MISSING)
    assert len(FILES) >= 40


@pytest.mark.parametrize(
    "path",
    FILES or [pytest.param(None, marks=pytest.mark.skip(reason=MISSING))],
    ids=[p.name for p in FILES] or ["absent"],
)
def test_a_real_world_mail_is_stored_once_and_automatic_mail_is_never_answered(
    client: FlaskClient, db: Database, inbox: Inbox, path: Path
) -> None:
    raw, verifiable = as_received(path.read_bytes())
    answer = post_mime(client, raw)
    assert answer.status_code == 200, (answer.status_code, answer.get_data()[:300])
    body = answer.get_json()
    stored = counts(db)
    assert stored[:2] == (1, 1), stored

    retry = post_mime(client, raw)
    assert retry.status_code == 200 and retry.get_json()["outcome"] == "duplicate"
    assert counts(db) == stored

    with db.session() as session:
        (message,) = session.scalars(select(StoredEmail).where(StoredEmail.direction == "in"))
        assert message.message_id == body["message_id"]
        automatic = message.data["automatic"]
        verified = message.data["sender"]["verified"]
        contact = session.get(Contact, message.contact_id)
        assert contact is not None
    assert verified is verifiable, f"{path.name}: sender verified {verified}, expected {verifiable}"
    if structurally_automatic(raw):
        assert automatic is not None, f"{path.name} is automatic mail but was not recognised"
        assert body["replies"] == [] and stored[2] == 0 and inbox.messages == []
        assert contact.queue_key is None and contact.due_at is None  # recorded, not routed
        return
    assert automatic is None, f"{path.name} was taken for automatic mail ({automatic})"
    # A person who is not an admin: rejected, kept for staff, never routed.
    assert body["status"] == "rejected" and contact.queue_key is None, body
    kinds = [reply["kind"] for reply in body["replies"]]
    if not verified:
        assert body["reason"] == "sender_not_verified" and kinds == [] and stored[2] == 0
    elif "X-Auto-Response-Suppress" in BytesParser(policy=policy.compat32).parsebytes(raw):
        assert kinds == [] and stored[2] == 0  # the sender asked for no automatic replies
    else:
        # The one explanation, to the verified sender, echoing nothing of the message.
        assert body["reason"] == "not_an_admin" and kinds == ["rejection"], body
        (reply,) = body["replies"]
        assert reply["to"] == contact.from_address and stored[2] == 1


def test_structure_alone_tells_reports_from_people() -> None:
    """The check above is not vacuous: the folder holds both kinds."""
    if not FILES:
        pytest.skip(MISSING)
    kinds = {path.name: structurally_automatic(path.read_bytes()) for path in FILES}
    assert sum(kinds.values()) >= 4 and not all(kinds.values())
    # And "never answered" is not vacuous either: most automatic ones come from a sender the
    # trusted Authentication-Results verifies (a reply would not be held back as "may be forged").
    automatic = [path for path in FILES if kinds[path.name]]
    verified = [path.name for path in automatic if as_received(path.read_bytes())[1]]
    assert len(verified) >= 4, verified
