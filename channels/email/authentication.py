"""Whether the sender of an email is proven (SPEC 2.6).

Pure code. The sender is the addr-spec of the single ``From:`` address (``normalise.read_from``:
a display name never wins, an encoded word inside the address is refused). It is believed only
on an *aligned* pass: DMARC pass for the From: domain, or an SPF or DKIM pass for a domain
aligned with it, as the provider reported it or as an ``Authentication-Results`` header of a
trusted receiving host (its authserv-id configured) states. Authentication-Results headers are
parsed with ``authres``; those of any other host are ignored (a sender can write whatever it
likes into its own headers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import authres

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
_DKIM_DOMAIN = re.compile(r"(?:^|;)\s*d\s*=\s*([^;\s]+)", re.I)
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
    pairs = dict(
        (key.strip().lower(), item.strip())
        for key, _, item in (
            part.partition("=") for part in re.split(r"[;\s]+", value.split(")", 1)[-1]) if part
        )
    )
    identity = pairs.get("identity", "mailfrom").lower()
    domain = domain_of(pairs.get("envelope-from")) if identity == "mailfrom" else None
    return Verdict("spf", result, domain, source)


def signature_domains(values: Iterable[str]) -> set[str]:
    """Return the signing domains (d=) of DKIM-Signature header values."""
    domains: set[str] = set()
    for value in values:
        match = _DKIM_DOMAIN.search(value)
        domain = domain_of(match.group(1)) if match else None
        domains.add(domain or "")
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
