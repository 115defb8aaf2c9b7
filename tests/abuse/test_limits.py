"""Oversize bodies and slow clients.

Oversize: every public endpoint answers 413 (never a 5xx, never a partial record), through the
app and through gunicorn as the Procfile runs it, with and without a Content-Length (chunked).
Slow clients: a slowloris-style client against gunicorn holds one thread until its request's
read deadline (REQUEST_READ_TIMEOUT_SECONDS, 2 s here), no longer; the connection is then cut and
service goes on meanwhile (tests/abuse/test_serving.py has the rest). (How long service stalls
while more such clients keep coming than all workers have threads is what a buffering proxy in
front of gunicorn is for; this test pins what the server itself guarantees.)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from flask import Flask

from channels.voice.signature import SIGNATURE_HEADER
from config.policy import Policy
from router.runtime import EXTENSION_KEY
from router.services.logins import issue_token
from tests.abuse.conftest import EMAIL_LIMIT, POSTMARK, SENDGRID, Guard, basic, mailgun_signature
from tests.reliability.harness import (
    HOST,
    MIME_TOKEN,
    PUBLIC,
    Delivery,
    Server,
    census,
    mime_message,
    portal_token,
    prepare_store,
    production_env,
    send,
)

APP_LIMIT = 10 * 1024 * 1024  # app.MAX_CONTENT_LENGTH
TOO_BIG = b"x" * (APP_LIMIT + 1024)
SERVER_EMAIL_LIMIT = 100_000


def test_oversize_bodies_get_413_everywhere(abuse_app: Flask, guard: Guard) -> None:
    client = abuse_app.test_client()
    staff = issue_token(abuse_app.extensions[EXTENSION_KEY].db, "ops@support.example").token
    portal = {"Authorization": f"Bearer {portal_token()}", "Content-Type": "application/json"}
    big_json = b'{"topic": "windows", "subject": "' + TOO_BIG + b'"}'
    cases = {
        "voice": (
            "/voice/incoming",
            TOO_BIG,
            {"Content-Type": "application/x-www-form-urlencoded", SIGNATURE_HEADER: "x"},
        ),
        "voice step": (
            "/voice/pin?step=1",
            TOO_BIG,
            {"Content-Type": "application/x-www-form-urlencoded", SIGNATURE_HEADER: "x"},
        ),
        "chat": ("/chat/sessions", big_json, portal),
        "portal form": ("/portal/requests", big_json, portal),
        "chat message": ("/chat/sessions/1/messages", big_json, portal),
        "console login": (
            "/console/login",
            TOO_BIG,
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        "staff API": (
            "/api/v1/queues",
            big_json,
            {"Authorization": f"Bearer {staff}", "Content-Type": "application/json"},
        ),
        "mime": (
            "/email/inbound/mime",
            b"x" * (EMAIL_LIMIT + 1),
            {"Authorization": f"Bearer {MIME_TOKEN}", "Content-Type": "message/rfc822"},
        ),
        "postmark": (
            "/email/inbound/postmark",
            b'{"x": "' + b"x" * EMAIL_LIMIT + b'"}',
            {"Authorization": basic(*POSTMARK), "Content-Type": "application/json"},
        ),
        "sendgrid": (
            "/email/inbound/sendgrid",
            b"text=" + b"x" * EMAIL_LIMIT,
            {
                "Authorization": basic(*SENDGRID),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        ),
        "mailgun": (
            "/email/inbound/mailgun",
            ("&".join(f"{k}={v}" for k, v in mailgun_signature().items()) + "&body-plain=").encode()
            + b"x" * EMAIL_LIMIT,
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
    }
    for name, (path, body, headers) in cases.items():
        before = guard.counts()
        response = client.post(path, data=body, headers=headers, base_url=PUBLIC)
        assert response.status_code == 413, (name, response.status_code, response.data[:200])
        assert guard.counts() == before, name
        if response.is_json:
            assert response.json["message"], name


def test_fields_over_their_limits_get_413(abuse_app: Flask, guard: Guard) -> None:
    client = abuse_app.test_client()
    settings = abuse_app.extensions[EXTENSION_KEY].settings
    headers = {"Authorization": f"Bearer {portal_token()}"}
    long_message = "m" * (settings.chat_message_max_chars + 1)
    long_text = "d" * (settings.portal_text_max_chars + 1)
    before = guard.counts()
    opened = client.post(
        "/chat/sessions",
        json={"topic": "windows", "subject": "s", "message": long_message},
        headers=headers,
    )
    assert opened.status_code == 413 and opened.json["field"] == "message"
    form = client.post(
        "/portal/requests", json={"subject": "s", "description": long_text}, headers=headers
    )
    assert form.status_code == 413 and form.json["field"] == "description"
    assert guard.counts() == before
    # At the limit it is fine.
    exact = client.post(
        "/chat/sessions",
        json={"topic": "windows", "subject": "s", "message": long_message[:-1]},
        headers=headers,
    )
    assert exact.status_code == 201


def test_an_email_just_under_the_limit_is_taken(abuse_app: Flask, guard: Guard) -> None:
    client = abuse_app.test_client()
    _message_id, raw = mime_message(body="line of text\n" * ((EMAIL_LIMIT - 2048) // 13))
    assert len(raw) < EMAIL_LIMIT
    response = client.post(
        "/email/inbound/mime",
        data=raw,
        headers={"Authorization": f"Bearer {MIME_TOKEN}", "Content-Type": "message/rfc822"},
    )
    assert response.status_code == 200


def test_a_flood_of_form_fields_is_refused_quickly(abuse_app: Flask, guard: Guard) -> None:
    client = abuse_app.test_client()
    body = "&".join(f"f{n}={n}" for n in range(200_000)).encode()  # ~2 MB, under the size limit
    before = guard.counts()
    started = time.monotonic()
    response = client.post(
        "/voice/incoming",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", SIGNATURE_HEADER: "forged"},
        base_url=PUBLIC,
    )
    assert response.status_code in (403, 413)
    assert time.monotonic() - started < 5
    assert guard.counts() == before


# -- through gunicorn ---------------------------------------------------------------------------


@pytest.fixture
def slow_server(tmp_path: Path, policy: Policy, server_log: IO[str]) -> Iterator[Server]:
    """gunicorn from the Procfile's web line, with a 2-second timeout (worker and read)."""
    (tmp_path / "store").mkdir()
    url = f"sqlite:///{tmp_path / 'store' / 'router.sqlite3'}"
    prepare_store(url, policy)
    env = production_env(
        url, EMAIL_MAX_MESSAGE_BYTES=str(SERVER_EMAIL_LIMIT), REQUEST_READ_TIMEOUT_SECONDS="2"
    )
    server = Server(env, server_log, workers=2, extra=["--timeout", "2"])
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _chunked(head: str, body: bytes, size: int = 8192) -> bytes:
    """Return a request whose body is sent chunked (no Content-Length)."""
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    encoded = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks)
    return f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + encoded + b"0\r\n\r\n"


def test_a_chunked_email_over_the_limit_is_refused_not_stored_cut_short(
    slow_server: Server,
) -> None:
    head = (
        "POST /email/inbound/mime HTTP/1.1\r\nHost: x\r\nContent-Type: message/rfc822\r\n"
        f"Authorization: Bearer {MIME_TOKEN}\r\n"
    )
    big_id, big = mime_message(body="attached log line\n" * 8000 + "THE END\n")
    assert len(big) > SERVER_EMAIL_LIMIT
    assert _raw(slow_server.port, _chunked(head, big)).startswith(b"HTTP/1.1 413")
    small_id, small = mime_message(body="attached log line\n" * 1000 + "THE END\n")
    assert _raw(slow_server.port, _chunked(head, small)).startswith(b"HTTP/1.1 200")
    stored = census(slow_server.url)
    assert big_id not in stored.messages and stored.messages[small_id] == 1


def test_oversize_and_malformed_requests_through_gunicorn(slow_server: Server) -> None:
    port = slow_server.port
    token = portal_token()
    # No Content-Length: a chunked body that never stops growing is cut off at the limit.
    head = (
        "POST /chat/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\r\n"
    ).encode()
    chunk = b"x" * 65536
    body = (
        b"".join(
            f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            for _ in range(APP_LIMIT // len(chunk) + 4)
        )
        + b"0\r\n\r\n"
    )
    answer = _raw(port, head + body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # A header or request line beyond gunicorn's limits is refused by gunicorn itself.
    huge_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    assert _raw(port, huge_header).startswith((b"HTTP/1.1 400", b"HTTP/1.1 431"))
    huge_line = b"GET /healthz?" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _raw(port, huge_line).startswith((b"HTTP/1.1 414", b"HTTP/1.1 400"))
    many_headers = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(f"X-{n}: 1\r\n".encode() for n in range(200))
        + b"\r\n"
    )
    assert _raw(port, many_headers).startswith((b"HTTP/1.1 400", b"HTTP/1.1 431"))
    # And the server is fine afterwards.
    assert send(port, Delivery("ops", "", "GET", "/healthz", {}, b"")).status == 200


def test_slowloris_holds_a_worker_no_longer_than_the_timeout(slow_server: Server) -> None:
    port = slow_server.port
    timeout = 2.0
    slow_clients = 4  # twice the workers
    closed_after: list[float] = []
    stop = threading.Event()

    def trickle() -> None:
        opened = time.monotonic()
        with socket.create_connection((HOST, port)) as sock:
            sock.settimeout(0.2)
            sock.sendall(b"POST /voice/incoming HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set():
                try:
                    sock.sendall(b"X")  # a header that never ends
                    if sock.recv(1024) == b"":
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
            else:
                return
        closed_after.append(time.monotonic() - opened)

    threads = [threading.Thread(target=trickle) for _ in range(slow_clients)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    time.sleep(0.3)
    # A real request arriving in the middle of the attack still gets its answer.
    started = time.monotonic()
    during = send(port, Delivery("ops", "", "GET", "/healthz", {}, b""), timeout=30)
    waited = time.monotonic() - started
    assert during.status == 200
    deadline = time.monotonic() + 20
    while len(closed_after) < slow_clients and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    # Every slow client was cut off by the server (the worker holding it was timed out),
    # within the timeout plus the arbiter's check interval and a worker's restart.
    assert len(closed_after) == slow_clients, closed_after
    assert max(closed_after) < slow_clients / 2 * timeout + 8, closed_after
    # Waiting behind them took about as long as the timeouts in its way, not indefinitely.
    assert waited < slow_clients / 2 * timeout + 8
    # Once they are gone, the server answers at once, with its workers replaced.
    started = time.monotonic()
    assert send(port, Delivery("ops", "", "GET", "/healthz", {}, b"")).status == 200
    assert time.monotonic() - started < 1
    assert slow_server.process.poll() is None
    deadline = time.monotonic() + 10
    while len(slow_server.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(slow_server.worker_pids()) == 2
    print(
        f"slowloris: clients cut after {sorted(round(c, 1) for c in closed_after)} s; a request in the middle waited {waited:.1f} s"
    )
