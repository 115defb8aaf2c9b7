"""One normalised form for every inbound email, and the MIME parsing behind it.

Pure code: the standard library's ``email`` package parses the message once ``limits`` has
capped its headers and structure (the MIME tree with policy ``compat32``, linear in its size;
the top-level headers with policy ``default``). Everything here tolerates what real mail
contains -- undeclared or wrong charsets, encoded words, nested multiparts, missing headers,
control characters -- and hands back clean text that every database (PostgreSQL refuses NUL
characters and lone surrogates) and JSON can store.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import decode_header
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

from channels.email import limits
from channels.email.authentication import (
    MAX_RESULTS_HEADERS,
    Verdict,
    verdict_word,
    with_signature_domain,
)
from channels.email.automatic import REPORT_TYPES, detect_automatic

MAX_TEXT_CHARS = 100_000
MAX_HTML_CHARS = 200_000
MAX_HEADER_CHARS = limits.MAX_FIELD_BYTES  # a field within the limits is never cut again
MAX_HEADERS = limits.MAX_HEADER_FIELDS + limits.MAX_ESSENTIAL_EXTRA  # all the limits keep
MAX_ADDRESSES = 100
MAX_REFERENCES = 100
MAX_ATTACHMENTS = 100
MAX_MIME_DEPTH = 20
ATTACHMENT_HEAD_BYTES = 4096
# Contact.external_id is 255 characters; longer Message-IDs are stored by their digest.
MAX_KEY_CHARS = 255
ADDRESS_MAX_CHARS = 320

HeaderMap = Mapping[str, tuple[str, ...]]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_ADDRESS = re.compile(r"^[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+$")
_TEXTUAL_NAME = re.compile(r"\.(log|txt|csv|json|xml|conf|cfg|ini|out|err)(\.\d+)?$", re.I)


class MalformedEmail(ValueError):
    """The payload is not an email we can read; the message says why (answered with 400)."""


@dataclass(frozen=True)
class Attachment:
    """An attachment's metadata; ``head`` is its first bytes as text, for classification only."""

    filename: str
    content_type: str
    size: int
    head: str = field(default="", repr=False)

    @property
    def basename(self) -> str:
        """Return the file name without any directory a client left in it."""
        return re.split(r"[\\/]", self.filename)[-1]

    def to_dict(self) -> dict[str, Any]:
        """Return the metadata that is stored (never the content)."""
        return {"name": self.filename, "type": self.content_type, "size": self.size}


@dataclass(frozen=True)
class AuthResults:
    """What the provider reported about SPF/DKIM/DMARC, and the Authentication-Results headers.

    Nothing here is believed yet: ``authentication.check_sender`` decides, with the trusted
    receiving hosts, whether any of it is an aligned pass for the From: address.
    """

    verdicts: tuple[Verdict, ...] = ()  # the provider's own verdict fields
    results_headers: tuple[str, ...] = ()  # Authentication-Results values, topmost first

    def best(self, method: str) -> str:
        """Return the provider's verdict for ``method`` (pass if any passed), or none."""
        found = [v.result for v in self.verdicts if v.method == method]
        return "pass" if "pass" in found else (found[0] if found else "none")

    def to_dict(self) -> dict[str, Any]:
        """Return the provider's verdicts for the record."""
        return {
            "spf": self.best("spf"),
            "dkim": self.best("dkim"),
            "dmarc": self.best("dmarc"),
            "verdicts": [verdict.to_dict() for verdict in self.verdicts],
        }


@dataclass(frozen=True)
class InboundEmail:
    """One inbound message, whatever the provider, normalised."""

    provider: str
    message_id: str  # storage key: <...>, or a digest form when over 255 characters
    message_id_generated: bool  # the message had none; the key is derived from its content
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    # Message-IDs in attached messages and returned headers: they name only mail we sent.
    embedded_message_ids: tuple[str, ...]
    from_address: str | None  # lower-case addr-spec, or None when missing or unreadable
    from_name: str | None
    from_problem: str | None  # why From: can never be a verified sender (two headers, ...)
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    date: datetime | None
    auth: AuthResults
    automatic: str | None  # why it is automatic mail (recorded, never answered); None: a person
    suppress_reply: bool  # the sender asked for no automatic replies
    envelope_from: str | None
    mailbox_hash: str | None  # the +tag of the address it was sent to (support+contoso@...)
    headers: Mapping[str, str]  # a few headers kept for the record
    size: int
    capped: tuple[str, ...] = ()  # what the limits cut from the message (channels/email/limits.py)
    # Automatic only by its subject ("Delivery failure: ..."): words a person may write too.
    automatic_by_subject: bool = False

    def summary(self) -> dict[str, Any]:
        """Return what the timeline shows about the message."""
        return {
            "provider": self.provider,
            "message_id": self.message_id,
            "from": self.from_address,
            "from_name": self.from_name,
            "from_problem": self.from_problem,
            "to": list(self.to),
            "cc": list(self.cc),
            "subject": self.subject,
            "excerpt": self.text[:2000],
            "attachments": [attachment.to_dict() for attachment in self.attachments],
            "auth": self.auth.to_dict(),
            "automatic": self.automatic,
            "size": self.size,
            "capped": list(self.capped),
        }


# --- text cleaning -------------------------------------------------------------------------


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode ``data`` in its declared charset, else UTF-8, else Windows-1252; never fail."""
    if charset:
        name = charset.strip().strip("\"'").lower()
        try:
            codec = codecs.lookup(name)
        except LookupError:
            codec = None
        if codec is not None and getattr(codec, "_is_text_encoding", True):
            try:
                return data.decode(codec.name)
            except (UnicodeError, LookupError, ValueError, TypeError):
                pass  # declared wrongly: fall back to sniffing
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def clean_text(value: str, limit: int | None = None) -> str:
    """Return ``value`` without NULs, control characters or surrogates, newlines as \\n."""
    if _SURROGATE.search(value):
        try:
            # Undecodable bytes the parser kept as surrogate escapes: decode them properly.
            value = decode_bytes(value.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:
            value = _SURROGATE.sub("\ufffd", value)
    value = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    return value[:limit] if limit is not None else value


def clean_line(value: str, limit: int = MAX_HEADER_CHARS) -> str:
    """Return ``value`` cleaned and folded onto one line."""
    return _WHITESPACE.sub(" ", clean_text(value)).strip()[:limit]


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words, whatever their charset; never fail."""
    if "=?" not in value:
        return value
    try:
        chunks = decode_header(value)
    except Exception:  # the legacy decoder raises on odd input; keep the raw text then
        return value
    out: list[str] = []
    for chunk, charset in chunks:
        out.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return "".join(out)


def normalise_address(value: str | None) -> str | None:
    """Return a lower-case addr-spec, or None when ``value`` is not one."""
    if not value:
        return None
    address = clean_line(value).strip("<>").strip().lower()
    if len(address) > ADDRESS_MAX_CHARS or not _ADDRESS.match(address):
        return None
    return address


def envelope_sender(value: str | None) -> str | None:
    """Return a provider's envelope sender: "" for the null sender <> (reports), else the
    addr-spec, or None when there is none (or it is unreadable)."""
    if value is None:
        return None
    if value.strip().strip("<>").strip() == "":
        return ""
    return normalise_address(value)


def parse_addresses(values: Iterable[str]) -> list[tuple[str, str]]:
    """Return (display name, addr-spec) pairs from header-style address lists."""
    found: list[tuple[str, str]] = []
    texts = [clean_line(decode_words(value)) for value in values if value]
    try:
        pairs = getaddresses(texts)
    except Exception:  # defensive: the parser is stdlib, the input anything at all
        pairs = []
    for name, raw in pairs:
        address = normalise_address(raw)
        if address is not None:
            found.append((clean_line(name, 200), address))
        if len(found) >= MAX_ADDRESSES:
            break
    return found


@dataclass(frozen=True)
class FromAddress:
    """The ``From:`` of a message: its addr-spec, display name, and why it is unusable if so."""

    address: str | None  # lower-case addr-spec (best effort when ``problem`` is set)
    name: str | None
    problem: str | None = None  # set: the sender can never be verified


def read_from(values: Sequence[str]) -> FromAddress:
    """Return the sender of a message from its ``From:`` header values, as sent (not decoded)."""
    if not values:
        return FromAddress(None, None, "the message has no From: header")
    address, name, problem = _mailbox(clean_line(values[0]))
    if len(values) > 1:
        problem = f"the message has {len(values)} From: headers"
    return FromAddress(address, name, problem)


def _mailbox(text: str) -> tuple[str | None, str | None, str | None]:
    """Return (addr-spec, display name, problem) of one RFC 5322 mailbox."""
    # Written here because the standard library's parsers let a display name that looks like an
    # address win (`alice@acme.example <mallory@evil.example>` is alice to both of them) and
    # decode encoded words inside addresses; this reads the mailbox grammar, nothing more.
    if not text:
        return None, None, "the From: header is empty"
    tokens = _tokens(text)
    if tokens is None:
        return None, None, "the From: header is unreadable (an unclosed quote or comment)"
    plain = [value for kind, value in tokens if kind == "char"]
    if any(c in ",;:" for c in plain):
        return None, None, "the From: header does not hold exactly one address"
    opens = [i for i, (kind, value) in enumerate(tokens) if kind == "char" and value == "<"]
    if len(opens) > 1:
        return None, None, "the From: header does not hold exactly one address"
    if opens:
        start = opens[0]
        closes = [
            i
            for i, (kind, value) in enumerate(tokens)
            if kind == "char" and value == ">" and i > start
        ]
        if not closes:
            return None, None, "the From: address has no closing '>'"
        end = closes[0]
        inside = tokens[start + 1 : end]
        after = tokens[end + 1 :]
        if any(kind != "char" for kind, _ in inside) or any(
            kind == "char" and not value.isspace() for kind, value in after
        ):
            return None, None, "the From: header does not hold exactly one address"
        raw = "".join(value for _, value in inside).strip()
        name = _display("".join(value for _, value in tokens[:start]))
    else:
        if any(kind == "quoted" for kind, _ in tokens) or ">" in plain:
            return None, None, "the From: address is not a plain addr-spec"
        raw = "".join(plain).strip()
        comments = [value for kind, value in tokens if kind == "comment"]
        name = _display(comments[0]) if comments else None
    if "=?" in raw:
        # An encoded word is never part of an address (RFC 2047 section 5): refused, not decoded.
        return None, name, "the From: address contains an encoded word"
    address = normalise_address(raw) if raw and not any(c.isspace() for c in raw) else None
    if address is None:
        return None, name, "the From: address is not a valid address"
    return address, name, None


def _tokens(text: str) -> list[tuple[str, str]] | None:
    """Split a header into characters, quoted strings and comments (None when unclosed)."""
    tokens: list[tuple[str, str]] = []
    i, length = 0, len(text)
    while i < length:
        c = text[i]
        if c == '"':
            value, i = _quoted(text, i + 1)
            if i < 0:
                return None
            tokens.append(("quoted", value))
        elif c == "(":
            value, i = _comment(text, i + 1)
            if i < 0:
                return None
            tokens.append(("comment", value))
        else:
            tokens.append(("char", c))
            i += 1
    return tokens


def _quoted(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    return "", -1


def _comment(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    depth = 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return "".join(out), i + 1
        out.append(c)
        i += 1
    return "", -1


def _display(value: str) -> str | None:
    """Return a display name for showing (encoded words decoded: it proves nothing)."""
    return clean_line(decode_words(value), 200) or None


def message_key(message_id: str) -> str:
    """Return the storage key of a Message-ID (digest form when too long to store)."""
    if len(message_id) <= MAX_KEY_CHARS:
        return message_id
    digest = hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()
    return f"<sha256.{digest}@long-message-id.invalid>"


def message_ids(value: str | None) -> tuple[str, ...]:
    """Return the storage keys of the Message-IDs in a Message-ID/In-Reply-To/References value."""
    if not value:
        return ()
    text = clean_line(value, limit=200_000)
    found = _MESSAGE_ID.findall(text)
    if not found:
        found = [token.strip("<>") for token in text.split() if token.strip("<>")]
    keys: list[str] = []
    for token in found:
        key = message_key(f"<{token}>")
        if key not in keys:
            keys.append(key)
    return tuple(keys[-MAX_REFERENCES:])


# html.parser rescans from every "<" that opens something it never closes: quadratic (a 24 KB
# body of "<a " took 6 s on Python 3.11; later CPython releases fix it). Such a "<" -- one not
# closed by a ">" before the next "<", or a "<![" after the last "]]>" -- is text, so it is
# escaped first, in linear time, and the parser never meets an unclosed construct of that kind.
# The constructs that need more than a ">" (a comment's "-->", a quoted attribute value) are
# cut short in _TextExtractor instead.
_UNCLOSED_TAG = re.compile(r"<(?=[^<>]*(?:<|\Z))")


def _escape_unclosed(html: str) -> str:
    html = _UNCLOSED_TAG.sub("&lt;", html)
    last_section_end = html.rfind("]]>")
    head, tail = html[: last_section_end + 1], html[last_section_end + 1 :]
    return head + tail.replace("<![", "&lt;![")


def html_to_text(html: str) -> str:
    """Return the readable text of an HTML body (scripts and styles dropped)."""
    parser = _TextExtractor()
    try:
        parser.feed(_escape_unclosed(html[:MAX_HTML_CHARS]))
        parser.close()
    except Exception:  # html.parser is lenient; this is a last resort on hostile input
        return ""
    lines = (_WHITESPACE.sub(" ", line).strip() for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


class _TextExtractor(HTMLParser):
    _BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "table",
            "ul",
            "ol",
            "blockquote",
            "pre",
            "section",
            "article",
        ]
    )
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        # At close(), each construct html.parser cannot finish (a comment without "-->", a
        # start tag whose quoted value runs to the end, ...) is searched to the end of the
        # input again from its own "<": quadratic. Once one of a kind failed, no later one of
        # that kind in the same buffer can finish (the closer it needs is absent, or the quote
        # runs on), so it fails at once and is read as text up to its ">", as the parser does.
        self._failed: dict[str, int] = {}
        self._failed_in: str | None = None

    def _unfinished(self, kind: str, i: int) -> bool:
        if self._failed_in is not self.rawdata:
            self._failed, self._failed_in = {}, self.rawdata
        return i >= self._failed.get(kind, len(self.rawdata) + 1)

    def _note(self, kind: str, i: int, end: int) -> int:
        if end < 0:
            self._failed.setdefault(kind, i)
        return end

    def parse_starttag(self, i: int) -> int:
        """Parse a start tag, failing at once after one that ran to the end."""
        if self._unfinished("tag", i):
            return -1
        return self._note("tag", i, super().parse_starttag(i))

    def parse_comment(self, i: int, report: bool = True) -> int:
        """Parse a comment, failing at once after one that found no "-->"."""
        if self._unfinished("comment", i):
            return -1
        return self._note("comment", i, super().parse_comment(i, report))

    def parse_endtag(self, i: int) -> int:
        """Parse an end tag, failing at once after one that found no ">"."""
        if self._unfinished("end", i):
            return -1
        return self._note("end", i, super().parse_endtag(i))

    def parse_pi(self, i: int) -> int:
        """Parse a processing instruction, failing at once after one that found no ">"."""
        if self._unfinished("pi", i):
            return -1
        return self._note("pi", i, super().parse_pi(i))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


# --- headers ---------------------------------------------------------------------------------


# Headers read to verify the sender: RFC 2047 allows no encoded word in them, and decoding one
# would let the sender's text (a MAIL FROM local part, an unknown DKIM tag) write new tags.
UNDECODED_HEADERS = frozenset(
    {
        "authentication-results",
        "arc-authentication-results",
        "dkim-signature",
        "received-spf",
        "return-path",
    }
)


def header_map(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """Return header values by lower-case name, cleaned, capped, decoded (not UNDECODED_HEADERS)."""
    collected: dict[str, list[str]] = {}
    for count, (name, value) in enumerate(pairs):
        if count >= MAX_HEADERS:
            break
        key = clean_line(str(name), 200).lower()
        if not key:
            continue
        text = str(value) if key in UNDECODED_HEADERS else decode_words(str(value))
        collected.setdefault(key, []).append(clean_line(text))
    return {key: tuple(values) for key, values in collected.items()}


def first(headers: HeaderMap, name: str) -> str | None:
    """Return the first value of header ``name``, if any."""
    values = headers.get(name.lower())
    return values[0] if values else None


def fingerprint(*values: str | None) -> bytes:
    """Return what a missing Message-ID is derived from: the message's own content."""
    return "\x1f".join(value or "" for value in values).encode("utf-8", "replace")


def verdict(value: str | None) -> str:
    """Normalise a provider's one-word SPF or DKIM verdict (Pass, SoftFail, ...)."""
    return verdict_word(value)


_KEPT_HEADERS = (
    "message-id",
    "in-reply-to",
    "references",
    "date",
    "reply-to",
    "return-path",
    "auto-submitted",
    "precedence",
    "list-id",
    "x-auto-response-suppress",
    "authentication-results",
    "received-spf",
)


def kept_headers(headers: HeaderMap) -> dict[str, str]:
    """Return the headers kept with the stored message."""
    return {name: value for name in _KEPT_HEADERS if (value := first(headers, name)) is not None}


def parse_date(value: str | None) -> datetime | None:
    """Return the Date header as an aware UTC datetime, or None."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def mailbox_hash(addresses: Iterable[str]) -> str | None:
    """Return the +tag of the first recipient address that has one."""
    for address in addresses:
        local = address.split("@")[0]
        if "+" in local:
            tag = local.split("+", 1)[1]
            if tag:
                return tag
    return None


# --- assembly --------------------------------------------------------------------------------


@dataclass
class Parts:
    """What a provider delivered, before normalisation (adapters fill it in)."""

    provider: str
    headers: HeaderMap
    from_values: Sequence[str] = ()  # every From: value as sent (encoded words not decoded)
    from_name: str | None = None  # a display name the provider parsed out (Postmark)
    to_values: Sequence[str] = ()
    cc_values: Sequence[str] = ()
    subject: str | None = None
    text: str = ""
    html: str = ""
    attachments: Sequence[Attachment] = ()
    auth: AuthResults | None = None
    envelope_from: str | None = None  # "" means the null sender <> (bounces)
    mailbox_hash: str | None = None
    provider_message_id: str | None = None  # the provider's own id, when there is no header
    content_type: str | None = None  # None: from the headers' Content-Type
    report_part: bool = False  # a delivery-status (or other report) part was found
    capped: Sequence[str] = ()  # notes of what the limits cut
    embedded_message_ids: Sequence[str] = ()  # from a bounce's returned message
    # Authentication-Results count only where our own MTA removed the sender's copies (raw MIME).
    read_results: bool = False
    size: int = 0
    fingerprint: bytes = b""  # what a missing Message-ID is derived from


def assemble(parts: Parts, own_addresses: frozenset[str]) -> InboundEmail:
    """Turn a provider's parts into the normalised message."""
    headers = parts.headers
    sender = read_from(parts.from_values)
    from_address = sender.address
    from_name = sender.name or (clean_line(parts.from_name, 200) if parts.from_name else None)
    to = tuple(a for _, a in parse_addresses(list(parts.to_values) or headers.get("to", ())))
    cc = tuple(a for _, a in parse_addresses(list(parts.cc_values) or headers.get("cc", ())))
    subject = clean_line(
        decode_words(parts.subject)
        if parts.subject is not None
        else first(headers, "subject") or ""
    )
    text = clean_text(parts.text, MAX_TEXT_CHARS)
    html = clean_text(parts.html, MAX_HTML_CHARS)
    if not text.strip() and html.strip():
        text = html_to_text(html)[:MAX_TEXT_CHARS]

    ids = message_ids(first(headers, "message-id"))
    generated = not ids
    if ids:
        key = ids[0]
    elif parts.provider_message_id and clean_line(parts.provider_message_id, 200):
        token = re.sub(r"[^A-Za-z0-9._-]", "", clean_line(parts.provider_message_id, 200))
        key = f"<{token or 'x'}@{parts.provider}.message-id.invalid>"
    else:
        digest = hashlib.sha256(parts.fingerprint).hexdigest()
        key = f"<sha256.{digest}@missing-message-id.invalid>"
    in_reply_to = message_ids(" ".join(headers.get("in-reply-to", ())))
    references = message_ids(" ".join(headers.get("references", ())))

    envelope_from = parts.envelope_from
    if envelope_from is None:
        return_path = first(headers, "return-path")
        if return_path is not None:
            envelope_from = "" if return_path.strip() in ("<>", "") else return_path.strip("<> ")
    automatic, suppress = detect_automatic(
        headers,
        from_address=from_address,
        subject=subject,
        content_type=parts.content_type,
        envelope_from=envelope_from,
        own_addresses=own_addresses,
        report_part=parts.report_part,
    )
    by_subject = False
    if automatic is not None:
        structural, asked = detect_automatic(
            headers,
            from_address=from_address,
            subject="",
            content_type=parts.content_type,
            envelope_from=envelope_from,
            own_addresses=own_addresses,
            report_part=parts.report_part,
        )
        if structural is None:
            # Only the subject says so: whether the sender asked for no replies is the
            # headers' word (the service may yet treat it as a person's mail).
            by_subject, suppress = True, asked
    return InboundEmail(
        provider=parts.provider,
        message_id=key,
        message_id_generated=generated,
        in_reply_to=in_reply_to,
        references=references,
        embedded_message_ids=tuple(dict.fromkeys(parts.embedded_message_ids))[:MAX_REFERENCES],
        from_address=from_address,
        from_name=from_name or None,
        from_problem=sender.problem,
        to=to,
        cc=cc,
        subject=subject,
        text=text,
        html=html,
        attachments=tuple(parts.attachments)[:MAX_ATTACHMENTS],
        date=parse_date(first(headers, "date")),
        auth=AuthResults(
            verdicts=tuple(
                with_signature_domain(
                    parts.auth.verdicts if parts.auth else (),
                    # Headers the limits (or header_map) cut may have held another signature.
                    ()
                    if parts.capped or sum(map(len, headers.values())) >= MAX_HEADERS
                    else headers.get("dkim-signature", ()),
                )
            ),
            results_headers=headers.get("authentication-results", ())[:MAX_RESULTS_HEADERS]
            if parts.read_results
            else (),
        ),
        automatic=automatic,
        automatic_by_subject=by_subject,
        suppress_reply=suppress,
        envelope_from=normalise_address(envelope_from) if envelope_from else envelope_from,
        mailbox_hash=parts.mailbox_hash or mailbox_hash((*to, *cc)),
        headers=kept_headers(headers),
        size=parts.size,
        capped=tuple(parts.capped),
    )


# --- MIME ------------------------------------------------------------------------------------


def parse_mime(
    raw: bytes,
    *,
    provider: str,
    own_addresses: frozenset[str],
    auth: AuthResults | None = None,
    envelope_from: str | None = None,
    mailbox_hash: str | None = None,
    read_results: bool = False,
) -> InboundEmail:
    """Parse a raw RFC 5322 message; raise MalformedEmail when it is not one."""
    if not raw.strip():
        raise MalformedEmail("the message is empty")
    bounded = limits.bound_message(raw)
    try:
        # The tree with compat32: no structured header parsing per part (linear, and cheap).
        tree = BytesParser(policy=policy.compat32).parsebytes(bounded.raw)
        # The top-level headers, capped, are what policy default reads (From, Subject, ...).
        message = BytesHeaderParser(policy=policy.default).parsebytes(bounded.head)
    except RecursionError:
        raise MalformedEmail("the message's MIME structure is nested too deeply") from None
    except Exception as exc:  # the parser is meant not to raise; anything here is malformed
        raise MalformedEmail(f"the message could not be parsed ({type(exc).__name__})") from None
    headers = header_map(message.raw_items())
    if not headers:
        raise MalformedEmail("the message has no header fields (not an RFC 5322 message)")
    body = _Body()
    try:
        body.collect(tree)
    except RecursionError:
        raise MalformedEmail("the message's MIME structure is nested too deeply") from None
    structured_subject = _structured(message, headers, "subject")
    parts = Parts(
        provider=provider,
        headers=headers,
        from_values=raw_values(message.raw_items(), "from"),
        # To and Cc as header_map decoded them: policy default's address parser costs about
        # 5 microseconds a character, for lists the router only reads addr-specs from.
        subject=structured_subject,
        text="\n\n".join(body.text),
        html="\n".join(body.html),
        attachments=body.attachments,
        auth=auth,
        envelope_from=envelope_from,
        mailbox_hash=mailbox_hash,
        content_type=_safe(message.get_content_type, "text/plain"),
        report_part=body.report_part,
        capped=bounded.notes,
        embedded_message_ids=body.embedded_ids,
        read_results=read_results,
        size=len(raw),
        fingerprint=raw,
    )
    return assemble(parts, own_addresses)


def raw_values(pairs: Iterable[tuple[str, Any]], name: str) -> list[str]:
    """Return the values of header ``name`` as sent (unfolded, encoded words left alone)."""
    return [
        re.sub(r"\r?\n(?=[ \t])", "", str(value))
        for key, value in pairs
        if str(key).strip().lower() == name
    ]


def _has_raw_8bit(message: Message, name: str) -> bool:
    """Return True when header ``name`` holds undeclared 8-bit bytes (kept as surrogates)."""
    return any(
        str(key).lower() == name and _SURROGATE.search(str(value))
        for key, value in message.raw_items()
    )


def _structured(message: Message, headers: HeaderMap, name: str) -> str | None:
    """Return a header decoded by policy default, or by us where policy default cannot."""
    # Policy default turns undeclared 8-bit bytes into U+FFFD; our decoding sniffs their charset.
    if _has_raw_8bit(message, name):
        return first(headers, name)
    try:
        value = message.get(name)
        return None if value is None else str(value)
    except Exception:  # policy default's header parser can fail on hostile input
        return first(headers, name)


def _safe(function: Any, default: Any) -> Any:
    try:
        return function()
    except Exception:
        return default


class _Body:
    """Walk a message's parts (iteratively, depth-limited) into text, HTML and attachments."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.html: list[str] = []
        self.attachments: list[Attachment] = []
        self.embedded_ids: list[str] = []
        self.report_part = False

    def collect(self, root: Message) -> None:
        stack: list[tuple[Message, int]] = [(root, 0)]
        while stack:
            part, depth = stack.pop()
            content_type = _safe(part.get_content_type, "application/octet-stream")
            if content_type in REPORT_TYPES:
                self.report_part = True
            if content_type in ("message/rfc822", "message/global") and part is not root:
                self._attached_message(part)
                continue
            if part.is_multipart():
                payload = part.get_payload()
                if depth < MAX_MIME_DEPTH and isinstance(payload, list):
                    stack.extend(
                        (child, depth + 1)
                        for child in reversed(payload)
                        if isinstance(child, Message)
                    )
                continue
            self._leaf(part, content_type)

    def _leaf(self, part: Message, content_type: str) -> None:
        disposition = _safe(part.get_content_disposition, None)
        filename = _filename(part)
        data = _payload_bytes(part)
        charset = _safe(part.get_content_charset, None)
        if content_type == "text/rfc822-headers":
            self._embedded_ids(decode_bytes(data, charset))
        inline = disposition != "attachment" and not filename
        if inline and content_type == "text/plain":
            self.text.append(decode_bytes(data, charset))
            return
        if inline and content_type == "text/html":
            self.html.append(decode_bytes(data, charset))
            return
        if len(self.attachments) >= MAX_ATTACHMENTS:
            return
        name = clean_line(filename or "", 255) or _default_name(content_type)
        head = ""
        if content_type.startswith("text/") or _TEXTUAL_NAME.search(name):
            head = clean_text(decode_bytes(data[:ATTACHMENT_HEAD_BYTES], charset))
        self.attachments.append(Attachment(name, content_type, len(data), head))

    def _attached_message(self, part: Message) -> None:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            for name, value in inner.raw_items():
                if str(name).lower() == "message-id":
                    self.embedded_ids.extend(message_ids(str(value)))
        if len(self.attachments) < MAX_ATTACHMENTS:
            filename = _filename(part)
            size = len(_safe(part.as_bytes, b""))
            name = clean_line(filename or "", 255) or "attached-message.eml"
            self.attachments.append(Attachment(name, "message/rfc822", size))

    def _embedded_ids(self, text: str) -> None:
        for match in re.finditer(r"^message-id:\s*(.+)$", text, re.I | re.M):
            self.embedded_ids.extend(message_ids(match.group(1)))


def _filename(part: Message) -> str | None:
    """Return a part's file name, RFC 2047 encoded words decoded (compat32 leaves them)."""
    filename = _safe(part.get_filename, None)
    return decode_words(str(filename)) if filename is not None else None


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: keep what the part literally holds
        raw = part.get_payload()
        data = raw.encode("utf-8", "replace") if isinstance(raw, str) else b""
    return data if isinstance(data, bytes) else b""


def _default_name(content_type: str) -> str:
    return "attachment." + (content_type.split("/")[-1] or "bin")[:20]
