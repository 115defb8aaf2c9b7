"""Raw MIME: any MTA posting an RFC 5322 message as the request body (bearer token)."""

from __future__ import annotations

from channels.email.mime import parse_mime
from channels.email.normalise import InboundEmail

PROVIDER = "mime"


def parse(body: bytes, own_addresses: frozenset[str]) -> InboundEmail:
    """Normalise a raw message posted by an MTA."""
    # SPF/DKIM verdicts come from the message's Authentication-Results header: the MTA in front
    # of the router must add its own (and remove any a sender supplied). Only this path reads
    # them; on a provider's path nothing of ours removes a sender's forged copies.
    return parse_mime(body, provider=PROVIDER, own_addresses=own_addresses, read_results=True)
