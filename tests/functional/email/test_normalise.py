"""MIME parsing and normalisation: charsets, encoded words, nesting, missing headers, markers."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from channels.email.addresses import read_from
from channels.email.authentication import (
    SenderCheck,
    Verdict,
    check_sender,
    received_spf,
    sendgrid_dkim,
)
from channels.email.headers import message_ids
from channels.email.html_text import html_to_text
from channels.email.mime import parse_mime
from channels.email.normalise import AuthResults, MalformedEmail

OWN = frozenset({"support@router.example"})


def parse(raw: bytes, **kwargs: object):  # type: ignore[no-untyped-def]
    return parse_mime(raw, provider="mime", own_addresses=OWN, **kwargs)  # type: ignore[arg-type]


def test_a_plain_message_is_normalised() -> None:
    raw = (
        b"From: Alice Admin <Alice@ACME.example>\r\n"
        b"To: support@router.example, Bob <bob+x@globex.example>\r\n"
        b"Cc: carol@initech.example\r\n"
        b"Subject: Agent down\r\n"
        b"Date: Fri, 27 Nov 2026 10:00:00 -0500\r\n"
        b"Message-ID: <abc@acme.example>\r\n"
        b"In-Reply-To: <ours@router.example>\r\n"
        b"References: <one@x> <ours@router.example>\r\n"
        b"\r\n"
        b"It is down.\r\n"
    )
    email = parse(raw)
    assert email.from_address == "alice@acme.example" and email.from_name == "Alice Admin"
    assert email.to == ("support@router.example", "bob+x@globex.example")
    assert email.cc == ("carol@initech.example",)
    assert email.message_id == "<abc@acme.example>" and not email.message_id_generated
    assert email.in_reply_to == ("<ours@router.example>",)
    assert email.references == ("<one@x>", "<ours@router.example>")
    assert email.text == "It is down.\n"
    assert email.date is not None and email.date.isoformat() == "2026-11-27T15:00:00+00:00"
    assert email.mailbox_hash == "x"
    assert email.automatic is None and not email.suppress_reply
    assert email.auth == AuthResults()


@pytest.mark.parametrize(
    ("body", "charset", "expected"),
    [
        (
            "Caf\u00e9 cr\u00e8me, \u00e7a ne marche pas".encode("iso-8859-1"),
            "iso-8859-1",
            "Café crème, ça ne marche pas",
        ),
        (
            "\u041e\u0448\u0438\u0431\u043a\u0430 \u0430\u0433\u0435\u043d\u0442\u0430".encode(
                "koi8-r"
            ),
            "koi8-r",
            "Ошибка агента",
        ),
        ("\u30a8\u30e9\u30fc\u3067\u3059".encode("shift_jis"), "shift_jis", "エラーです"),
        # Declared wrongly (UTF-8, but the bytes are Windows-1252): sniffed, not failed.
        (
            "\u201csmart quotes\u201d \u2013 caf\u00e9".encode("cp1252"),
            "utf-8",
            "“smart quotes” – café",
        ),
        # A charset nobody knows: UTF-8 is tried, then Windows-1252.
        ("na\u00efve".encode(), "x-unknown-charset", "naïve"),
    ],
)
def test_bodies_in_any_charset_are_decoded(body: bytes, charset: str, expected: str) -> None:
    raw = (
        b"From: alice@acme.example\r\nSubject: x\r\nMessage-ID: <c@x>\r\n"
        b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n"
    )
    assert parse(raw).text.strip() == expected


def test_undeclared_8bit_headers_and_bodies_are_readable() -> None:
    raw = (
        b"From: Ren\xe9 <rene@acme.example>\r\n"
        b"Subject: \xc3\x9cberwachung kaputt\r\n"  # raw UTF-8, no encoded word
        b"Message-ID: <d@x>\r\n\r\n"
        b"Gr\xfc\xdfe\r\n"  # raw Windows-1252
    )
    email = parse(raw)
    assert email.subject == "Überwachung kaputt"
    assert email.from_name == "René" and email.from_address == "rene@acme.example"
    assert email.text.strip() == "Grüße"


def test_encoded_words_are_decoded_in_subject_and_names() -> None:
    raw = (
        b"From: =?utf-8?b?SsO8cmdlbiBNw7xsbGVy?= <jm@acme.example>\r\n"
        b"Subject: =?iso-8859-1?q?Caf=E9_agent?= =?utf-8?q?_=E2=80=94_down?=\r\n"
        b"Message-ID: <e@x>\r\n\r\nbody\r\n"
    )
    email = parse(raw)
    assert email.subject == "Café agent — down"
    assert email.from_name == "Jürgen Müller"


def test_an_encoded_word_in_an_unknown_charset_does_not_fail() -> None:
    raw = b"From: a@acme.example\r\nSubject: =?x-bogus?q?hello?= there\r\nMessage-ID: <f@x>\r\n\r\nb\r\n"
    assert "there" in parse(raw).subject


def test_nested_multiparts_give_text_html_attachments_and_embedded_ids() -> None:
    inner = EmailMessage()
    inner["From"] = "someone@else.example"
    inner["Message-ID"] = "<forwarded@else.example>"
    inner.set_content("forwarded")
    msg = EmailMessage()
    msg["From"] = "alice@acme.example"
    msg["Subject"] = "nested"
    msg["Message-ID"] = "<g@x>"
    msg.set_content("plain body \u2713")
    msg.add_alternative(
        "<html><body><p>html <b>body</b></p><script>x()</script></body></html>", subtype="html"
    )
    msg.get_payload()[1].add_related(
        b"\x89PNG....", maintype="image", subtype="png", cid="<img1>", filename="screenshot.png"
    )  # type: ignore[index]
    msg.add_attachment(
        b"2026-11-27 agent started on darwin",
        maintype="text",
        subtype="plain",
        filename="jcagent.log",
    )
    msg.add_attachment(inner)
    email = parse(msg.as_bytes())
    assert email.text.strip() == "plain body ✓"
    assert "html <b>body</b>" in email.html
    names = [(a.filename, a.content_type) for a in email.attachments]
    assert ("screenshot.png", "image/png") in names
    assert ("jcagent.log", "text/plain") in names
    assert ("attached-message.eml", "message/rfc822") in names
    log = next(a for a in email.attachments if a.filename == "jcagent.log")
    assert log.size == len(b"2026-11-27 agent started on darwin") and "darwin" in log.head
    # Kept apart from References: they count only toward our own sent Message-IDs.
    assert "<forwarded@else.example>" in email.embedded_message_ids
    assert "<forwarded@else.example>" not in email.references


def test_html_only_mail_gets_text_from_its_html() -> None:
    raw = (
        b"From: a@acme.example\r\nSubject: h\r\nMessage-ID: <h@x>\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><title>T</title><style>p{}</style></head><body><p>Line one</p><p>Line &amp; two</p></body></html>"
    )
    email = parse(raw)
    assert email.text == "Line one\nLine & two"
    assert html_to_text("<div>a<br>b</div>") == "a\nb"


def test_missing_headers_do_not_fail_and_the_message_id_is_derived_from_content() -> None:
    raw = b"X-Nothing: here\r\n\r\njust a body\r\n"
    first, again = parse(raw), parse(raw)
    assert first.from_address is None and first.subject == "" and first.date is None
    assert first.message_id_generated and first.message_id == again.message_id
    assert first.message_id.endswith("@missing-message-id.invalid>")
    assert parse(raw + b"x").message_id != first.message_id


def test_control_characters_and_nuls_are_removed() -> None:
    raw = b"From: a@acme.example\r\nSubject: bad\x00\x07 subject\r\nMessage-ID: <i@x>\r\n\r\nnul\x00 here\x1b\r\n"
    email = parse(raw)
    assert email.subject == "bad subject" and email.text == "nul here\n"


def test_long_message_ids_are_stored_by_digest() -> None:
    long_id = "<" + "a" * 400 + "@acme.example>"
    (key,) = message_ids(long_id)
    assert len(key) <= 255 and key.startswith("<sha256.")
    assert message_ids(f"{long_id} <short@x>") == (key, "<short@x>")
    assert message_ids("bare-id@x") == ("<bare-id@x>",)


def test_unreadable_addresses_are_not_senders() -> None:
    raw = b"From: not an address\r\nMessage-ID: <j@x>\r\n\r\nb\r\n"
    assert parse(raw).from_address is None


TRUSTED = frozenset({"mx.router.example"})


def checked(headers: str, sender: str = "alice@acme.example", **kwargs: object) -> SenderCheck:
    raw = f"From: {sender}\r\nMessage-ID: <k@x>\r\n{headers}\r\n\r\nb\r\n".encode()
    # As our own MTA posts it to /email/inbound/mime: its Authentication-Results are read.
    email = parse(raw, read_results=True, **kwargs)
    return check_sender(
        email.from_address,
        email.from_problem,
        email.auth.verdicts,
        email.auth.results_headers,
        TRUSTED,
    )


@pytest.mark.parametrize(
    ("headers", "verified"),
    [
        ("Authentication-Results: mx.router.example; dmarc=pass header.from=acme.example", True),
        ("Authentication-Results: MX.Router.Example 1; dkim=pass header.d=acme.example", True),
        ("Authentication-Results: mx.router.example; dkim=pass header.i=@mail.acme.example", True),
        ("Authentication-Results: mx.router.example; spf=pass smtp.mailfrom=b@acme.example", True),
        ("Authentication-Results: mx.router.example; dkim=pass header.d=acme.example;", True),
        # Longer than any real header: not read at all (parsing it would cost too much).
        (
            f"Authentication-Results: mx.router.example; dmarc=pass header.from=acme.example ({'x' * 4000})",
            False,
        ),
        # Another host's results, however good, prove nothing.
        ("Authentication-Results: mx.evil.example; dmarc=pass header.from=acme.example", False),
        # A pass for a domain not aligned with the From: domain proves nothing.
        ("Authentication-Results: mx.router.example; dkim=pass header.d=evil.example", False),
        ("Authentication-Results: mx.router.example; spf=pass smtp.mailfrom=x@acmeexample", False),
        ("Authentication-Results: mx.router.example; dmarc=pass header.from=evil.example", False),
        ("Authentication-Results: mx.router.example; spf=pass", False),  # no domain
        (
            "Authentication-Results: mx.router.example; dkim=pass header.d=acme.example; "
            "dmarc=fail header.from=acme.example",
            False,
        ),
        ("Authentication-Results: mx.router.example; spf=fail smtp.mailfrom=acme.example", False),
        ("Authentication-Results: mx.router.example; ;;garbage", False),
        ("Received-SPF: Pass (mx.router.example) envelope-from=a@acme.example", False),
        ("X-Nothing: at all", False),
    ],
)
def test_only_an_aligned_pass_from_a_trusted_host_verifies(headers: str, verified: bool) -> None:
    assert checked(headers).verified is verified


def test_provider_verdicts_count_for_their_domain_only() -> None:
    spf = Verdict("spf", "pass", "acme.example", "sendgrid")
    assert checked("X-A: b", auth=AuthResults(verdicts=(spf,))).verified
    stranger = Verdict("spf", "pass", "attacker.example", "mailgun")
    assert not checked("X-A: b", auth=AuthResults(verdicts=(stranger,))).verified
    # Mailgun's DKIM verdict names no domain: it counts for the one domain every signature names.
    dkim = AuthResults(verdicts=(Verdict("dkim", "pass", None, "mailgun"),))
    one = "DKIM-Signature: v=1; a=rsa-sha256; d=acme.example; s=s1; b=x"
    two = one + "\r\nDKIM-Signature: v=1; a=rsa-sha256; d=evil.example; s=s1; b=y"
    assert checked(one, auth=dkim).verified
    assert not checked(two, auth=dkim).verified
    assert not checked("X-A: b", auth=dkim).verified
    # Headers cut for being too many may have held another signature: the verdict is unusable.
    crowded = "\r\n".join(f"X-Filler-{n}: x" for n in range(400)) + "\r\n" + one
    assert not checked(crowded, auth=dkim).verified


def test_sendgrid_and_received_spf_fields_name_their_domains() -> None:
    assert sendgrid_dkim("{@acme.example : pass, @evil.example : fail}") == [
        Verdict("dkim", "pass", "acme.example", "sendgrid"),
        Verdict("dkim", "fail", "evil.example", "sendgrid"),
    ]
    value = (
        "Pass (sender SPF authorized) identity=mailfrom; client-ip=203.0.113.5; "
        "helo=mail.acme.example; envelope-from=alice@acme.example; receiver=x"
    )
    assert received_spf(value, "postmark") == Verdict("spf", "pass", "acme.example", "postmark")
    helo = "Pass identity=helo; envelope-from=alice@acme.example"
    assert received_spf(helo, "postmark") == Verdict("spf", "pass", None, "postmark")


@pytest.mark.parametrize(
    ("values", "address", "problem"),
    [
        (["Alice Admin <Alice@ACME.example>"], "alice@acme.example", None),
        (["alice@acme.example (Alice)"], "alice@acme.example", None),
        (['"Admin, Alice" <alice@acme.example>'], "alice@acme.example", None),
        # The display name never wins.
        (["alice@acme.example <mallory@evil.example>"], "mallory@evil.example", None),
        (["alice@acme.example (Alice) <mallory@evil.example>"], "mallory@evil.example", None),
        (
            ["=?utf-8?q?alice=40acme.example=3E=2C?= <mallory@evil.example>"],
            "mallory@evil.example",
            None,
        ),
        # Encoded words inside the address are refused, not decoded.
        (["=?utf-8?b?YWxpY2VAYWNtZS5leGFtcGxl?="], None, "encoded word"),
        (["<=?utf-8?q?alice?=@acme.example>"], None, "encoded word"),
        # Exactly one From: with exactly one address.
        (["alice@acme.example", "mallory@evil.example"], "alice@acme.example", "2 From: headers"),
        (["alice@acme.example, mallory@evil.example"], None, "exactly one address"),
        (["<mallory@evil.example> <alice@acme.example>"], None, "exactly one address"),
        (["friends: alice@acme.example;"], None, "exactly one address"),
        ([], None, "no From: header"),
        (["not an address"], None, "not a valid address"),
    ],
)
def test_the_sender_is_the_one_from_address(
    values: list[str], address: str | None, problem: str | None
) -> None:
    sender = read_from(values)
    assert sender.address == address
    assert (problem is None and sender.problem is None) or (
        problem is not None and sender.problem is not None and problem in sender.problem
    )


@pytest.mark.parametrize(
    ("extra", "sender", "subject", "automatic", "suppress"),
    [
        ("Auto-Submitted: auto-replied", "alice@acme.example", "Re: hi", "auto-submitted", True),
        ("Auto-Submitted: no", "alice@acme.example", "hi", None, False),
        ("Precedence: bulk", "news@acme.example", "Newsletter", "bulk", True),
        ("List-Id: <users.lists.example>", "alice@acme.example", "hi", "mailing-list", True),
        ("X-Autoreply: yes", "alice@acme.example", "hi", "auto-reply", True),
        ("", "alice@acme.example", "Automatic reply: Agent down", "auto-reply", False),
        ("", "alice@acme.example", "Out of Office: back Monday", "auto-reply", False),
        (
            "",
            "MAILER-DAEMON@mx.acme.example",
            "Undelivered Mail Returned to Sender",
            "bounce",
            True,
        ),
        ("Return-Path: <>", "alice@acme.example", "hi", "bounce", True),
        ("", "support@router.example", "Re: hi", "own-message", True),
        ("X-Contact-Router: acknowledgement", "alice@acme.example", "hi", "own-message", True),
        ("X-Auto-Response-Suppress: All", "alice@acme.example", "hi", None, True),
        ("", "alice@acme.example", "Agent out of memory", None, False),
    ],
)
def test_automatic_mail_is_recognised(
    extra: str, sender: str, subject: str, automatic: str | None, suppress: bool
) -> None:
    raw = f"From: {sender}\r\nSubject: {subject}\r\nMessage-ID: <m@x>\r\n{extra + chr(13) + chr(10) if extra else ''}\r\nbody\r\n"
    email = parse(raw.encode())
    assert (email.automatic, email.suppress_reply) == (automatic, suppress)
    # The subject alone decided it (the service lets a verified sender's mail through).
    by_subject = automatic is not None and not extra and sender == "alice@acme.example"
    assert email.automatic_by_subject == by_subject


def test_a_bounce_report_carries_the_returned_message_id() -> None:
    raw = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.acme.example>\r\n"
        b"Subject: Undelivered Mail\r\nMessage-ID: <bounce@mx>\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@router.example\r\nMessage-ID: <ack-1@router.example>\r\n"
        b"--b--\r\n"
    )
    email = parse(raw)
    assert email.automatic == "bounce"
    assert "<ack-1@router.example>" in email.embedded_message_ids


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"   \r\n", "empty"),
        (b"just some text without any header\r\n", "no header fields"),
    ],
)
def test_things_that_are_not_messages_are_malformed(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedEmail, match=reason):
        parse(raw)
