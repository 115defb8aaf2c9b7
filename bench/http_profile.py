"""Profile one bench_http path in process (cProfile) when it misses a target.

The same raw requests the load passes send go through the app's test client, so the profile
shows the router's own time without the network or gunicorn.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from typing import Any

from server import HOST, PUBLIC_BASE_URL, ROOT, Secrets, SmtpSink
from workload import Workload


def profile(
    url: str, key: str, keys: Secrets, smtp: SmtpSink, work: Workload, count: int = 300
) -> str:
    """Profile ``count`` requests of one path in process (cProfile); return the top."""
    from app import create_app
    from config import Settings
    from router.runtime import EXTENSION_KEY

    settings = Settings(
        env="production",
        database_url=url,
        secret_key=keys.secret_key,
        pin_pepper=keys.pin_pepper,
        portal_jwt_secret=keys.portal_jwt_secret,
        twilio_auth_token=keys.twilio_auth_token,
        inbound_mime_token=keys.inbound_mime_token,
        public_base_url=PUBLIC_BASE_URL,
        mail_from="support@router.bench.invalid",
        smtp_host=HOST,
        smtp_port=smtp.port or 25,
        mail_transport="smtp" if smtp.available else "console",
        log_level="WARNING",
    ).validated()
    app = create_app(settings)
    client = app.test_client()
    calls = work.new_calls(count)
    requests = {
        "voice_incoming": lambda: work.incoming(calls),
        "voice_pin": lambda: work.pin(calls),
        "email": lambda: work.emails(count),
        "chat": lambda: work.chats(count),
    }
    if key == "voice_pin":
        for request in work.incoming(calls):
            _replay_in_process(client, request)
    batch = requests[key]()
    engine = app.extensions[EXTENSION_KEY].db.engine
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]).split(None, 1)[0].upper())

    from sqlalchemy import event

    half = len(batch) // 2
    begin = time.perf_counter()
    for request in batch[:half]:
        _replay_in_process(client, request)
    plain_ms = (time.perf_counter() - begin) / half * 1000
    event.listen(engine, "before_cursor_execute", count)
    profiler = cProfile.Profile()
    profiler.enable()
    for request in batch[half:]:
        _replay_in_process(client, request)
    profiler.disable()
    event.remove(engine, "before_cursor_execute", count)
    app.extensions[EXTENSION_KEY].db.dispose()
    kinds = {kind: statements.count(kind) / (len(batch) - half) for kind in set(statements)}
    out = io.StringIO()
    out.write(
        f"{plain_ms:.2f} ms per request in process without the profiler; SQL statements per "
        f"request: {sum(kinds.values()):.1f} ("
        + ", ".join(f"{kind} {n:.1f}" for kind, n in sorted(kinds.items()))
        + ")\n"
    )
    stats = pstats.Stats(profiler, stream=out)
    # The project's own functions by cumulative time, then the hottest functions anywhere.
    stats.sort_stats("cumulative").print_stats(rf"^{ROOT}/(app\.py|channels|router|ivr)/?", 14)
    stats.sort_stats("tottime").print_stats(8)
    return out.getvalue()


def _replay_in_process(client: Any, raw: bytes) -> int:
    """Send one raw request through the app's test client (same bytes, no network)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = dict(line.split(": ", 1) for line in lines[1:])
    headers.pop("Content-Length", None)
    response = client.open(
        target, method=method, headers=headers, data=body, base_url=PUBLIC_BASE_URL
    )
    return int(response.status_code)
