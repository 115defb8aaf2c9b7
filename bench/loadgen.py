"""The Python load client of bench_http.py, run as its own process (loopback only).

Two modes over the pre-built requests of bench/workload.py:

- closed loop (no ``--rate``): ``--connections`` threads send as fast as the server answers; the
  fallback for the throughput pass when wrk is not installed.
- open loop (``--rate R``): request i is due at start + i/R whatever happened before it, and its
  latency counts from when it was due (the correction wrk2 applies), so a server that falls behind
  shows it in the percentiles instead of silently slowing the client down.

Prints one JSON line: requests, duration, percentiles (microseconds), errors, achieved rate.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import read_records

TIMEOUT_SECONDS = 10.0


def send(host: str, port: int, request: bytes) -> int:
    """Send one request on a new connection; return the status code (0 on a transport error)."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS) as sock:
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1."):
                return 0
            status = int(head.split(b" ", 2)[1])
            length = None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while length is None or len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            return status
    except OSError:
        return 0


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def run(args: argparse.Namespace) -> dict[str, object]:
    records = [read_records(Path(f"{args.records}.{i}")) for i in range(args.threads)]
    pool = [record for group in records for record in group]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    next_index = 0
    wraps = 0
    start = time.perf_counter()
    stop_at = start + args.duration

    def take() -> int | None:
        nonlocal next_index, wraps
        with lock:
            index = next_index
            next_index += 1
        if args.rate is None and time.perf_counter() >= stop_at:
            return None
        if index >= len(pool):
            with lock:
                wraps = max(wraps, index // len(pool))
        return index

    timeline: list[tuple[float, float, int]] = []

    def record(latency: float, status: int) -> None:
        with lock:
            latencies.append(latency)
            if args.timeline:
                timeline.append((time.perf_counter() - start - latency, latency, status))
            statuses[status] = statuses.get(status, 0) + 1

    def closed_loop() -> None:
        while (index := take()) is not None:
            begin = time.perf_counter()
            status = send(args.host, args.port, pool[index % len(pool)])
            record(time.perf_counter() - begin, status)

    total = int(args.rate * args.duration) if args.rate else 0

    def open_loop() -> None:
        while True:
            index = take()
            if index is None or index >= total:
                return
            due = start + index / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            status = send(args.host, args.port, pool[index % len(pool)])
            record(time.perf_counter() - due, status)

    workers = [
        threading.Thread(target=open_loop if args.rate else closed_loop, daemon=True)
        for _ in range(args.connections)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if args.timeline:
        Path(args.timeline).write_text(
            "".join(f"{at:.4f} {latency * 1000:.2f} {status}\n" for at, latency, status in timeline)
        )
    ordered = sorted(latencies)
    errors = sum(count for status, count in statuses.items() if not 200 <= status < 400)
    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "p50_us": int(percentile(ordered, 0.50) * 1e6),
        "p90_us": int(percentile(ordered, 0.90) * 1e6),
        "p99_us": int(percentile(ordered, 0.99) * 1e6),
        "max_us": int((ordered[-1] if ordered else 0) * 1e6),
        "status_errors": errors,
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
        "wraps": wraps,
        "rate_target": args.rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--records", required=True, help="record file prefix (.0, .1, ...)")
    parser.add_argument("--threads", type=int, default=1, help="record files to read")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=None, help="requests/s (open loop)")
    parser.add_argument("--timeline", help="write 'sent_at latency_ms status' lines here")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the load client only targets loopback")
    print("LOAD_JSON " + json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
