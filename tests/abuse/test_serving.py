"""The web process as the Procfile runs it (gunicorn.conf.py, router/serving.py), over loopback.

Slow clients: each holds one thread until its request's deadline (REQUEST_READ_TIMEOUT_SECONDS),
no longer: a slow body is answered 408, slow headers and silence are closed. A worker whose
threads are all held accepts nothing more, so with more slow clients than one worker has threads
(fewer than all workers have) ``/healthz`` still answers at once. With gunicorn's sync workers,
three clients sending a body at a byte a second stalled ``/healthz`` for as long as they sent.

Forwarded headers: gunicorn trusts none of them (its default trusts any sent from 127.0.0.1, and
the Procfile used to pass ``--forwarded-allow-ips '*'``); only TRUSTED_PROXY_COUNT makes the app
read them.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlencode

import pytest

from channels.voice.signature import SIGNATURE_HEADER, sign
from config.policy import Policy
from router.serving import FIRST_BYTE_SECONDS
from tests.reliability.harness import (
    HOST,
    PUBLIC,
    TWILIO_TOKEN,
    Delivery,
    Server,
    prepare_store,
    production_env,
    send,
    voice_params,
)

pytestmark = pytest.mark.slow  # real gunicorn processes, and clients that wait for deadlines

THREADS = 4  # WEB_THREADS here (two workers: eight threads in all)
DEADLINE = 3.0  # REQUEST_READ_TIMEOUT_SECONDS here
HEALTHZ = Delivery("ops", "", "GET", "/healthz", {}, b"")
# A forged signature: checking one means reading the body (so did sync workers, for ever).
SLOW_BODY = (
    b"POST /voice/incoming HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: forged\r\n"
    b"Content-Length: 100000\r\n\r\n"
)
SLOW_HEADERS = b"POST /voice/incoming HTTP/1.1\r\nHost: x\r\nX-Slow: "


@pytest.fixture
def sqlite_store(tmp_path: Path, policy: Policy) -> str:
    """Return a SQLite store (for what the database has no part in: connections, headers)."""
    (tmp_path / "store").mkdir()
    url = f"sqlite:///{tmp_path / 'store' / 'router.sqlite3'}"
    prepare_store(url, policy)
    return url


def serve(url: str, log: IO[str]) -> Server:
    """Start gunicorn from the Procfile's web line: two workers of four threads, a 3 s deadline."""
    env = production_env(
        url, WEB_THREADS=str(THREADS), REQUEST_READ_TIMEOUT_SECONDS=str(int(DEADLINE))
    )
    running = Server(env, log, workers=2)
    try:
        running.wait_ready()
    except BaseException:
        running.stop()
        raise
    return running


@pytest.fixture
def server(store: str, server_log: IO[str]) -> Iterator[Server]:
    running = serve(store, server_log)
    yield running
    running.stop()


@pytest.fixture
def sqlite_server(sqlite_store: str, server_log: IO[str]) -> Iterator[Server]:
    running = serve(sqlite_store, server_log)
    yield running
    running.stop()


class SlowClient(threading.Thread):
    """Sends ``head``, then one byte of ``trickle`` every half second until the server closes.

    The half second is how long it waits for the server's answer between two bytes.
    """

    def __init__(self, port: int, head: bytes, trickle: bytes = b"x" * 60) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.head = head
        self.trickle = trickle
        self.sent = 0
        self.answer = b""
        self.closed_after: float | None = None
        self.progress = threading.Condition()

    def run(self) -> None:
        opened = time.monotonic()
        with socket.create_connection((HOST, self.port), timeout=5) as sock:
            sock.sendall(self.head)
            sock.settimeout(0.5)
            for byte in self.trickle:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                with self.progress:
                    self.sent += 1
                    self.progress.notify_all()
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                self.answer += data
            else:
                return  # never closed: closed_after stays None
        self.closed_after = time.monotonic() - opened

    def wait_sent(self, count: int, timeout: float = 10) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: self.sent >= count, timeout), self.sent


def healthz_latency(port: int) -> float:
    started = time.monotonic()
    answer = send(port, HEALTHZ, timeout=10)
    assert answer.status == 200, answer
    return time.monotonic() - started


def test_slow_clients_hold_a_thread_until_their_deadline_never_the_server(server: Server) -> None:
    port = server.port
    # More slow bodies than one worker has threads, and slow headers: six of eight threads.
    bodies = [SlowClient(port, SLOW_BODY) for _ in range(THREADS + 1)]
    headers = [SlowClient(port, SLOW_HEADERS)]
    slow = bodies + headers
    for client in slow:
        client.start()
    for client in slow:
        client.wait_sent(2)  # connected, and held for a while by now
    latencies = []
    while len(latencies) < 30 and all(client.closed_after is None for client in slow):
        latencies.append(healthz_latency(port))
    assert len(latencies) >= 10, latencies
    for client in slow:
        client.join(timeout=30)
    # /healthz was answered at once all along (sync workers: seconds, then timeouts).
    assert max(latencies) < 1.0, latencies
    # Every slow client was cut off at its deadline: a slow body with a 408, slow headers
    # closed; none was served nor held any longer.
    for client in slow:
        assert client.closed_after is not None
        assert DEADLINE - 0.5 <= client.closed_after <= DEADLINE + 3, client.closed_after
    for client in bodies:
        assert client.answer.startswith(b"HTTP/1.1 408 Request Timeout"), client.answer[:100]
    assert headers[0].answer == b""
    # And the server is as it was: both workers up, answering at once.
    assert server.process.poll() is None and len(server.worker_pids()) == 2
    assert healthz_latency(port) < 1.0
    print(f"slow clients: /healthz max {max(latencies) * 1000:.0f} ms over {len(latencies)}")


def test_connections_that_send_nothing_are_closed(sqlite_server: Server) -> None:
    port = sqlite_server.port
    idle = [socket.create_connection((HOST, port), timeout=10) for _ in range(2 * THREADS)]
    try:
        closed_after = []
        opened = time.monotonic()
        for sock in idle:
            assert sock.recv(1) == b""  # closed by the server, not by this timeout
            closed_after.append(time.monotonic() - opened)
        assert max(closed_after) <= FIRST_BYTE_SECONDS + 3, closed_after
    finally:
        for sock in idle:
            sock.close()
    assert healthz_latency(port) < 1.0


def test_a_client_waiting_for_100_continue_gets_it_before_its_body_is_read(
    sqlite_server: Server,
) -> None:
    params = voice_params(f"CA{uuid.uuid4().hex}", "+13035550198")
    body = urlencode(params).encode()
    head = (
        "POST /voice/incoming HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"{SIGNATURE_HEADER}: {sign(TWILIO_TOKEN, PUBLIC + '/voice/incoming', params)}\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    with socket.create_connection((HOST, sqlite_server.port), timeout=DEADLINE * 2) as sock:
        sock.sendall(head)
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


@pytest.mark.parametrize("trusted_proxies", [0, 1])
def test_x_forwarded_proto_counts_only_for_trusted_proxy_count(
    sqlite_store: str, server_log: IO[str], trusted_proxies: int
) -> None:
    # Without PUBLIC_BASE_URL (allowed outside production) the signed URL is rebuilt from the
    # request: its scheme may come from X-Forwarded-Proto only behind TRUSTED_PROXY_COUNT proxies.
    env = production_env(
        sqlite_store, APP_ENV="development", TRUSTED_PROXY_COUNT=str(trusted_proxies)
    )
    del env["PUBLIC_BASE_URL"]
    running = Server(env, server_log, workers=1)
    try:
        running.wait_ready()

        def call(signed_for: str, **headers: str) -> int:
            params = voice_params(f"CA{uuid.uuid4().hex}", "+13035550199")
            url = f"{signed_for}://{HOST}:{running.port}/voice/incoming"
            delivery = Delivery(
                "voice",
                params["CallSid"],
                "POST",
                "/voice/incoming",
                {
                    "Content-Type": "application/x-www-form-urlencoded",
                    SIGNATURE_HEADER: sign(TWILIO_TOKEN, url, params),
                    **headers,
                },
                urlencode(params).encode(),
            )
            return send(running.port, delivery).status

        assert call("http") == 200
        forged = call("https", **{"X-Forwarded-Proto": "https", "X-Forwarded-SSL": "on"})
        assert forged == (200 if trusted_proxies else 403)
    finally:
        running.stop()


def test_production_without_public_base_url_refuses_to_start(
    sqlite_store: str, tmp_path: Path
) -> None:
    env = production_env(sqlite_store)
    del env["PUBLIC_BASE_URL"]
    with (tmp_path / "refused.log").open("w+") as log:
        refused = Server(env, log, workers=1)
        try:
            assert refused.process.wait(timeout=60) != 0
        finally:
            refused.stop()
        log.seek(0)
        assert "Error: PUBLIC_BASE_URL is missing" in log.read()
