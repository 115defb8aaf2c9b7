"""Build the benchmark's requests: raw HTTP/1.1 requests, each one unique, written to files.

Every request is built (and signed) here, before the load starts, so neither wrk's Lua nor the
Python client does any work per request beyond sending bytes: a correctly signed Twilio webhook
with its own CallSid and calling number, a raw MIME message with its own Message-ID, a chat start
with its own Idempotency-Key. Files hold length-prefixed records ("<bytes>\\n<request>"), one
file per load-generator thread, so two threads never send the same request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlencode

from channels.chat.tokens import mint_portal_token
from channels.voice.signature import SIGNATURE_HEADER, sign

DEMO_PIN = "482913"  # acme (Premium, us) in `flask demo-data`
DEMO_ADMIN = "alice@acme.example"
DEMO_ACCOUNT = "acme"
US_NUMBER = "+18554819316"  # the us region's toll-free number
# Must match bench/server.py's EMAIL_TRUSTED_AUTHSERV_IDS: a real MTA's verdict verifies the sender.
TRUSTED_RECEIVING_HOST = "mx.router.bench.invalid"


def raw_request(
    method: str, target: str, host: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    """Return one HTTP/1.1 request as bytes."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def write_records(path: Path, records: Sequence[bytes], threads: int) -> list[Path]:
    """Split ``records`` round-robin into one file per thread; return the files."""
    files = []
    for index in range(threads):
        target = path.with_name(f"{path.name}.{index}")
        with target.open("wb") as handle:
            for record in records[index::threads]:
                handle.write(f"{len(record)}\n".encode() + record)
        files.append(target)
    return files


def read_records(path: Path) -> list[bytes]:
    """Read a file written by write_records."""
    data = path.read_bytes()
    records, offset = [], 0
    while offset < len(data):
        newline = data.index(b"\n", offset)
        size = int(data[offset:newline])
        records.append(data[newline + 1 : newline + 1 + size])
        offset = newline + 1 + size
    return records


class Workload:
    """Builds the requests of each benchmarked path against one server."""

    def __init__(
        self,
        host: str,
        public_base_url: str,
        twilio_auth_token: str,
        portal_jwt_secret: str,
        inbound_mime_token: str,
    ) -> None:
        self.host = host
        self.public = public_base_url.rstrip("/")
        self.twilio_auth_token = twilio_auth_token
        self.portal_jwt_secret = portal_jwt_secret
        self.inbound_mime_token = inbound_mime_token
        self._serial = 0

    def _next(self) -> int:
        self._serial += 1
        return self._serial

    # -- voice ----------------------------------------------------------------------------

    def new_calls(self, count: int) -> list[tuple[str, str]]:
        """Return ``count`` fresh (CallSid, calling number) pairs, every number distinct."""
        calls = []
        for _ in range(count):
            serial = self._next()
            calls.append((f"CA{uuid.uuid4().hex}", f"+1202{serial:07d}"))
        return calls

    def _voice(self, target: str, call_sid: str, caller: str, **extra: str) -> bytes:
        params = {
            "CallSid": call_sid,
            "AccountSid": "AC" + "0" * 32,
            "From": caller,
            "To": US_NUMBER,
            "Called": US_NUMBER,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            **extra,
        }
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: sign(self.twilio_auth_token, self.public + target, params),
        }
        return raw_request("POST", target, self.host, headers, urlencode(params).encode())

    def incoming(self, calls: Iterable[tuple[str, str]]) -> list[bytes]:
        """POST /voice/incoming for each new call."""
        return [self._voice("/voice/incoming", sid, caller) for sid, caller in calls]

    def pin(self, calls: Iterable[tuple[str, str]]) -> list[bytes]:
        """The PIN step (the right demo PIN) for each call already answered."""
        return [
            self._voice("/voice/pin?step=1", sid, caller, Digits=DEMO_PIN) for sid, caller in calls
        ]

    # -- email ----------------------------------------------------------------------------

    def emails(self, count: int) -> list[bytes]:
        """POST /email/inbound/mime: raw messages from a demo admin, each its own Message-ID."""
        now = datetime.now(UTC)
        built = []
        for _ in range(count):
            serial = self._next()
            message = EmailMessage()
            message["Authentication-Results"] = (
                f"{TRUSTED_RECEIVING_HOST}; spf=pass smtp.mailfrom={DEMO_ADMIN}; "
                f"dmarc=pass header.from={DEMO_ADMIN.partition('@')[2]}"
            )
            message["From"] = f"Alice Admin <{DEMO_ADMIN}>"
            message["To"] = "support@router.bench.invalid"
            message["Subject"] = f"S2: VPN clients cannot connect since this morning ({serial})"
            message["Date"] = format_datetime(now)
            message["Message-ID"] = f"<bench-{uuid.uuid4().hex}@acme.example>"
            message.set_content(
                "Hello support,\n\nSince 08:10 our Windows agents fail to authenticate against "
                "the RADIUS server; users see 'access denied'. We restarted the agent and "
                "checked C:\\Windows\\Temp\\jcagent.log (attached excerpt below).\n\n"
                "2026-03-02 08:10:12 ERROR radius: timeout contacting 10.0.0.4\n\nAlice\n"
            )
            headers = {
                "Content-Type": "message/rfc822",
                "Authorization": f"Bearer {self.inbound_mime_token}",
            }
            built.append(
                raw_request("POST", "/email/inbound/mime", self.host, headers, message.as_bytes())
            )
        return built

    # -- chat -----------------------------------------------------------------------------

    def chats(self, count: int, token_ttl: timedelta = timedelta(minutes=20)) -> list[bytes]:
        """POST /chat/sessions as a demo admin, each with its own Idempotency-Key."""
        token = mint_portal_token(
            secret=self.portal_jwt_secret,
            admin_email=DEMO_ADMIN,
            account_id=DEMO_ACCOUNT,
            now=datetime.now(UTC),
            ttl=token_ttl,
        )
        built = []
        for _ in range(count):
            serial = self._next()
            body = json.dumps(
                {
                    "topic": "windows",
                    "subject": f"Agent will not start after the update ({serial})",
                    "severity": "S2",
                    "message": "The agent service stops right after boot on 40 laptops.",
                }
            ).encode()
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": str(uuid.uuid4()),
            }
            built.append(raw_request("POST", "/chat/sessions", self.host, headers, body))
        return built


Builder = Callable[[int], list[bytes]]
