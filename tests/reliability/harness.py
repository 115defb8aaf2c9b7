"""What the reliability and abuse suites share: prepared stores, the server run as production runs
it, a TCP proxy that can cut the database off, and correctly signed deliveries of every channel.

Nothing here reaches beyond loopback.
"""

from __future__ import annotations

import http.client
import os
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

from sqlalchemy import create_engine, func, select

from channels.chat.tokens import mint_portal_token
from channels.voice.signature import SIGNATURE_HEADER, sign
from channels.voice.simulate import Verb, parse_twiml
from config import Settings
from config.policy import Policy
from router.services.demo import load_demo_data
from router.store import migrate
from router.store.db import Database
from router.store.models import Contact, ContactEvent
from router.store.models.email import EmailMessage as StoredEmail
from router.store.models.voice import IvrCall
from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL, TEST_PEPPER, make_settings
from tests.paths import PROJECT
from tests.postgres import scratch_schema

ROOT = PROJECT
HOST = "127.0.0.1"
PUBLIC = "https://router.example.com"

# Secrets long enough for APP_ENV=production (the server runs as production does).
TWILIO_TOKEN = "reliability-twilio-auth-token-0123456789"
PORTAL_SECRET = "reliability-portal-secret-0123456789abcdef"
MIME_TOKEN = "reliability-mime-token-0123456789abcdef"
SECRET_KEY = "reliability-secret-key-0123456789abcdef"

US = "+18554819316"  # the us region's toll-free number
ACME_PIN = "482913"  # demo: acme, Premium, us
# These suites open many calls at once to test other things; the global PIN-check rate is
# tested on its own (tests/abuse/test_pin_rate.py, test_pins.py) and set out of the way here.
PIN_RATE = {"pin_global_rate_per_minute": 60_000, "pin_global_burst": 10_000}
ADMIN = "alice@acme.example"  # demo: an active admin of acme
ACCOUNT = "acme"


# -- stores -------------------------------------------------------------------------------------


def prepare_store(url: str, policy: Policy) -> None:
    """Migrate ``url`` and load the demo data (accounts, admins, PINs, a staff user)."""
    migrate.upgrade(url)
    db = Database(url)
    try:
        load_demo_data(db, policy, TEST_PEPPER, datetime.now(UTC) - timedelta(days=1))
    finally:
        db.dispose()


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """Yield a URL on a fresh PostgreSQL schema (dropped afterwards)."""
    import pytest

    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    with scratch_schema(POSTGRES_URL, prefix) as url:
        yield url


def app_settings(url: str, **overrides: Any) -> Settings:
    """Return in-process app settings matching the server's (same secrets, every channel on)."""
    return make_settings(url).with_overrides(
        twilio_auth_token=TWILIO_TOKEN,
        portal_jwt_secret=PORTAL_SECRET,
        inbound_mime_token=MIME_TOKEN,
        secret_key=SECRET_KEY,
        mail_transport="console",
        email_send_mode="inline",  # no thread writing to the store while a test counts rows
        **{**PIN_RATE, **overrides},
    )


@dataclass(frozen=True)
class Census:
    """What the store holds: contacts by (channel, external id), email messages, calls."""

    contacts: dict[tuple[str, str], int]
    duplicates: list[tuple[str, str, int]]
    messages: dict[str, int]
    calls: dict[str, int | None]
    orphans: list[str]

    def contact(self, channel: str, external_id: str) -> int | None:
        return self.contacts.get((channel, external_id))


def census(url: str) -> Census:
    """Count what is stored and find what is half-written."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Contact.channel, Contact.external_id, Contact.id)
            ).all()
            counted = connection.execute(
                select(Contact.channel, Contact.external_id, func.count())
                .group_by(Contact.channel, Contact.external_id)
                .having(func.count() > 1)
            ).all()
            messages = connection.execute(
                select(StoredEmail.message_id, func.count()).group_by(StoredEmail.message_id)
            ).all()
            calls = connection.execute(select(IvrCall.call_sid, IvrCall.contact_id)).all()
            # Every contact is stored with its "received" event in the same transaction.
            unreceived = connection.execute(
                select(Contact.id).where(
                    ~select(ContactEvent.id)
                    .where(ContactEvent.contact_id == Contact.id, ContactEvent.kind == "received")
                    .exists()
                )
            ).all()
    finally:
        engine.dispose()
    orphans = [f"contact {cid} has no 'received' event" for (cid,) in unreceived]
    return Census(
        contacts={(channel, ext): cid for channel, ext, cid in rows},
        duplicates=[(channel, ext, n) for channel, ext, n in counted],
        messages={mid: n for mid, n in messages},
        calls={sid: cid for sid, cid in calls},
        orphans=orphans,
    )


# -- deliveries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One HTTP request a provider (Twilio, an MTA, the portal) sends, retried byte for byte."""

    kind: str  # voice, email, chat
    key: str  # CallSid, Message-ID, Idempotency-Key
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def client_kwargs(self) -> dict[str, Any]:
        """Return keyword arguments for a Flask test client's ``open``."""
        return {
            "method": self.method,
            "headers": dict(self.headers),
            "data": self.body,
            "base_url": PUBLIC,
        }


def voice_params(call_sid: str, caller: str, **extra: str) -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "AccountSid": "AC" + "0" * 32,
        "From": caller,
        "To": US,
        "Called": US,
        "CallStatus": "in-progress",
        "Direction": "inbound",
        **extra,
    }


def voice(path: str, params: Mapping[str, str], *, token: str = TWILIO_TOKEN) -> Delivery:
    """A Twilio webhook to ``path`` (with its query), signed over the public URL."""
    return Delivery(
        kind="voice",
        key=params.get("CallSid", ""),
        method="POST",
        path=path,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: sign(token, PUBLIC + path, dict(params)),
        },
        body=urlencode(dict(params)).encode(),
    )


def mime_message(
    message_id: str | None = None,
    *,
    sender: str = f"Alice Admin <{ADMIN}>",
    subject: str = "S2: VPN clients cannot connect",
    body: str = "Since this morning our Windows agents fail to authenticate.\n",
) -> tuple[str, bytes]:
    """Return (Message-ID, raw RFC 5322 message)."""
    message_id = message_id or f"<{uuid.uuid4().hex}@acme.example>"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@router.example"
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id
    message.set_content(body)
    return message_id, message.as_bytes()


def email(raw: bytes, message_id: str, *, token: str = MIME_TOKEN) -> Delivery:
    """An MTA posting a raw message to /email/inbound/mime."""
    return Delivery(
        kind="email",
        key=message_id,
        method="POST",
        path="/email/inbound/mime",
        headers={"Content-Type": "message/rfc822", "Authorization": f"Bearer {token}"},
        body=raw,
    )


def portal_token(
    admin: str = ADMIN,
    org: str = ACCOUNT,
    *,
    secret: str = PORTAL_SECRET,
    ttl: timedelta = timedelta(minutes=10),
) -> str:
    return mint_portal_token(
        secret=secret, admin_email=admin, account_id=org, now=datetime.now(UTC), ttl=ttl
    )


def chat(
    key: str | None = None,
    *,
    subject: str = "Agent will not start",
    token: str | None = None,
    path: str = "/chat/sessions",
    body: Mapping[str, Any] | None = None,
) -> Delivery:
    """The portal opening a chat (or posting ``body`` to ``path``) with an Idempotency-Key."""
    import json

    key = key or str(uuid.uuid4())
    payload = dict(body) if body is not None else {"topic": "windows", "subject": subject}
    return Delivery(
        kind="chat",
        key=key,
        method="POST",
        path=path,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token or portal_token()}",
            "Idempotency-Key": key,
        },
        body=json.dumps(payload).encode(),
    )


def gather_action(twiml: bytes) -> str:
    """Return the URL the answer's <Gather> posts the caller's keys to."""
    verbs = parse_twiml(twiml)
    gathers = [verb for verb in verbs if verb.name == "Gather"]
    assert gathers, f"no <Gather> in {twiml!r}"
    return gathers[0].attrs["action"]


def enqueued(twiml: bytes) -> Verb | None:
    """Return the answer's <Enqueue>, if it queues the caller."""
    return next((verb for verb in parse_twiml(twiml) if verb.name == "Enqueue"), None)


# -- HTTP over loopback -------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no HTTP answer at all (connection reset, refused, timed out)
    body: bytes
    headers: Mapping[str, str]
    error: str | None = None


def send(port: int, delivery: Delivery, timeout: float = 20.0) -> Answer:
    """Send one delivery to a server on loopback; never raise for transport failures."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(
            delivery.method, delivery.path, body=delivery.body, headers=dict(delivery.headers)
        )
        response = connection.getresponse()
        return Answer(response.status, response.read(), dict(response.getheaders()))
    except (OSError, http.client.HTTPException) as exc:
        return Answer(0, b"", {}, error=f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# -- gunicorn as production runs it -------------------------------------------------------------


def procfile_web(port: int, workers: int, extra: list[str] | None = None) -> list[str]:
    """Return the Procfile's web command bound to loopback on ``port``."""
    line = next(
        entry.split(":", 1)[1]
        for entry in (ROOT / "Procfile").read_text().splitlines()
        if entry.startswith("web:")
    )
    values = {"PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    line = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: values.get(m.group(1), m.group(2)), line)
    argv = shlex.split(line)
    assert argv[:2] == ["gunicorn", "app:create_app()"], line
    argv[0] = str(Path(sys.executable).parent / "gunicorn")
    argv[argv.index("--bind") + 1] = f"{HOST}:{port}"
    return argv + (extra or [])


def production_env(url: str, **extra: str) -> dict[str, str]:
    """Return the environment a production web process gets (the service reads only this)."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env.update(
        APP_ENV="production",
        DATABASE_URL=url,
        SECRET_KEY=SECRET_KEY,
        PIN_PEPPER=TEST_PEPPER,
        PORTAL_JWT_SECRET=PORTAL_SECRET,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        INBOUND_MIME_TOKEN=MIME_TOKEN,
        PUBLIC_BASE_URL=PUBLIC,
        MAIL_TRANSPORT="console",
        LOG_LEVEL="WARNING",
        **{name.upper(): str(value) for name, value in PIN_RATE.items()},
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


class Server:
    """gunicorn started from the Procfile's web line; its workers can be killed."""

    def __init__(
        self,
        env: Mapping[str, str],
        log: IO[str],
        *,
        workers: int = 2,
        extra: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.workers = workers
        self.log = log
        self.url = env.get("DATABASE_URL", "")
        self.process = subprocess.Popen(
            procfile_web(self.port, workers, extra),
            cwd=ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the workers answer /healthz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            answer = send(self.port, Delivery("ops", "", "GET", "/healthz", {}, b""), timeout=2)
            if answer.status == 200 and len(self.worker_pids()) >= self.workers:
                return
            time.sleep(0.05)
        raise RuntimeError("gunicorn did not become ready")

    def worker_pids(self) -> list[int]:
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def kill_worker(self, pid: int) -> None:
        """SIGKILL one worker (no cleanup of any kind runs in it)."""
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- a database connection we can cut -----------------------------------------------------------


class TcpProxy:
    """Forwards loopback TCP to the database and can take it away in two ways.

    ``cut`` resets every connection and refuses new ones (the database restarting, or its
    address failing over); ``stall`` resets every connection and then accepts new ones without
    ever answering (a database host that has stopped responding); ``restore`` forwards again.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stalled = False
        self.restore()

    def restore(self) -> None:
        """Forward connections again."""
        with self._lock:
            self._stalled = False
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, self.port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Reset every open connection and stop listening (new connects are refused)."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)  # shutdown first: a blocked accept() only wakes up for that
        self._reset_all()

    def stall(self) -> None:
        """Reset every open connection; accept new ones but never answer them."""
        with self._lock:
            self._stalled = True
        self._reset_all()

    def close(self) -> None:
        self.cut()
        self._reset_all()

    def _reset_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with suppress(OSError):
                # Linger 0: the peer gets a reset, as from a host whose process died.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            with self._lock:
                stalled, current = self._stalled, self._listener is listener
                self._sockets.add(client)
            if not current:
                _close(client)
                return
            if stalled:
                continue  # held open, never answered, until the next reset
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets.add(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    """Shut a socket down (waking any thread blocked on it) and close it."""
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()


def through_proxy(url: str, proxy: TcpProxy) -> str:
    """Return ``url`` with its host and port replaced by the proxy's."""
    return re.sub(r"@[^/:@]+(:\d+)?/", f"@{HOST}:{proxy.port}/", url, count=1)


def postgres_address(url: str) -> tuple[str, int]:
    match = re.search(r"@([^/:@]+)(?::(\d+))?/", url)
    assert match, url
    return match.group(1), int(match.group(2) or 5432)


# -- concurrent processes -----------------------------------------------------------------------


def deliver_in_rounds(
    url: str,
    rounds: list[list[Delivery]],
    barrier: Any,
    results: Any,
    worker: int,
) -> None:
    """In a process of its own: build the app, then send each round's deliveries right after
    every process has reached the round's barrier (so they race), reporting what came back."""
    from app import create_app

    app = create_app(app_settings(url))  # in a process of its own: nothing to share
    client = app.test_client()
    try:
        for number, round_ in enumerate(rounds):
            barrier.wait(timeout=60)
            for delivery in round_:
                response = client.open(delivery.path, **delivery.client_kwargs())
                results.put((worker, number, delivery.key, response.status_code, response.data))
    finally:
        from router.runtime import EXTENSION_KEY

        app.extensions[EXTENSION_KEY].db.dispose()
