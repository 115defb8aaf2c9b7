"""Measure the voice webhooks through app.test_client against a bare Flask endpoint.

Run: .venv/bin/python bench/bench_voice.py [--requests 300]

Side by side in one run, on a temporary SQLite file with the demo data: POST /voice/incoming
(signature check, call state insert, lock-out lookup, TwiML), the PIN step (signature check,
lock-out, global failure count, keyed-hash lookup, attempt insert, claimed state update) and a
bare Flask endpoint that answers a fixed TwiML document to the same form. SPEC 6 asks for the
full voice path within 2x of a bare endpoint served the same way; this is the in-process
figure (no network, no WSGI server), a first look before the load harness.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask, Response

from app import create_app
from channels.voice.signature import SIGNATURE_HEADER, sign
from config import Settings
from router.runtime import EXTENSION_KEY
from router.services.demo import load_demo_data
from router.store import migrate

PUBLIC = "https://router.example.com"
TOKEN = "bench-twilio-token-0123456789"
PIN = "482913"  # the demo premium PIN (acme)
TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-US">'
    "Thank you for calling Premium Support.</Say></Response>"
)


def form(call_sid: str, **extra: str) -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+447700900123",
        "To": "+18554819316",
        "Called": "+18554819316",
        "CallStatus": "in-progress",
        "Direction": "inbound",
        **extra,
    }


def measure(label: str, count: int, send: Callable[[int], int]) -> list[float]:
    """Send ``count`` requests; print throughput and latency; return the latencies (s)."""
    latencies: list[float] = []
    started = time.perf_counter()
    for index in range(count):
        begin = time.perf_counter()
        status = send(index)
        latencies.append(time.perf_counter() - begin)
        if status != 200:
            raise SystemExit(f"{label}: HTTP {status} on request {index}")
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(
        f"{label:<28} {count / elapsed:8.0f} req/s   "
        f"p50 {statistics.median(latencies) * 1000:6.2f} ms   p95 {p95 * 1000:6.2f} ms"
    )
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement")
    args = parser.parse_args()
    count = args.requests

    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        migrate.upgrade(url)
        settings = Settings(
            env="test",
            database_url=url,
            twilio_auth_token=TOKEN,
            pin_pepper="bench-pepper-0123456789abcdef",
            public_base_url=PUBLIC,
            log_level="WARNING",
            # Measured: a PIN check, not the hold answered beyond the global PIN-check rate.
            pin_global_rate_per_minute=60_000,
            pin_global_burst=10_000,
        ).validated()
        app = create_app(settings)
        runtime = app.extensions[EXTENSION_KEY]
        load_demo_data(runtime.db, runtime.policy, settings.pin_pepper, datetime.now(UTC))
        client = app.test_client()

        bare = Flask("bare")

        @bare.post("/voice/incoming")
        def bare_incoming() -> Response:
            return Response(TWIML, content_type="text/xml; charset=utf-8")

        bare_client = bare.test_client()

        def post(target: object, path: str, params: dict[str, str]) -> int:
            headers = {SIGNATURE_HEADER: sign(TOKEN, PUBLIC + path, params)}
            response = target.post(PUBLIC + path, data=params, headers=headers)  # type: ignore[attr-defined]
            return int(response.status_code)

        warm = [f"CA{uuid.uuid4().hex}" for _ in range(20)]
        for sid in warm:
            post(client, "/voice/incoming", form(sid))
            post(client, "/voice/pin?step=1", form(sid, Digits=PIN))
            post(bare_client, "/voice/incoming", form(sid))

        print(f"{count} requests each, in process (app.test_client), SQLite")
        bare_times = measure(
            "bare Flask endpoint",
            count,
            lambda i: post(bare_client, "/voice/incoming", form(f"CAbare{i}")),
        )
        calls = [f"CA{uuid.uuid4().hex}" for _ in range(count)]
        incoming_times = measure(
            "POST /voice/incoming", count, lambda i: post(client, "/voice/incoming", form(calls[i]))
        )
        pin_times = measure(
            "POST /voice/pin (right PIN)",
            count,
            lambda i: post(client, "/voice/pin?step=1", form(calls[i], Digits=PIN)),
        )
        base = statistics.median(bare_times)
        print(
            f"median vs bare: incoming {statistics.median(incoming_times) / base:.1f}x, "
            f"PIN step {statistics.median(pin_times) / base:.1f}x"
        )
        runtime.db.dispose()


if __name__ == "__main__":
    main()
