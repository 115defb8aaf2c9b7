"""The gunicorn worker the web process runs (gunicorn.conf.py): gthread, with a read deadline.

gunicorn's gthread worker hands a connection to a thread once it is readable, but that thread
then reads the request's headers and body from a blocking socket with no deadline at all: a
client that sends its body at one byte a second holds the thread for as long as it likes, and
a few such clients hold every thread of every worker (``/healthz`` and every webhook wait).
gunicorn offers no setting for this (its ``timeout`` only restarts a worker whose main loop is
stuck, which a gthread worker's never is), so this worker adds one:

- every request must arrive within ``read_timeout`` seconds, plus one second for each
  ``min_rate`` bytes received (a large body sent at a reasonable speed still gets through);
- the body is read whole, spooled to a temporary file past 1 MiB, before the application runs,
  so the application never waits on a client and never sees part of a body;
- a request that misses its deadline gets ``408 Request Timeout`` (while its body is read) or is
  closed (while its headers are), and its thread is free again;
- a connection that sends nothing within ``FIRST_BYTE_SECONDS`` is closed.

With ``worker_connections`` equal to ``threads`` (gunicorn.conf.py) a worker whose threads are
all busy accepts nothing more, so a new connection goes to a worker with a thread free instead
of queueing behind slow clients. What remains: each slow client still holds one thread until its
deadline, so more slow clients than all workers' threads together delay everyone else by up to
that deadline. A buffering proxy in front (nginx with ``proxy_request_buffering on``, the
default) takes slow clients off the workers entirely.

Built on gunicorn 27's ``ThreadWorker`` internals (``handle``, ``handle_request`` and the
connection's ``wait_for_data``), hence the pin on gunicorn's major version in pyproject.toml.
"""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import ThreadWorker

# How long a new connection may stay silent before it is closed (clients send at once).
FIRST_BYTE_SECONDS = 2.0
# However fast a body keeps coming, its request is read within this: a client trickling a
# 25 MiB email at just over the minimum rate would otherwise hold a thread for 13 minutes.
# (The largest email then needs about 440 KB/s; providers post from data centres.)
MAX_READ_SECONDS = 60.0
# Bodies up to this size are buffered in memory; larger ones go to a temporary file.
_IN_MEMORY = 1024 * 1024
_CHUNK = 64 * 1024
# How long writing the 408 answer may take (a client that does not read is simply closed).
_ANSWER_SECONDS = 1.0
# How long a closing connection waits for the client's last bytes. gunicorn lingers up to 2 s
# for the client to close, on the worker's main thread (the one that accepts and dispatches):
# a client that keeps its socket open after the answer would stall the whole worker that long.
_CLOSING_LINGER_SECONDS = 0.05
_TIMEOUT_BODY = b"The request was not received in time.\n"
_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: %d\r\n\r\n" % len(_TIMEOUT_BODY)
) + _TIMEOUT_BODY


class RequestReadTimeout(NoMoreData, TimeoutError):  # type: ignore[misc]
    """The client did not send its request within the deadline.

    A ``NoMoreData`` so that gunicorn closes a connection whose headers are late as quietly as one
    the client closed; a ``TimeoutError`` so that gunicorn's bounded drains stop on it.
    """

    def __str__(self) -> str:
        return "request not received within its deadline"


class ReadDeadline:
    """The deadline of the request being read on one connection."""

    def __init__(self, timeout: float, min_rate: float) -> None:
        self.timeout = timeout
        self.min_rate = min_rate
        self.started = time.monotonic()
        self.received = 0

    def arm(self) -> None:
        """Start the clock for the next request."""
        self.started = time.monotonic()
        self.received = 0

    def remaining(self) -> float:
        """Return the seconds left, the allowance for the bytes received so far included."""
        allowed = min(self.timeout + self.received / self.min_rate, MAX_READ_SECONDS)
        return self.started + allowed - time.monotonic()


class DeadlineSocket:
    """A client socket whose unbounded reads stop at the request's deadline.

    Only ``recv`` differs (gunicorn's request parser reads through it), and what follows
    ``shutdown``; everything else is the socket's own. A read someone already bounded with a
    timeout of their own is left alone, except while the connection closes.
    """

    def __init__(
        self, sock: socket.socket, deadline: ReadDeadline, expired: Callable[[], None]
    ) -> None:
        self._sock = sock
        self.deadline = deadline
        self._expired = expired
        self._closing = False

    def shutdown(self, how: int) -> None:
        """Shut the socket down; reads after that wait for the client briefly, if at all."""
        self._closing = True
        self._sock.shutdown(how)

    def recv(self, size: int, flags: int = 0) -> bytes:
        """Read like ``socket.recv``, but raise RequestReadTimeout once the deadline passes."""
        if self._closing:
            timeout = self._sock.gettimeout()
            self._sock.settimeout(min(timeout or _CLOSING_LINGER_SECONDS, _CLOSING_LINGER_SECONDS))
            return self._sock.recv(size, flags)
        if self._sock.gettimeout() is not None:
            return self._sock.recv(size, flags)
        remaining = self.deadline.remaining()
        if remaining <= 0:
            self._expired()
            raise RequestReadTimeout()
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(size, flags)
        except TimeoutError:
            self._expired()
            raise RequestReadTimeout() from None
        finally:
            self._sock.settimeout(None)
        self.deadline.received += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class BufferedBody:
    """A request body read ahead: the buffered part, then whatever is left unread (over the cap)."""

    def __init__(self, head: IO[bytes], rest: Any | None) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int | None = None) -> bytes:
        if size is None or size < 0:
            return self._head.read() + (self._rest.read() if self._rest is not None else b"")
        data = self._head.read(size)
        if len(data) < size and self._rest is not None:
            data += self._rest.read(size - len(data))
        return data

    def readline(self, size: int | None = None) -> bytes:
        limit = -1 if size is None else size
        line = self._head.readline(limit)
        if self._rest is not None and not line.endswith(b"\n"):
            if limit < 0:
                line += self._rest.readline()
            elif len(line) < limit:
                line += self._rest.readline(limit - len(line))
        return line

    def readlines(self, hint: int | None = None) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> BufferedBody:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def read_ahead(body: Any, limit: int) -> BufferedBody:
    """Read up to ``limit`` + 1 bytes of ``body`` now; past that the application reads the rest."""
    spool = tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY)  # noqa: SIM115 - lives with the request
    total = 0
    while total <= limit:
        chunk = body.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            break
        spool.write(chunk)
        total += len(chunk)
    spool.seek(0)
    # Over the cap: the application refuses it (413) after reading a little more, or not at all.
    return BufferedBody(spool, body if total > limit else None)


class BoundedReadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's gthread worker with a deadline on reading each request (see the module)."""

    read_timeout: float = 10.0
    min_rate: float = 32768.0
    body_limit: int = 32 * 1024 * 1024

    @classmethod
    def configured(
        cls, *, read_timeout: float, min_rate: float, body_limit: int
    ) -> type[BoundedReadWorker]:
        """Return this worker class with its limits set (gunicorn.conf.py passes the class)."""
        return type(
            cls.__name__,
            (cls,),
            {"read_timeout": read_timeout, "min_rate": min_rate, "body_limit": body_limit},
        )

    def handle(self, conn: Any) -> Any:
        """Serve one connection: arm the deadline, close it if it stays silent."""
        if not isinstance(conn.sock, DeadlineSocket):
            peer = conn.client
            conn.sock = DeadlineSocket(
                conn.sock,
                ReadDeadline(self.read_timeout, self.min_rate),
                lambda: self.log.info("closed %s: request not received in time", _peer(peer)),
            )
        conn.sock.deadline.arm()
        fresh = not conn.initialized and not conn.data_ready
        if fresh and not conn.wait_for_data(min(FIRST_BYTE_SECONDS, self.read_timeout)):
            return False  # gunicorn would park it; a client that sends nothing is closed
        return super().handle(conn)

    def handle_request(self, req: Any, conn: Any) -> Any:
        """Read the body whole within the deadline, then let gunicorn run the application."""
        if req._expected_100_continue:
            # gunicorn would send it just before the application runs, too late for a client
            # that waits for it before sending its body.
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            req._expected_100_continue = False
        try:
            req.body = read_ahead(req.body, self.body_limit)
        except RequestReadTimeout:
            try:
                conn.sock.settimeout(_ANSWER_SECONDS)
                conn.sock.sendall(_TIMEOUT_ANSWER)
            except OSError:
                pass  # the client is not reading either; it is closed all the same
            return False
        return super().handle_request(req, conn)


def _peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
