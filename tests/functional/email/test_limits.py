"""The caps of channels/email/limits.py (applied by mime_caps and posted_caps): what they cut,
what they keep, and that their walk of a message's bytes sees the same structure the standard
library's parser then builds."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email import limits
from channels.email.mime import parse_mime
from channels.email.mime_caps import bound_message
from channels.email.posted_caps import cap_header_block, cap_pairs, cap_value, read_json_list
from tests.paths import CONFORMANCE_EMAIL

HEAD = (
    b"From: Alice Admin <alice@acme.example>\r\nTo: support@router.example\r\n"
    b"Date: Fri, 27 Nov 2026 10:00:00 -0500\r\nMessage-ID: <m@acme.example>\r\n"
)
CONFORMANCE = CONFORMANCE_EMAIL


def entities(raw: bytes) -> int:
    """Return how many Message objects the compat32 parser builds for ``raw``."""
    return sum(1 for _ in BytesParser(policy=policy.compat32).parsebytes(raw).walk())


def parse(raw: bytes) -> object:
    return parse_mime(raw, provider="mime", own_addresses=frozenset())


def test_ordinary_mail_is_left_byte_for_byte() -> None:
    raw = (
        HEAD + b"Subject: =?utf-8?q?Agent_d=C3=A9faillant?=\r\n"
        b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b"--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe agent is down.\r\n"
        b'--outer\r\nContent-Type: text/plain; name="jcagent.log"\r\n'
        b"Content-Disposition: attachment; filename=jcagent.log\r\n\r\nerror\r\n--outer--\r\n"
    )
    bounded = bound_message(raw)
    assert bounded.raw is raw and bounded.notes == () and not bounded.cut
    assert bounded.entities == entities(raw) == 3


def test_an_encoded_word_flood_is_cut_after_the_hundredth_word() -> None:
    raw = HEAD + b"Subject: " + b" ".join([b"=?utf-8?q?=41?="] * 6000) + b"\r\n\r\nbody\r\n"
    bounded = bound_message(raw)
    assert bounded.raw.count(b"=?") == limits.MAX_ENCODED_WORDS
    assert bounded.notes == ("header Subject: 6000 encoded words, the first 100 kept",)
    email = parse(raw)
    assert email.subject == "A" * 100 and email.capped == bounded.notes  # type: ignore[attr-defined]
    assert email.from_address == "alice@acme.example"  # type: ignore[attr-defined]


def test_a_long_field_is_cut_at_a_space_and_references_keep_the_newest_ids() -> None:
    ids = b" ".join(b"<%d.%s@acme.example>" % (n, b"x" * 60) for n in range(300))
    raw = HEAD + b"Subject: " + b"word " * 5000 + b"\r\nReferences: " + ids + b"\r\n\r\nhi\r\n"
    bounded = bound_message(raw)
    head = bounded.head.decode()
    subject = next(line for line in head.splitlines() if line.startswith("Subject:"))
    assert len(subject) <= limits.MAX_FIELD_BYTES + 10 and subject.endswith("word")
    references = next(line for line in head.splitlines() if line.startswith("References:"))
    assert "<299." in references and "<0." not in references
    assert "<299.%s@acme.example>" % ("x" * 60) in parse(raw).references  # type: ignore[attr-defined]


def test_parameters_are_capped_where_legacy_parsing_is_quadratic() -> None:
    raw = (
        HEAD + b'Subject: hi\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b'--b\r\nContent-Type: text/plain; name="' + b";" * 5000 + b'"\r\n\r\nx\r\n--b--\r\n'
    )
    bounded = bound_message(raw)
    assert any("parameters, the first 24 kept" in note for note in bounded.notes)
    assert bounded.raw.count(b";") <= limits.MAX_PARAMETERS + 1


def test_what_the_router_reads_survives_a_flood_of_other_fields() -> None:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"f" * 200) for n in range(400))
    raw = filler + HEAD + b"Subject: Agent down\r\n\r\nbody\r\n"
    bounded = bound_message(raw)
    assert len(bounded.head) < limits.MAX_HEADER_BLOCK_BYTES + 2000
    email = parse(raw)
    assert email.subject == "Agent down"  # type: ignore[attr-defined]
    assert email.message_id == "<m@acme.example>"  # type: ignore[attr-defined]
    assert any("dropped" in note for note in bounded.notes)


@pytest.mark.parametrize("padding", range(8))
@pytest.mark.parametrize("part", [False, True])
def test_a_header_block_too_long_to_read_is_cut_and_its_body_kept(padding: int, part: bool) -> None:
    # Wherever the window falls in a line, the parser must see the cut block, not the flood.
    flood = b"X-" + b"p" * padding + b": b\r\n" + b"X-A: b\r\n" * 40_000
    body = flood + b"\r\nThe agent is down.\r\n"
    if part:
        body = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + body + b"--b--\r\n"
    raw = HEAD + b"Subject: hi\r\n" + body
    bounded = bound_message(raw)
    tree = BytesParser(policy=policy.compat32).parsebytes(bounded.raw)
    fields = sum(len(entity.keys()) for entity in tree.walk())
    assert fields <= limits.MAX_HEADER_FIELDS + 20, fields
    email = parse(raw)
    assert email.text.strip() == "The agent is down."  # type: ignore[attr-defined]
    assert email.capped  # type: ignore[attr-defined]


def test_parts_beyond_the_cap_are_dropped_and_the_multipart_closed() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n for n in range(900))
    raw = HEAD + b"Subject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts
    bounded = bound_message(raw + b"--b--\r\n")
    assert bounded.cut and bounded.entities == limits.MAX_PARTS
    assert entities(bounded.raw) == limits.MAX_PARTS
    assert bounded.raw.endswith(b"--b--\r\n")
    assert "part 0\n" in parse(raw).text  # type: ignore[attr-defined]


def test_nesting_beyond_the_cap_is_dropped() -> None:
    levels = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (n - 1, n)
        for n in range(1, 200)
    )
    raw = HEAD + b"Subject: hi\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n" + levels
    bounded = bound_message(raw)
    assert bounded.cut and entities(bounded.raw) <= limits.MAX_DEPTH + 1
    chain = HEAD + b"Subject: hi\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 500 + b"x\r\n"
    # A cut inside an attached message leaves it empty: one level more.
    assert entities(bound_message(chain).raw) <= limits.MAX_DEPTH + 2


def test_a_delivery_report_is_kept_whole() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.acme.example\r\nSubject: Undelivered Mail\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n"
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; x@y\r\nStatus: 5.1.1\r\n"
        b"--r--\r\n"
    )
    bounded = bound_message(raw)
    assert bounded.raw is raw and bounded.entities == entities(raw)


def test_lines_ending_in_a_bare_cr_are_walked_like_the_parser_does() -> None:
    raw = (
        HEAD + b"Subject: hi\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\rContent-Type: text/plain\r\rone\r--b\r\rtwo\r--b--\r"
    )
    assert bound_message(raw).entities == entities(raw)


def test_provider_fields_get_the_same_caps() -> None:
    subject, note = cap_value("Subject", " ".join(["=?utf-8?q?=41?="] * 500))
    assert subject.count("=?") == limits.MAX_ENCODED_WORDS and note is not None
    assert cap_value("Subject", "Agent down") == ("Agent down", None)
    pairs, notes = cap_pairs(
        [(f"X-{n}", "v" * 1000) for n in range(200)] + [("Subject", "Agent down")]
    )
    assert ("Subject", "Agent down") in pairs and len(pairs) < 100 and notes
    block, notes = cap_header_block(b"Subject: " + b"=?utf-8?q?=41?= " * 300 + b"\n")
    assert block.count(b"=?") == limits.MAX_ENCODED_WORDS and notes


def test_header_pairs_are_read_no_further_than_the_limits_keep() -> None:
    # Once nothing more can be kept, the rest is counted, not capped one by one.
    flood = [("X-A", "b")] * 1_000_000
    pairs, notes = cap_pairs([("Subject", "Agent down"), *flood, ("From", "alice@acme.example")])
    assert ("Subject", "Agent down") in pairs and len(pairs) == limits.MAX_HEADER_FIELDS
    assert notes == ["999702 header fields dropped beyond the header limits"]  # all but 300
    # Essential fields past the budget are still kept, within the window.
    late = [("X-A", "b")] * 400 + [("Message-ID", "<m@x>")]
    assert ("Message-ID", "<m@x>") in cap_pairs(late)[0]


@pytest.mark.parametrize(
    ("text", "items", "more"),
    [
        ("[]", [], False),
        (' [ ["a", "b"] , ["c", "d"] ] ', [["a", "b"], ["c", "d"]], False),
        ("[1, 2, 3, 4]", [1, 2, 3], True),  # the rest is not decoded (nor checked)
        ("[1, 2, 3, x", [1, 2, 3], True),
    ],
)
def test_a_json_list_is_decoded_only_as_far_as_the_limit(
    text: str, items: list[object], more: bool
) -> None:
    assert read_json_list(text, 3) == (items, more)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{}", TypeError),
        ('"s"', TypeError),
        ("x", ValueError),
        ("[1,", ValueError),
        ("[1 2]", ValueError),
        ("[1] x", ValueError),
    ],
)
def test_what_is_not_a_json_list_is_refused(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        read_json_list(text, 3)


# --- the walk sees what the parser builds ------------------------------------------------------


@st.composite
def mime_trees(draw: st.DrawFn, depth: int = 0, digest: bool = False) -> bytes:
    """Draw a MIME entity (headers and body) of leaves, multiparts and attached messages."""
    kinds = ["leaf", "multipart", "message", "report", "bare"] if depth < 4 else ["leaf"]
    kind = draw(st.sampled_from(kinds))
    newline = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    if kind == "bare":  # no Content-Type: text/plain, or message/rfc822 in a digest
        return newline + b"Subject: y" + newline + newline + b"text" + newline
    if kind == "leaf":
        text = draw(st.sampled_from([b"hello", b"--not a boundary", b"a: b", b"", b"--b "]))
        return b"Content-Type: text/plain" + newline + newline + text + newline
    if kind == "report":
        blocks = draw(st.sampled_from([b"A: 1", b"A: 1" + newline + newline + b"B: 2", b""]))
        return b"Content-Type: message/delivery-status" + newline + newline + blocks + newline
    if kind == "message":
        inner = draw(mime_trees(depth + 1))
        return b"Content-Type: message/rfc822" + newline + newline + b"Subject: x\r\n" + inner
    boundary = draw(st.sampled_from([b"b", b"b1", b"=_x", b"b" + str(depth).encode()]))
    subtype = draw(st.sampled_from([b"mixed", b"digest"]))
    children = draw(st.lists(mime_trees(depth + 1, subtype == b"digest"), max_size=4))
    tail = draw(st.sampled_from([b"", b" ", b"\t"]))
    body = b"".join(b"--" + boundary + tail + newline + child for child in children)
    close = draw(st.booleans())
    fold = draw(st.sampled_from([b" ", newline + b"\t", newline + b" "]))
    return (
        b"Content-Type: multipart/"
        + subtype
        + b";"
        + fold
        + b'boundary="'
        + boundary
        + b'"'
        + newline
        + newline
        + draw(st.sampled_from([b"", b"preamble" + newline]))
        + body
        + (b"--" + boundary + b"--" + newline if close else b"")
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=mime_trees(), cap=st.integers(min_value=1, max_value=12))
def test_the_walk_counts_what_the_parser_builds_and_caps_it(tree: bytes, cap: int) -> None:
    raw = HEAD + b"Subject: hi\r\n" + tree
    bounded = bound_message(raw)
    assert bounded.raw is raw and bounded.entities == entities(raw), tree
    capped = bound_message(raw, max_parts=cap, max_depth=3)
    assert entities(capped.raw) == capped.entities <= cap + 1  # + an emptied attached message
    assert capped.cut == (capped.raw is not raw)


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason=f"{CONFORMANCE} is absent")
def test_real_world_mail_is_left_byte_for_byte() -> None:
    for path in sorted(CONFORMANCE.rglob("*")):
        if path.suffix not in (".eml", ".box"):
            continue
        raw = path.read_bytes()
        bounded = bound_message(raw)
        assert bounded.raw is raw and bounded.notes == (), path.name
        assert bounded.entities == entities(raw), path.name
