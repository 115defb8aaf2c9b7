"""Fuzz the raw MIME endpoint: arbitrary bytes and header combinations never give a 500 and never
leave a partial record."""

from __future__ import annotations

from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from router.store.db import Database
from router.store.models import Contact, ContactEvent
from router.store.models.email import EmailMessage as StoredEmail
from router.store.models.email import EmailOutbox
from tests.functional.email.conftest import post_mime

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Date",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "Return-Path",
    "Authentication-Results",
    "Received-SPF",
    "X-Auto-Response-Suppress",
    "MIME-Version",
]
SENDERS = [
    "alice@acme.example",
    "Alice Admin <alice@acme.example>",
    "bob@globex.example",
    "dave@umbrella.example",
    "mallory@evil.example",
    "=?utf-8?q?Ren=C3=A9?= <rene@acme.example>",
    "MAILER-DAEMON@mx.example",
    "support@router.example",
    "",
    "<>",
    "not an address",
]
CONTENT_TYPES = [
    "text/plain; charset=utf-8",
    "text/plain; charset=iso-8859-1",
    "text/plain; charset=x-unknown",
    "text/html; charset=koi8-r",
    'multipart/mixed; boundary="b"',
    'multipart/alternative; boundary="b"',
    "multipart/report; report-type=delivery-status; boundary=b",
    "message/rfc822",
    "application/octet-stream",
    "text/plain; charset=",
    "multipart/mixed",
    ";;;",
]

text_values = st.one_of(
    st.sampled_from(SENDERS),
    st.sampled_from(CONTENT_TYPES),
    st.sampled_from(
        [
            "<a@b>",
            "<a@b> <c@d>",
            "[#C-1] hello",
            "=?x?q?bad?=",
            "=?utf-8?b?!!!?=",
            "[Sev1] down",
            "auto-replied",
            "base64",
            "quoted-printable",
        ]
    ),
    st.text(max_size=80),
)
header_values = st.one_of(
    text_values.map(lambda v: v.encode("utf-8", "surrogatepass")), st.binary(max_size=80)
)
header_names = st.one_of(
    st.sampled_from(HEADER_NAMES), st.text(alphabet="abcXYZ-:_ \t", min_size=1, max_size=12)
)

bodies = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.lists(st.binary(max_size=80), max_size=4).map(
        lambda parts: (
            b"".join(
                b"--b\r\nContent-Type: text/plain; charset=cp1252\r\n\r\n" + part + b"\r\n"
                for part in parts
            )
            + b"--b--\r\n"
        )
    ),
)


message_ids = st.one_of(
    st.sampled_from([b"<a@b>", b"<c@d>", b"", b"<>", b"no-brackets", b"<a@b> <c@d>"]),
    st.text(max_size=30).map(lambda t: f"<{t}@fuzz.example>".encode("utf-8", "surrogatepass")),
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    headers: list[tuple[str, bytes]] = []
    # Usually a sender we know, so that contacts get routed and acknowledged too.
    if draw(st.integers(0, 9)) < 8:
        headers.append(("From", draw(st.sampled_from(SENDERS)).encode()))
    if draw(st.booleans()):
        headers.append(("Message-ID", draw(message_ids)))
    if draw(st.booleans()):
        headers.append((draw(st.sampled_from(["In-Reply-To", "References"])), draw(message_ids)))
    if draw(st.booleans()):
        headers.append(("Subject", draw(header_values)))
    headers += draw(st.lists(st.tuples(header_names, header_values), max_size=8))
    headers = draw(st.permutations(headers))
    separator = draw(st.sampled_from([b"\r\n", b"\n"]))
    lines = [name.encode("utf-8", "surrogatepass") + b": " + value for name, value in headers]
    return separator.join(lines) + separator + separator + draw(bodies)


def assert_no_partial_records(db: Database) -> None:
    with db.session() as session:
        contacts = session.scalars(select(Contact)).all()
        inbound = {
            m.message_id: m
            for m in session.scalars(select(StoredEmail).where(StoredEmail.direction == "in"))
        }
        for contact in contacts:
            first = session.scalar(
                select(ContactEvent)
                .where(ContactEvent.contact_id == contact.id)
                .order_by(ContactEvent.id)
                .limit(1)
            )
            assert first is not None and first.kind == "received", contact.reference
        stored_for = {m.contact_id for m in inbound.values()}
        # Every contact has its message stored; every stored message belongs to a contact.
        new_contacts = {c.id for c in contacts if c.external_id in inbound}
        assert new_contacts == {c.id for c in contacts}
        assert stored_for <= {c.id for c in contacts}
        for row in session.scalars(select(EmailOutbox)):
            assert row.contact_id in {c.id for c in contacts}


def snapshot(db: Database) -> tuple[int, int, int]:
    with db.session() as session:
        return (
            len(session.scalars(select(Contact.id)).all()),
            len(session.scalars(select(StoredEmail.id)).all()),
            len(session.scalars(select(ContactEvent.id)).all()),
        )


@FUZZ
@given(raw=st.one_of(messages(), st.binary(max_size=600)))
def test_raw_mime_endpoint_survives_anything(
    client: FlaskClient, db: Database, demo: None, raw: bytes
) -> None:
    before = snapshot(db)
    response = post_mime(client, raw)
    assert response.status_code in (200, 400), (response.status_code, response.get_data()[:300])
    body = response.get_json()
    assert isinstance(body, dict) and (body.get("message") or body.get("outcome"))
    if response.status_code == 400:
        assert snapshot(db) == before
        event("400")
    else:
        assert body["outcome"] in ("created", "threaded", "duplicate", "own_message")
        event(f"{body['outcome']} {body['status']}")
    assert_no_partial_records(db)
