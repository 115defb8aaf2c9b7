"""Send email replies on a per-process background thread, after the webhook has been answered.

Sent inline, a reply holds the provider's webhook request, and the gunicorn sync worker serving
it, for up to SMTP_TIMEOUT_SECONDS per attempt whenever the mail relay is slow or unreachable.
So the handler commits the message with the reply it is owed (a ``pending`` outbox row, due at
once), hands the row's id to this sender and answers; a daemon thread then sends it through
the outbox (``router.services.outbox.OutboxSender.deliver``), which claims the row with a lease
before sending.

The queue is only a shortcut; the outbox row is the record. A full queue, or a process that
dies with ids still queued, leaves the row pending and due; a send cut short leaves it pending
and leased (due again when the lease ends); either way the scheduler's ``email-outbox`` job (or
``flask --app app email retry-outbox``) sends it. The
thread is started on first use, never at import or in ``create_app``: gunicorn forks its workers
after building the app and threads do not survive a fork, so each process (found by its pid)
starts its own.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Batches (one per webhook) waiting for the thread; beyond this the retry job sends them.
DEFAULT_CAPACITY = 1000

# Guards starting a worker. Re-made in a forked child: a lock held by another thread at the
# moment of the fork would stay held there for ever.
_start_lock = threading.Lock()


def _renew_start_lock() -> None:
    global _start_lock
    _start_lock = threading.Lock()


os.register_at_fork(after_in_child=_renew_start_lock)


@dataclass
class _Worker:
    """One process's thread, its queue and the count of batches not yet finished."""

    pid: int
    jobs: queue.Queue[tuple[int, ...] | None]
    thread: threading.Thread | None = None
    idle: threading.Condition = field(default_factory=threading.Condition)
    busy: int = 0


class EmailSender:
    """Send batches of outbox rows on one daemon thread per process, started on first use."""

    def __init__(
        self,
        deliver: Callable[[Sequence[int]], object],
        *,
        capacity: int = DEFAULT_CAPACITY,
        name: str = "email-sender",
    ) -> None:
        self._deliver = deliver
        self._capacity = capacity
        self._name = name
        self._worker: _Worker | None = None

    @property
    def running(self) -> bool:
        """Return whether this process's sending thread has been started and is alive."""
        worker = self._worker
        return worker is not None and worker.pid == os.getpid() and _alive(worker)

    def submit(self, outbox_ids: Sequence[int]) -> bool:
        """Queue these outbox rows for sending; return False when the queue is full."""
        batch = tuple(outbox_ids)
        if not batch:
            return True
        worker = self._current()
        with worker.idle:
            try:
                worker.jobs.put_nowait(batch)
            except queue.Full:
                # Nothing is lost: the rows stay pending and due for the outbox retry job.
                log.warning(
                    "email send queue full (%d batches): outbox rows %s left to the retry job",
                    self._capacity,
                    list(batch),
                )
                return False
            worker.busy += 1
        return True

    def drain(self, timeout: float) -> bool:
        """Wait until every queued batch is finished; return False if ``timeout`` ran out."""
        worker = self._worker
        if worker is None or worker.pid != os.getpid():
            return True
        with worker.idle:
            return worker.idle.wait_for(lambda: worker.busy == 0, timeout)

    def stop(self, timeout: float = 5.0) -> bool:
        """Let the thread finish the queued batches, then end it; return False if it had not."""
        with _start_lock:
            worker, self._worker = self._worker, None
        if worker is None or worker.thread is None or worker.pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout
        try:
            worker.jobs.put(None, timeout=timeout)
        except queue.Full:
            return False  # still sending; a daemon thread, it ends with the process
        worker.thread.join(max(0.0, deadline - time.monotonic()))
        return not worker.thread.is_alive()

    def _current(self) -> _Worker:
        """Return this process's worker, starting it if there is none yet (or we were forked)."""
        pid = os.getpid()
        worker = self._worker
        if worker is not None and worker.pid == pid and _alive(worker):
            return worker
        with _start_lock:
            worker = self._worker
            if worker is None or worker.pid != pid or not _alive(worker):
                # A forked child inherits the parent's queue but not its thread, and a thread
                # ended by something worse than an exception leaves a queue nobody reads: start
                # afresh (batches left in the old queue are due rows for the retry job).
                worker = _Worker(pid=pid, jobs=queue.Queue(maxsize=self._capacity))
                worker.thread = threading.Thread(
                    target=self._run, args=(worker,), name=self._name, daemon=True
                )
                worker.thread.start()
                self._worker = worker
        return worker

    def _run(self, worker: _Worker) -> None:
        """Send each batch as it comes; log any error and carry on."""
        while True:
            batch = worker.jobs.get()
            if batch is None:
                return
            try:
                self._deliver(batch)
            except Exception:
                # The rows stay pending (or leased, then due again): the retry job sends them.
                log.exception("email outbox rows %s not sent in the background", list(batch))
            finally:
                with worker.idle:
                    worker.busy -= 1
                    worker.idle.notify_all()


def _alive(worker: _Worker) -> bool:
    return worker.thread is not None and worker.thread.is_alive()
