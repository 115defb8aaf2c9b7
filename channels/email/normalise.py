"""One normalised form for every inbound email, and the MIME parsing behind it.

Pure code: the standard library's ``email`` package (policy ``default``) parses the message;
everything here tolerates what real mail contains -- undeclared or wrong charsets, encoded
words, nested multiparts, missing headers, control characters -- and hands back clean text that
every database (PostgreSQL refuses NUL characters and lone surrogates) and JSON can store.
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
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

MAX_TEXT_CHARS = 100_000
MAX_HTML_CHARS = 200_000
MAX_HEADER_CHARS = 8_000
MAX_HEADERS = 300
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
    """The SPF, DKIM and DMARC verdicts the provider (or our MTA) reported."""

    spf: str = "none"
    dkim: str = "none"
    dmarc: str = "none"

    @property
    def failed(self) -> bool:
        """Return True when any check failed: the sender is then not believed."""
        return self.spf in ("fail", "softfail") or self.dkim == "fail" or self.dmarc == "fail"

    def to_dict(self) -> dict[str, str]:
        """Return the verdicts for the record."""
        return {"spf": self.spf, "dkim": self.dkim, "dmarc": self.dmarc}


@dataclass(frozen=True)
class InboundEmail:
    """One inbound message, whatever the provider, normalised."""

    provider: str
    message_id: str  # storage key: <...>, or a digest form when over 255 characters
    message_id_generated: bool  # the message had none; the key is derived from its content
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_address: str | None  # lower-case addr-spec, or None when missing or unreadable
    from_name: str | None
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

    def summary(self) -> dict[str, Any]:
        """Return what the timeline shows about the message."""
        return {
            "provider": self.provider,
            "message_id": self.message_id,
            "from": self.from_address,
            "from_name": self.from_name,
            "to": list(self.to),
            "cc": list(self.cc),
            "subject": self.subject,
            "excerpt": self.text[:2000],
            "attachments": [attachment.to_dict() for attachment in self.attachments],
            "auth": self.auth.to_dict(),
            "automatic": self.automatic,
            "size": self.size,
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


def html_to_text(html: str) -> str:
    """Return the readable text of an HTML body (scripts and styles dropped)."""
    parser = _TextExtractor()
    try:
        parser.feed(html[:MAX_HTML_CHARS])
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


def header_map(pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """Return header values by lower-case name, encoded words decoded, cleaned, capped."""
    collected: dict[str, list[str]] = {}
    for count, (name, value) in enumerate(pairs):
        if count >= MAX_HEADERS:
            break
        key = clean_line(str(name), 200).lower()
        if not key:
            continue
        collected.setdefault(key, []).append(clean_line(decode_words(str(value))))
    return {key: tuple(values) for key, values in collected.items()}


def first(headers: HeaderMap, name: str) -> str | None:
    """Return the first value of header ``name``, if any."""
    values = headers.get(name.lower())
    return values[0] if values else None


def parse_auth_results(headers: HeaderMap) -> AuthResults:
    """Read SPF/DKIM/DMARC from the topmost Authentication-Results (else Received-SPF)."""
    spf = dkim = dmarc = "none"
    results = first(headers, "authentication-results")
    if results:
        spf = _method_verdict(results, "spf") or spf
        dkim = _method_verdict(results, "dkim") or dkim
        dmarc = _method_verdict(results, "dmarc") or dmarc
    received_spf = first(headers, "received-spf")
    if spf == "none" and received_spf:
        spf = _verdict_word(received_spf.split(None, 1)[0] if received_spf.split() else "")
    return AuthResults(spf=spf, dkim=dkim, dmarc=dmarc)


def merge_auth(provider: AuthResults | None, headers: AuthResults) -> AuthResults:
    """Return the provider's verdicts, each filled in from the headers where it has none."""
    if provider is None:
        return headers
    return AuthResults(
        spf=provider.spf if provider.spf != "none" else headers.spf,
        dkim=provider.dkim if provider.dkim != "none" else headers.dkim,
        dmarc=provider.dmarc if provider.dmarc != "none" else headers.dmarc,
    )


def fingerprint(*values: str | None) -> bytes:
    """Return what a missing Message-ID is derived from: the message's own content."""
    return "\x1f".join(value or "" for value in values).encode("utf-8", "replace")


def _method_verdict(results: str, method: str) -> str | None:
    verdicts = [
        _verdict_word(match)
        for match in re.findall(rf"(?:^|[\s;]){method}\s*=\s*([A-Za-z]+)", results, re.I)
    ]
    if not verdicts:
        return None
    if "pass" in verdicts:
        return "pass"
    return verdicts[0]


def _verdict_word(word: str) -> str:
    word = word.strip().lower()
    aliases = {"hardfail": "fail", "soft-fail": "softfail", "": "none"}
    word = aliases.get(word, word)
    known = {"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy"}
    return word if word in known else "unknown"


def verdict(value: str | None) -> str:
    """Normalise a provider's one-word SPF or DKIM verdict (Pass, SoftFail, ...)."""
    if not value or not value.split():
        return "none"
    return _verdict_word(value.split()[0])


_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto[- ]?reply|auto[- ]?response|autoresponse|out of (the )?office"
    r"|ooo\b|auto:|abwesenheit|r[ée]ponse automatique|respuesta autom[áa]tica)",
    re.I,
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliverable|undelivered mail|delivery status notification|mail delivery failed"
    r"|returned mail|delivery failure)",
    re.I,
)
_AUTO_HEADERS = (
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "x-mail-autoreply",
    "x-fc-machinegenerated",
    "x-autogenerated",
    "x-auto-reply",
)


def detect_automatic(
    headers: HeaderMap,
    *,
    from_address: str | None,
    subject: str,
    content_type: str,
    envelope_from: str | None,
    own_addresses: frozenset[str],
) -> tuple[str | None, bool]:
    """Return (why the message is automatic or None, whether the sender wants no auto-reply)."""
    suppress = first(headers, "x-auto-response-suppress") or ""
    suppress_reply = any(
        token.strip().lower() in ("all", "autoreply", "oof")
        for token in re.split(r"[,;\s]+", suppress)
    )
    if (from_address and from_address in own_addresses) or "x-contact-router" in headers:
        return "own-message", True
    auto_submitted = (first(headers, "auto-submitted") or "").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return "auto-submitted", True
    local = (from_address or "").split("@")[0]
    if (
        content_type == "multipart/report"
        or local in ("mailer-daemon", "postmaster")
        or envelope_from == ""
    ):
        return "bounce", True
    precedence = (first(headers, "precedence") or "").strip().lower()
    if precedence in ("bulk", "junk"):
        return "bulk", True
    if precedence == "list" or any(
        name in headers for name in ("list-id", "list-unsubscribe", "list-post")
    ):
        return "mailing-list", True
    if precedence == "auto_reply" or any(name in headers for name in _AUTO_HEADERS):
        return "auto-reply", True
    if _AUTO_SUBJECT.match(subject):
        return "auto-reply", True
    if _BOUNCE_SUBJECT.match(subject):
        return "bounce", True
    return None, suppress_reply


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
    from_values: Sequence[str] = ()
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
    content_type: str = "text/plain"
    embedded_message_ids: Sequence[str] = ()  # from a bounce's returned message
    size: int = 0
    fingerprint: bytes = b""  # what a missing Message-ID is derived from


def assemble(parts: Parts, own_addresses: frozenset[str]) -> InboundEmail:
    """Turn a provider's parts into the normalised message."""
    headers = parts.headers
    from_values = list(parts.from_values) or list(headers.get("from", ()))
    senders = parse_addresses(from_values)
    from_name, from_address = senders[0] if senders else (None, None)
    if not senders and from_values:
        from_address = normalise_address(from_values[0])
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
    if parts.embedded_message_ids:
        references = tuple(dict.fromkeys((*references, *parts.embedded_message_ids)))

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
    )
    return InboundEmail(
        provider=parts.provider,
        message_id=key,
        message_id_generated=generated,
        in_reply_to=in_reply_to,
        references=references,
        from_address=from_address,
        from_name=from_name or None,
        to=to,
        cc=cc,
        subject=subject,
        text=text,
        html=html,
        attachments=tuple(parts.attachments)[:MAX_ATTACHMENTS],
        date=parse_date(first(headers, "date")),
        auth=merge_auth(parts.auth, parse_auth_results(headers)),
        automatic=automatic,
        suppress_reply=suppress,
        envelope_from=normalise_address(envelope_from) if envelope_from else envelope_from,
        mailbox_hash=parts.mailbox_hash or mailbox_hash((*to, *cc)),
        headers=kept_headers(headers),
        size=parts.size,
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
) -> InboundEmail:
    """Parse a raw RFC 5322 message; raise MalformedEmail when it is not one."""
    if not raw.strip():
        raise MalformedEmail("the message is empty")
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except RecursionError:
        raise MalformedEmail("the message's MIME structure is nested too deeply") from None
    except Exception as exc:  # the parser is meant not to raise; anything here is malformed
        raise MalformedEmail(f"the message could not be parsed ({type(exc).__name__})") from None
    headers = header_map(message.raw_items())
    if not headers:
        raise MalformedEmail("the message has no header fields (not an RFC 5322 message)")
    body = _Body()
    try:
        body.collect(message)
    except RecursionError:
        raise MalformedEmail("the message's MIME structure is nested too deeply") from None
    structured_subject = _structured(message, headers, "subject")
    parts = Parts(
        provider=provider,
        headers=headers,
        from_values=_values(message, headers, "from"),
        to_values=_values(message, headers, "to"),
        cc_values=_values(message, headers, "cc"),
        subject=structured_subject,
        text="\n\n".join(body.text),
        html="\n".join(body.html),
        attachments=body.attachments,
        auth=auth,
        envelope_from=envelope_from,
        mailbox_hash=mailbox_hash,
        content_type=_safe(message.get_content_type, "text/plain"),
        embedded_message_ids=body.embedded_ids,
        size=len(raw),
        fingerprint=raw,
    )
    return assemble(parts, own_addresses)


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


def _values(message: Message, headers: HeaderMap, name: str) -> list[str]:
    """Return an address header's values, decoded as ``_structured`` does."""
    if _has_raw_8bit(message, name):
        return list(headers.get(name, ()))
    try:
        values = message.get_all(name) or []
        return [str(value) for value in values]
    except Exception:  # policy default's header parser can fail on hostile input
        return list(headers.get(name, ()))


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

    def collect(self, root: Message) -> None:
        stack: list[tuple[Message, int]] = [(root, 0)]
        while stack:
            part, depth = stack.pop()
            content_type = _safe(part.get_content_type, "application/octet-stream")
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
        filename = _safe(part.get_filename, None)
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
            filename = _safe(part.get_filename, None)
            size = len(_safe(part.as_bytes, b""))
            name = clean_line(filename or "", 255) or "attached-message.eml"
            self.attachments.append(Attachment(name, "message/rfc822", size))

    def _embedded_ids(self, text: str) -> None:
        for match in re.finditer(r"^message-id:\s*(.+)$", text, re.I | re.M):
            self.embedded_ids.extend(message_ids(match.group(1)))


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: keep what the part literally holds
        raw = part.get_payload()
        data = raw.encode("utf-8", "replace") if isinstance(raw, str) else b""
    return data if isinstance(data, bytes) else b""


def _default_name(content_type: str) -> str:
    return "attachment." + (content_type.split("/")[-1] or "bin")[:20]
