"""Whether the sender of an email is proven (SPEC 2.6).

Pure code. The sender is the addr-spec of the single ``From:`` address (``addresses.read_from``:
a display name never wins, an encoded word inside the address is refused). It is believed only
on an *aligned* pass: DMARC pass for the From: domain, or an SPF or DKIM pass for a domain
aligned with it, as the provider's verdict fields report it or, for raw MIME from our own MTA
only, as an ``Authentication-Results`` header of a trusted receiving host (its authserv-id
configured) states. Authentication-Results headers are parsed with ``authres``; those of any
other host are ignored (a sender can write whatever it likes into its own headers), and on a
provider's path none is read: nothing of ours removed the sender's copies there. Every header
read here is read as sent, never RFC 2047-decoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import authres

from channels.email.addresses import quoted_string

# How many Authentication-Results headers, topmost first, are looked at: a trusted host adds its
# own at the top, so those below it come from further away (or from the sender).
MAX_RESULTS_HEADERS = 20
# A trusted host adds one header per hop, a few hundred characters each; parsing is not linear
# in the length, so more (or longer) ones than this are not read at all.
MAX_TRUSTED_HEADERS = 5
MAX_TRUSTED_HEADER_CHARS = 4000
VERDICT_WORDS = frozenset(
    {"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy"}
)
# RFC 6376 section 3.2: a tag name is ALPHA *(ALPHA / DIGIT / "_"), case-sensitive; a value is
# printable ASCII other than ';' with folding whitespace between its runs.
_DKIM_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_DKIM_TAG_VALUE = re.compile(r"[\x21-\x3a\x3c-\x7e]+(?:[ \t\r\n]+[\x21-\x3a\x3c-\x7e]+)*")
_SPF_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_SPF_ATOM = re.compile(r'[^\s;()"\\]*')
_SENDGRID_DKIM = re.compile(r"@?([^\s{}:,@]+)\s*:\s*([A-Za-z-]+)")


@dataclass(frozen=True)
class Verdict:
    """One SPF, DKIM or DMARC result and the domain it is about."""

    method: str  # spf, dkim, dmarc
    result: str  # pass, fail, softfail, neutral, none, temperror, permerror, policy, unknown
    # SPF: the MAIL FROM domain; DKIM: the signing domain (d=); DMARC: the From: domain.
    domain: str | None
    source: str  # the provider, or "authentication-results <authserv-id>"

    def to_dict(self) -> dict[str, Any]:
        """Return the verdict for the record."""
        return {
            "method": self.method,
            "result": self.result,
            "domain": self.domain,
            "source": self.source,
        }


@dataclass(frozen=True)
class SenderCheck:
    """Whether the sender is proven, why, and the verdicts that were considered."""

    verified: bool
    why: str
    verdicts: tuple[Verdict, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the check for the record (the timeline and the stored message)."""
        return {
            "verified": self.verified,
            "why": self.why,
            "verdicts": [verdict.to_dict() for verdict in self.verdicts],
        }


# --- verdicts ----------------------------------------------------------------------------------


def verdict_word(value: str | None) -> str:
    """Normalise a one-word verdict (Pass, SoftFail, hardfail ...)."""
    words = (value or "").split()
    word = words[0].strip().lower() if words else ""
    word = {"hardfail": "fail", "soft-fail": "softfail", "": "none"}.get(word, word)
    return word if word in VERDICT_WORDS else "unknown"


def domain_of(value: str | None) -> str | None:
    """Return the lower-case domain of an address or domain (None when there is none)."""
    text = (value or "").strip().strip("<>").strip().lower().rstrip(".")
    domain = text.rpartition("@")[2]
    if not domain or any(c.isspace() or c in '<>()[],;:"\\' for c in domain) or "." not in domain:
        return None
    return domain


def aligned(domain: str, from_domain: str) -> bool:
    """Return True when ``domain`` is aligned with the From: domain (relaxed alignment)."""
    # Relaxed alignment without a public-suffix list: equal, or one a subdomain of the other.
    # That is never looser than DMARC's "same organisational domain" in the direction that
    # matters: a public suffix (co.uk) sends no mail and no admin writes from one, and a pass for
    # a sibling (mail.acme.example for bounce.acme.example) is refused, which errs on the safe side.
    a, b = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def sendgrid_dkim(value: str | None) -> list[Verdict]:
    """Read SendGrid's dkim field ('{@acme.example : pass, @other.example : fail}')."""
    found = [
        Verdict("dkim", verdict_word(result), domain_of(domain), "sendgrid")
        for domain, result in _SENDGRID_DKIM.findall(value or "")
    ]
    return found


def received_spf(value: str | None, source: str) -> Verdict | None:
    """Read a Received-SPF header (RFC 7208 section 9.1): the result and the MAIL FROM domain."""
    if not value or not value.split():
        return None
    result = verdict_word(value)
    pairs = _spf_pairs(value.split(None, 1)[1] if len(value.split(None, 1)) > 1 else "")
    # An unreadable list, or a key given twice, leaves the domain unknown: a pass proves nothing.
    if pairs is None:
        return Verdict("spf", result, None, source)
    identity = pairs.get("identity", "mailfrom").lower()
    domain = domain_of(pairs.get("envelope-from")) if identity == "mailfrom" else None
    return Verdict("spf", result, domain, source)


def _spf_pairs(text: str) -> dict[str, str] | None:
    """Return the key=value list after a Received-SPF result, or None when it is malformed."""
    # [comment] key [CFWS] "=" (dot-atom / quoted-string) [CFWS] *(";" [CFWS] key-value) [";"]
    pairs: dict[str, str] = {}
    i = _skip_cfws(text, 0)
    if i is None:
        return None
    while i < len(text):
        key = _SPF_KEY.match(text, i)
        if key is None:
            return None
        name = key.group(0).lower()
        after = _skip_cfws(text, key.end())
        if after is None or text[after : after + 1] != "=":
            return None
        i = _skip_cfws(text, after + 1)
        if i is None:
            return None
        if text[i : i + 1] == '"':
            quoted = quoted_string(text, i)
            if quoted is None:
                return None
            item, i = quoted
        else:
            # An empty value (receiver=;) is tolerated: it cannot hide anything.
            run = _SPF_ATOM.match(text, i)
            assert run is not None
            item, i = run.group(0), run.end()
        if name in pairs:
            return None
        pairs[name] = item
        end = _skip_cfws(text, i)
        if end is None:
            return None
        if end < len(text) and text[end] != ";":
            return None
        i = _skip_cfws(text, end + 1) if end < len(text) else end
        if i is None:
            return None
    return pairs


def _skip_cfws(text: str, i: int) -> int | None:
    """Return the index after whitespace and (nested) comments at ``i``; None if one is open."""
    depth = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and depth:
            i += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            if not depth:
                return None
            depth -= 1
        elif not depth and not char.isspace():
            return i
        i += 1
    return None if depth else i


def dkim_signature_domain(value: str) -> str | None:
    """Return the signing domain (d=) of a DKIM-Signature, or None unless it is a clean tag list.

    RFC 6376 section 3.2: tag names are case-sensitive (``D=`` is another, unknown tag that a
    verifier ignores), and a signature with a tag twice is invalid, so neither says which domain
    signed.
    """
    tags: dict[str, str] = {}
    specs = value.split(";")
    if specs and not specs[-1].strip():
        specs.pop()  # a trailing ';' is allowed
    for spec in specs:
        name, equals, item = spec.partition("=")
        name, item = name.strip(" \t\r\n"), item.strip(" \t\r\n")
        if not equals or not _DKIM_TAG_NAME.fullmatch(name) or name in tags:
            return None
        if item and not _DKIM_TAG_VALUE.fullmatch(item):
            return None
        tags[name] = item
    return domain_of(tags.get("d"))


def signature_domains(values: Iterable[str]) -> set[str]:
    """Return the signing domains (d=) of DKIM-Signature header values."""
    domains: set[str] = set()
    for value in values:
        domains.add(dkim_signature_domain(value) or "")
    return domains


def with_signature_domain(verdicts: Sequence[Verdict], signatures: Iterable[str]) -> list[Verdict]:
    """Give a provider's domain-less DKIM verdict the domain of the message's signatures.

    Only when every DKIM-Signature names the same domain: a provider saying "Pass" for a message
    signed by two domains does not say which one passed.
    """
    domains = signature_domains(signatures)
    only = next(iter(domains)) if len(domains) == 1 else ""
    return [
        Verdict(v.method, v.result, only or None, v.source)
        if v.method == "dkim" and v.domain is None
        else v
        for v in verdicts
    ]


def trusted_results(values: Sequence[str], trusted_ids: frozenset[str]) -> list[Verdict]:
    """Return the verdicts of the Authentication-Results headers a trusted host added."""
    found: list[Verdict] = []
    trusted = [
        value
        for value in values[:MAX_RESULTS_HEADERS]
        if (authserv_id := value.split(";", 1)[0].split()) and authserv_id[0].lower() in trusted_ids
    ]
    for value in trusted[:MAX_TRUSTED_HEADERS]:
        if len(value) > MAX_TRUSTED_HEADER_CHARS:
            continue
        try:
            # A trailing ';' is common in the wild and a syntax error to authres.
            header = authres.AuthenticationResultsHeader.parse_value(value.rstrip("; \t"))
        except Exception:  # authres raises its own SyntaxError on malformed text
            continue
        source = f"authentication-results {str(header.authserv_id).lower()}"
        for result in header.results:
            method = str(result.method).lower()
            if method not in ("spf", "dkim", "dmarc"):
                continue
            found.append(
                Verdict(method, verdict_word(str(result.result)), _result_domain(result), source)
            )
    return found


def _result_domain(result: Any) -> str | None:
    properties = {
        (str(p.type).lower(), str(p.name).lower()): str(p.value) for p in result.properties
    }
    method = str(result.method).lower()
    if method == "spf":
        return domain_of(properties.get(("smtp", "mailfrom")))
    if method == "dkim":
        return domain_of(properties.get(("header", "d")) or properties.get(("header", "i")))
    return domain_of(properties.get(("header", "from")))


def check_sender(
    address: str | None,
    problem: str | None,
    provider: Sequence[Verdict],
    results_headers: Sequence[str],
    trusted_ids: frozenset[str],
) -> SenderCheck:
    """Return whether the From: ``address`` is proven by an aligned pass (SPEC 2.6)."""
    verdicts = (*provider, *trusted_results(results_headers, trusted_ids))
    if problem is not None:
        return SenderCheck(False, problem, verdicts)
    if address is None:
        return SenderCheck(False, "the message has no usable From: address", verdicts)
    from_domain = address.rpartition("@")[2]
    for verdict in verdicts:
        if verdict.method == "dmarc" and verdict.result == "fail" and verdict.domain == from_domain:
            return SenderCheck(False, f"dmarc=fail for {from_domain} ({verdict.source})", verdicts)
    for verdict in verdicts:
        if verdict.result != "pass" or verdict.domain is None:
            continue
        if verdict.method == "dmarc" and verdict.domain == from_domain:
            return SenderCheck(True, f"dmarc=pass for {from_domain} ({verdict.source})", verdicts)
        if verdict.method in ("spf", "dkim") and aligned(verdict.domain, from_domain):
            why = f"{verdict.method}=pass for {verdict.domain}, aligned with {from_domain}"
            return SenderCheck(True, f"{why} ({verdict.source})", verdicts)
    why = f"no SPF, DKIM or DMARC pass aligned with {from_domain}"
    if not trusted_ids and not provider:
        why += " (no trusted receiving host is configured: EMAIL_TRUSTED_AUTHSERV_IDS)"
    return SenderCheck(False, why, verdicts)
