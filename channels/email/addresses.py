"""Read the addresses of an email: From (strictly, as RFC 5322 writes a mailbox), To, Cc."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

from channels.email.headers import raw_values
from channels.email.limits import ADDRESS_MAX_CHARS, MAX_ADDRESSES
from channels.email.text import clean_line, decode_words

_ADDRESS = re.compile(r"^[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+$")


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
            quoted = quoted_string(text, i)
            if quoted is None:
                return None
            value, i = quoted
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


def quoted_string(text: str, i: int) -> tuple[str, int] | None:
    """Return the content of the quoted string at ``i`` (escapes undone) and the index after it."""
    out: list[str] = []
    i += 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    return None


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


def from_values(pairs: Iterable[tuple[str, Any]], provider_copy: str | None) -> list[str]:
    """Return every From: value the sender wrote, else the provider's copy of one (if any)."""
    return raw_values(pairs, "from") or ([provider_copy] if provider_copy else [])


def mailbox_hash(addresses: Iterable[str]) -> str | None:
    """Return the +tag of the first recipient address that has one."""
    for address in addresses:
        local = address.split("@")[0]
        if "+" in local:
            tag = local.split("+", 1)[1]
            if tag:
                return tag
    return None
