"""Twilio webhook authentication: `X-Twilio-Signature` over the public URL Twilio called.

Twilio signs the full URL it requested (scheme, host, optional port, path and query) followed by
the sorted POST parameters. By default the key is the account's Auth Token and the hash
HMAC-SHA1; when a Webhooks SharedKey signs the request, Twilio adds
`X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=HMAC_SHA256` and the key is that
SharedKey's secret. Behind a TLS-terminating load balancer the app sees another URL than the
one signed, so the public URL comes from PUBLIC_BASE_URL or from trusted X-Forwarded-* headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from flask import Request

from config.settings import Settings
from router.core.validation import trusted_forwarded

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
HMAC_SHA1 = "HMAC_SHA1"
HMAC_SHA256 = "HMAC_SHA256"
_HASHES: Mapping[str, Callable[..., Any]] = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# Characters kept as they are when the path is re-encoded (RFC 3986 pchar and '/').
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


@dataclass(frozen=True)
class Verdict:
    """Whether a request is Twilio's, and if not why (safe to log: no secret, no signature)."""

    ok: bool
    reason: str
    algorithm: str


def public_url(request: Request, settings: Settings) -> str:
    """Return the URL Twilio requested, as it signed it."""
    path = quote(request.script_root + request.path, safe=_PATH_SAFE)
    query = request.query_string.decode("latin-1")
    tail = path + (f"?{query}" if query else "")
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/") + tail
    scheme, host, prefix = request.scheme, request.host, ""
    trusted = settings.trusted_proxy_count
    if trusted > 0:
        scheme = _forwarded(request, "X-Forwarded-Proto", trusted) or scheme
        host = _forwarded(request, "X-Forwarded-Host", trusted) or host
        port = _forwarded(request, "X-Forwarded-Port", trusted)
        if port and not _has_port(host) and port != _DEFAULT_PORTS.get(scheme):
            host = f"{host}:{port}"
        prefix = (_forwarded(request, "X-Forwarded-Prefix", trusted) or "").rstrip("/")
    return f"{scheme}://{host}{prefix}{tail}"


def check(request: Request, settings: Settings) -> Verdict:
    """Check a voice webhook's signature against the public URL and its POST parameters."""
    signature = request.headers.get(SIGNATURE_HEADER, "")
    announced = request.headers.get(SIGNATURE_SETTINGS_HEADER, "")
    if announced:
        options = _settings_header(announced)
        algorithm = options.get("algorithm", HMAC_SHA1).upper()
        secret = settings.twilio_shared_key_secrets().get(options.get("key", ""))
        if secret is None:
            return Verdict(False, "signed with a SharedKey this service does not know", algorithm)
    else:
        algorithm, secret = HMAC_SHA1, settings.twilio_auth_token
    if not signature:
        return Verdict(False, "no X-Twilio-Signature header", algorithm)
    if algorithm not in _HASHES:
        return Verdict(False, "unsupported signature algorithm", algorithm)
    url = public_url(request, settings)
    if not valid_signature(secret, url, request.form, signature, algorithm):
        return Verdict(False, "signature does not match the public URL and parameters", algorithm)
    return Verdict(True, "ok", algorithm)


def valid_signature(
    secret: str, url: str, params: Any, signature: str, algorithm: str = HMAC_SHA1
) -> bool:
    """Return True when ``signature`` signs ``url`` and ``params`` (with or without the port)."""
    # The URL as the request arrived is tried first and usually matches, so most requests cost
    # one HMAC (Twilio's RequestValidator always computes both variants).
    if hmac.compare_digest(sign(secret, url, params, algorithm), signature):
        return True
    return any(
        hmac.compare_digest(sign(secret, candidate, params, algorithm), signature)
        for candidate in _port_variants(url)
        if candidate != url
    )


def sign(secret: str, url: str, params: Any, algorithm: str = HMAC_SHA1) -> str:
    """Return the signature Twilio sends for ``url`` and ``params`` (the simulator signs so)."""
    payload = url
    for name in sorted(set(params)):
        values = params.getlist(name) if hasattr(params, "getlist") else [params[name]]
        for value in sorted(set(values)):
            payload += name + value
    digest = hmac.new(secret.encode(), payload.encode(), _HASHES[algorithm]).digest()
    return base64.b64encode(digest).decode()


def _forwarded(request: Request, header: str, trusted: int) -> str | None:
    """Return the value the outermost trusted proxy set (the n-th from the right), if any."""
    return trusted_forwarded(request.headers.getlist(header), trusted)


def _has_port(host: str) -> bool:
    if host.startswith("["):  # IPv6 literal: [::1] or [::1]:8443
        return "]:" in host
    return ":" in host


def _settings_header(value: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in value.split(","):
        name, separator, setting = part.partition("=")
        if separator:
            options[name.strip().lower()] = setting.strip()
    return options


def _port_variants(url: str) -> tuple[str, str]:
    """Return ``url`` without and with its scheme's port, as Twilio may sign either."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    bare = urlunsplit(parts._replace(netloc=host if parts.port else parts.netloc))
    port = parts.port or int(_DEFAULT_PORTS.get(parts.scheme, "443"))
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{port}"))
    return bare, with_port
