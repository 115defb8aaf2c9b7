"""Pure pieces: reply wording and times, SendGrid's ECDSA check, form bodies, webhook credentials."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from channels.email import ecdsa
from channels.email.formdata import FormError, parse_form
from channels.email.replies import acknowledgement, local_time, reply_subject
from channels.email.webhook_auth import WebhookAuthError, check_basic, check_bearer
from config.settings import Settings, SettingsError
from router.core.domain import Severity
from tests.functional.email.conftest import sendgrid_public_key, sendgrid_sign

# Produced with OpenSSL 3 (`openssl ecparam -name prime256v1 -genkey`, `openssl dgst -sha256
# -sign`), so the verifier is checked against an independent implementation.
OPENSSL_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFSxDcy9PRLzaAqOXkc8em0dCeobTmu399UMRhoXxd0iGaTFVqh84"
    "nYj95R7DMurnLAbZwT1ZgqSmzS6aDIFpBA=="
)
OPENSSL_PAYLOAD = b'1700000000{"hello":"world"}'
OPENSSL_SIGNATURE = "MEQCIAHfvcrhQOMRVUtesUswi1C6rNZDbwLbyDzkGN5m3ZMSAiBNG32EgSJXxFJTKiS92AXyiBESBdUIeBLIukU9wOrwTA=="


@pytest.mark.parametrize(
    ("at", "zone", "expected"),
    [
        (
            datetime(2026, 11, 27, 16, 0, tzinfo=UTC),
            "America/New_York",
            "Friday 27 November 2026, 11:00 EST (America/New_York, UTC-05:00)",
        ),
        (
            datetime(2026, 7, 3, 16, 0, tzinfo=UTC),
            "America/New_York",
            "Friday 3 July 2026, 12:00 EDT (America/New_York, UTC-04:00)",
        ),
        (
            datetime(2026, 11, 29, 11, 0, tzinfo=UTC),
            "Asia/Jerusalem",
            "Sunday 29 November 2026, 13:00 IST (Asia/Jerusalem, UTC+02:00)",
        ),
        (
            datetime(2026, 11, 27, 16, 0, tzinfo=UTC),
            "Asia/Kolkata",
            "Friday 27 November 2026, 21:30 IST (Asia/Kolkata, UTC+05:30)",
        ),
        (
            datetime(2026, 11, 27, 16, 0, tzinfo=UTC),
            "Not/AZone",
            "Friday 27 November 2026, 16:00 UTC (UTC, UTC+00:00)",
        ),
    ],
)
def test_due_times_are_shown_in_local_time(at: datetime, zone: str, expected: str) -> None:
    assert local_time(at, zone) == expected


@pytest.mark.parametrize(
    ("subject", "reference", "expected"),
    [
        ("Agent down", "C-7", "Re: [#C-7] Agent down"),
        ("Re: RE: Agent down", "C-7", "Re: [#C-7] Agent down"),
        ("Re: [#C-7] Agent down", "C-7", "Re: [#C-7] Agent down"),
        ("", None, "Re: (no subject)"),
        ("AW: Frage", None, "Re: Frage"),
    ],
)
def test_reply_subjects(subject: str, reference: str | None, expected: str) -> None:
    assert reply_subject(subject, reference) == expected


def test_an_acknowledgement_without_commitment_says_so() -> None:
    reply = acknowledgement(
        reference="C-3",
        subject="Question",
        recipient_name=None,
        severity=Severity.S3,
        severity_stated=False,
        severity_definition="Partial, non-critical issue",
        due_at=None,
        timezone="Europe/London",
        no_commitment_reason="there is none: trial support has no contractual first-response time.",
        missing=[],
        signature="-- \nSupport",
    )
    assert "First response: there is none" in reply.body
    assert "You did not state a severity" in reply.body
    assert "Thank you for including everything" in reply.body
    assert reply.body.startswith("Hello,\n")


def test_ecdsa_accepts_an_openssl_signature() -> None:
    key = ecdsa.PublicKey.load(OPENSSL_KEY)
    assert ecdsa.verify_b64(key, OPENSSL_PAYLOAD, OPENSSL_SIGNATURE)
    assert not ecdsa.verify_b64(key, OPENSSL_PAYLOAD + b" ", OPENSSL_SIGNATURE)
    pem = (
        "-----BEGIN PUBLIC KEY-----\n"
        + OPENSSL_KEY[:64]
        + "\n"
        + OPENSSL_KEY[64:]
        + "\n-----END PUBLIC KEY-----\n"
    )
    assert ecdsa.PublicKey.load(pem) == key
    assert sendgrid_public_key() == OPENSSL_KEY  # the test signing key is that OpenSSL key


def test_ecdsa_round_trip_and_rejections() -> None:
    key = ecdsa.PublicKey.load(sendgrid_public_key())
    signature = sendgrid_sign(b"payload")
    assert ecdsa.verify_b64(key, b"payload", signature)
    assert not ecdsa.verify_b64(key, b"payloaD", signature)
    other = ecdsa.PublicKey.load(sendgrid_public_key(secret=0x1234567890ABCDEF))
    assert not ecdsa.verify_b64(other, b"payload", signature)
    assert not ecdsa.verify_b64(key, b"payload", "not base64!")
    assert not ecdsa.verify_b64(key, b"payload", base64.b64encode(b"\x30\x02\x02\x00").decode())
    der = base64.b64decode(signature)
    assert not ecdsa.verify(key, b"payload", der + b"\x00")  # trailing garbage: not strict DER
    r_zero = b"\x30\x06\x02\x01\x00\x02\x01\x01"
    assert not ecdsa.verify(key, b"payload", r_zero)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("%%%", "not valid base64"),
        (base64.b64encode(b"\x30" * 91).decode(), "not a DER SubjectPublicKeyInfo"),
        (OPENSSL_KEY[:-8] + "AAAAAA==", "not a DER SubjectPublicKeyInfo"),
        (
            base64.b64encode(
                ec.generate_private_key(ec.SECP384R1())
                .public_key()
                .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            ).decode(),
            "not a P-256",
        ),
    ],
)
def test_bad_public_keys_are_refused(text: str, message: str) -> None:
    with pytest.raises(ecdsa.PublicKeyError, match=message):
        ecdsa.PublicKey.load(text)


def test_forms_keep_raw_bytes_for_the_adapter_to_decode() -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\ncaf\xe9\r\n'
        b'--b\r\nContent-Disposition: form-data; name="attachment1"; filename="jcagent.log"\r\n'
        b"Content-Type: text/plain\r\n\r\n\x00\x01binary\r\n--b--\r\n"
    )
    form = parse_form("multipart/form-data; boundary=b", body)
    assert form.fields["text"] == b"caf\xe9" and form.text("text", "iso-8859-1") == "café"
    (upload,) = form.files
    assert (upload.field, upload.filename, upload.data) == (
        "attachment1",
        "jcagent.log",
        b"\x00\x01binary",
    )
    urlencoded = parse_form("application/x-www-form-urlencoded", b"a=caf%C3%A9&b=&a=2")
    assert urlencoded.text("a") == "café" and urlencoded.text("b") == ""


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/json", b"{}", "expected a multipart/form-data"),
        (None, b"", "no content type"),
        ("multipart/form-data", b"--b\r\n", "without a boundary"),
        (
            "multipart/form-data; boundary=zz",
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b--\r\n",
            "no parts",
        ),
    ],
)
def test_unreadable_forms(content_type: str | None, body: bytes, message: str) -> None:
    with pytest.raises(FormError, match=message):
        parse_form(content_type, body)


def test_basic_and_bearer_credentials() -> None:
    good = "Basic " + base64.b64encode(b"user:pass:with:colons").decode()
    check_basic(good, "user", "pass:with:colons")
    for header in (
        None,
        "Bearer x",
        "Basic !!!",
        "Basic " + base64.b64encode(b"user:nope").decode(),
    ):
        with pytest.raises(WebhookAuthError):
            check_basic(header, "user", "pass:with:colons")
    check_bearer("Bearer tok-123", "tok-123")
    check_bearer("bearer   tok-123  ", "tok-123")
    for header in (None, "Bearer", "Bearer tok-124", "Basic tok-123"):
        with pytest.raises(WebhookAuthError):
            check_bearer(header, "tok-123")


def test_sender_verification_settings_are_read_and_checked() -> None:
    settings = Settings.from_env(
        {
            "EMAIL_TRUSTED_AUTHSERV_IDS": "MX.Router.example, mx2.router.example,",
            "EMAIL_STAFF_DOMAINS": "support.example",
            "EMAIL_MAX_REJECTIONS_PER_HOUR": "0",
        }
    )
    assert settings.trusted_authserv_ids == {"mx.router.example", "mx2.router.example"}
    assert settings.staff_email_domains == {"support.example"}
    assert settings.email_max_rejections_per_hour == 0
    assert Settings().trusted_authserv_ids == frozenset()
    for variable, value in (
        ("EMAIL_TRUSTED_AUTHSERV_IDS", "mx.router.example; dmarc=pass"),
        ("EMAIL_STAFF_DOMAINS", "@support.example"),
        ("EMAIL_MAX_REJECTIONS_PER_HOUR", "-1"),
    ):
        with pytest.raises(SettingsError, match=variable):
            Settings.from_env({variable: value})
