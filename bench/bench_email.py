"""Measure what one inbound email costs to parse: worst cases against a typical message.

Run: .venv/bin/python bench/bench_email.py [--repeat 5]

Each message goes through the raw-MIME normalisation every provider's raw path uses
(channels/email/rawmime.parse: the limits of channels/email/limits.py, the MIME parse, header
decoding, body walk, automatic-mail detection). Printed per message: its size, the median time
of ``--repeat`` runs, and the extra memory one parse takes (tracemalloc's peak, in a separate
run, as tracing slows Python down). The target for the worst cases (issue 12): under 50 ms and
20 MB each; the typical message (20 KB with one attachment) is there for scale.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from channels.email import rawmime

TARGET_MS = 50
TARGET_MB = 20
HEAD = (
    b"From: Alice Admin <alice@acme.example>\r\nTo: support@router.example\r\n"
    b"Date: Fri, 27 Nov 2026 10:00:00 -0500\r\nMessage-ID: <bench@acme.example>\r\n"
)


def typical() -> bytes:
    """A 20 KB message: a text part and one base64 log attachment."""
    log = b"".join(
        b"2026-11-27 10:00:%02d jcagent ERROR sync failed\n" % (n % 60) for n in range(300)
    )
    encoded = base64.encodebytes(log)
    return (
        HEAD + b"Subject: [Sev2] Windows agent not reporting\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + b"The agent on our Windows laptops stopped reporting this morning.\r\n"
        * 40
        + b'--b\r\nContent-Type: text/plain; name="jcagent.log"\r\n'
        b"Content-Disposition: attachment; filename=jcagent.log\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--b--\r\n"
    )


def encoded_word_subject() -> bytes:
    """An 88 KB-class message whose Subject holds 6,000 encoded words."""
    return HEAD + b"Subject: " + b" ".join([b"=?utf-8?q?=41?="] * 6000) + b"\r\n\r\nhi\r\n"


def many_parts() -> bytes:
    """8,000 small MIME parts (about 700 KB)."""
    parts = b"".join(
        b"--b\r\nContent-Type: text/plain\r\n\r\npart %d of many, a few words each\r\n" % n
        for n in range(8000)
    )
    return HEAD + b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts


def deep_nesting() -> bytes:
    """Multiparts nested 5,000 deep."""
    levels = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (n - 1, n)
        for n in range(1, 5000)
    )
    return HEAD + b"Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n" + levels


def attached_message_chain() -> bytes:
    """message/rfc822 inside message/rfc822, 5,000 times."""
    return HEAD + b"Subject: chain\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 5000 + b"x\r\n"


def header_flood() -> bytes:
    """200,000 header fields (1.6 MB of headers)."""
    return HEAD + b"Subject: fields\r\n" + b"X-A: b\r\n" * 200_000 + b"\r\nhi\r\n"


def report_flood() -> bytes:
    """A delivery-status report of 30,000 header blocks."""
    return (
        HEAD
        + b"Subject: report\r\nContent-Type: message/delivery-status\r\n\r\n"
        + b"Final-Recipient: rfc822; x@y.example\r\n\r\n" * 30_000
    )


def unclosed_html() -> bytes:
    """An HTML-only body of 20,000 unclosed tags (60 KB; minutes before, now linear)."""
    return HEAD + b"Subject: html\r\nContent-Type: text/html\r\n\r\n" + b"<a " * 20_000


def unclosed_comments() -> bytes:
    """An HTML-only body of 8,500 comments without "-->" (60 KB; 0.9 s before, now linear)."""
    return HEAD + b"Subject: html\r\nContent-Type: text/html\r\n\r\n" + b"<!--x >" * 8_500


def unclosed_quotes() -> bytes:
    """An HTML-only body of 6,600 tags whose quoted values run on (60 KB; 11 s before)."""
    return HEAD + b"Subject: html\r\nContent-Type: text/html\r\n\r\n" + b"<a b='x>'" * 6_600


MESSAGES: dict[str, Callable[[], bytes]] = {
    "typical, one attachment": typical,
    "Subject: 6,000 encoded words": encoded_word_subject,
    "8,000 MIME parts": many_parts,
    "nested 5,000 deep": deep_nesting,
    "5,000 attached messages": attached_message_chain,
    "200,000 header fields": header_flood,
    "report of 30,000 blocks": report_flood,
    "HTML, 20,000 unclosed tags": unclosed_html,
    "HTML, 8,500 unclosed comments": unclosed_comments,
    "HTML, 6,600 unclosed quotes": unclosed_quotes,
}


def parse(raw: bytes) -> None:
    rawmime.parse(raw, frozenset({"support@router.example"}))


def extra_memory(raw: bytes) -> int:
    """Return the peak memory one parse allocates beyond what was allocated before it."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        parse(raw)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed parses per message")
    args = parser.parse_args()
    print(
        f"one parse each (median of {args.repeat}), in process; target < {TARGET_MS} ms, "
        f"< {TARGET_MB} MB extra for the worst cases"
    )
    over = []
    for label, build in MESSAGES.items():
        raw = build()
        parse(raw)  # warm: imports, compiled patterns
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            parse(raw)
            times.append(time.perf_counter() - started)
        ms = statistics.median(times) * 1000
        mb = extra_memory(raw) / 1e6
        verdict = "ok" if ms < TARGET_MS and mb < TARGET_MB else "OVER"
        if verdict == "OVER" and not label.startswith("typical"):
            over.append(label)
        print(f"{label:<30} {len(raw) / 1024:8.0f} KB {ms:8.1f} ms {mb:7.1f} MB   {verdict}")
    if over:
        print(f"over the target: {', '.join(over)}")


if __name__ == "__main__":
    main()
