"""Load the router over HTTP as production serves it, side by side with a bare Flask endpoint.

Run: .venv/bin/python bench/bench_http.py [--duration 5] [--client auto|wrk|python]
(`make bench` runs it.)

In one run: gunicorn started from the Procfile's web line (workers from WEB_CONCURRENCY, default
2) with APP_ENV=production and freshly generated secrets, on a temporary SQLite file migrated and
loaded with the demo data through the CLI (and on a fresh PostgreSQL schema too when
TEST_DATABASE_URL is set); the bare baseline (bench/bare_app.py) served by the same command. A
load generator in its own process on loopback (wrk from Debian when installed, else
bench/loadgen.py) drives each path for --duration seconds at full speed: the bare endpoint,
POST /voice/incoming (a new call each time), the PIN step (a correctly signed right PIN on each of
those calls, every calling number distinct), an email delivery (a raw MIME message with its own
Message-ID; its acknowledgement goes to a local SMTP sink) and a chat start (a portal token, its
own Idempotency-Key). A second, open-loop pass sends each path at half its own measured maximum
and reports the latency from when each request was due. Figures go to the terminal (one table)
and to bench-results.json; a path that misses its target is profiled in process (cProfile) and
the top of the profile printed.

Targets (the issue): /voice/incoming >= 50 % of the bare endpoint's requests/s, the other paths
>= 25 %; p99 < 50 ms for every path at half its own maximum.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from server import (
    BENCH,
    HOST,
    PUBLIC_BASE_URL,
    ROOT,
    Gunicorn,
    Secrets,
    SmtpSink,
    postgres_schema,
    prepare_database,
    production_env,
)
from workload import Workload, write_records

RESULTS = ROOT / "bench-results.json"
LOADGEN = BENCH / "loadgen.py"
LUA = BENCH / "replay.lua"
# Requests built per full-speed pass: more than any path here can answer in the pass (wraps
# are detected and the pass is rerun with more).
RATE_CEILING = 2500
TARGETS = {"voice_incoming": 0.50, "voice_pin": 0.25, "email": 0.25, "chat": 0.25}
P99_TARGET_MS = 50.0
BUSY_LOAD = 0.5  # 1-minute load average above which other work is competing for the CPUs
LABELS = {
    "bare": "bare Flask endpoint",
    "voice_incoming": "POST /voice/incoming",
    "voice_pin": "POST /voice/pin (right PIN)",
    "email": "POST /email/inbound/mime",
    "chat": "POST /chat/sessions",
}


@dataclass
class Pass:
    """What one load pass measured."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    wraps: int
    client: str
    rate_target: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p90_ms": round(self.p90_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "max_ms": round(self.max_ms, 2),
            "errors": self.errors,
            "client": self.client,
            "rate_target": self.rate_target,
        }


class Loader:
    """Runs load passes from a separate process: wrk, or the Python client."""

    def __init__(self, client: str, connections: int, duration: float, workdir: Path) -> None:
        self.wrk = shutil.which("wrk") if client in ("auto", "wrk") else None
        if client == "wrk" and self.wrk is None:
            raise SystemExit("wrk is not installed (apt-get install wrk), use --client python")
        self.connections = connections
        self.duration = duration
        self.workdir = workdir
        self.threads = 1  # two cores: one load thread leaves the other to the server
        self.timelines: Path | None = None
        self._files = 0

    @property
    def name(self) -> str:
        return "wrk" if self.wrk else "python"

    def _write(self, records: list[bytes]) -> Path:
        self._files += 1
        prefix = self.workdir / f"records-{self._files}"
        write_records(prefix, records, self.threads)
        return prefix

    def full_speed(self, port: int, records: list[bytes]) -> Pass:
        """Send as fast as the server answers for the pass's duration."""
        prefix = self._write(records)
        if self.wrk:
            return self._wrk(port, prefix)
        return self._python(port, prefix, rate=None)

    def paced(self, port: int, records: list[bytes], rate: float) -> Pass:
        """Send ``rate`` requests/s, open loop, latency from when each request was due."""
        return self._python(port, self._write(records), rate=rate)

    def _wrk(self, port: int, prefix: Path) -> Pass:
        argv = [
            self.wrk or "wrk",
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{self.duration:g}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            f"http://{HOST}:{port}/",
        ]
        env = {**os.environ, "RECORDS": str(prefix)}
        output = subprocess.run(
            argv, env=env, capture_output=True, text=True, check=False, timeout=self.duration + 60
        )
        line = next(
            (row for row in output.stdout.splitlines() if row.startswith("WRK_JSON ")), None
        )
        if line is None:
            raise SystemExit(f"wrk failed: {output.stdout}\n{output.stderr}")
        data = json.loads(line.removeprefix("WRK_JSON "))
        errors = sum(
            data[name]
            for name in ("connect_errors", "read_errors", "write_errors", "status_errors")
        )
        return Pass(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            max_ms=data["max_us"] / 1000,
            errors=errors + data["timeouts"],
            wraps=data["wraps"],
            client="wrk",
        )

    def _python(self, port: int, prefix: Path, rate: float | None) -> Pass:
        argv = [
            sys.executable,
            str(LOADGEN),
            "--port",
            str(port),
            "--records",
            str(prefix),
            "--threads",
            str(self.threads),
            "--connections",
            str(self.connections * 2 if rate else self.connections),
            "--duration",
            str(self.duration),
        ]
        if rate:
            argv += ["--rate", f"{rate:.1f}"]
        if self.timelines is not None:
            self.timelines.mkdir(parents=True, exist_ok=True)
            argv += ["--timeline", str(self.timelines / f"{prefix.name}.txt")]
        output = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=self.duration + 120
        )
        line = next(
            (row for row in output.stdout.splitlines() if row.startswith("LOAD_JSON ")), None
        )
        if line is None:
            raise SystemExit(f"the load client failed: {output.stdout}\n{output.stderr}")
        data = json.loads(line.removeprefix("LOAD_JSON "))
        return Pass(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            max_ms=data["max_us"] / 1000,
            errors=data["status_errors"],
            wraps=data["wraps"],
            client="python",
            rate_target=rate,
            statuses=data["statuses"],
        )


class Store:
    """A read-only look at what the server stored: sanity counts and the calls awaiting a PIN."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(url)

    def counts(self) -> dict[str, int]:
        from sqlalchemy import text

        queries = {
            "voice_incoming": "SELECT count(*) FROM ivr_calls",
            "voice_pin": "SELECT count(*) FROM ivr_calls WHERE step >= 2",
            "email": "SELECT count(*) FROM email_messages",
            "chat": "SELECT count(*) FROM contacts WHERE channel = 'chat'",
        }
        with self.engine.connect() as connection:
            return {
                key: int(connection.execute(text(sql)).scalar_one()) for key, sql in queries.items()
            }

    def calls_awaiting_pin(self) -> list[tuple[str, str]]:
        """Return (CallSid, calling number) of calls answered but not yet past the PIN."""
        from sqlalchemy import text

        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT call_sid, from_number FROM ivr_calls WHERE step = 1")
            ).all()
        return [(str(sid), str(caller)) for sid, caller in rows]

    def dispose(self) -> None:
        self.engine.dispose()


def warm_up(port: int, batches: list[list[bytes]]) -> None:
    """Send a few requests of every kind so both workers have loaded and cached what they use."""
    from loadgen import send

    for batch in batches:
        for request in batch:
            status = send(HOST, port, request)
            if not 200 <= status < 300:
                raise SystemExit(f"warm-up request answered HTTP {status}: {request[:80]!r}")


@dataclass
class Measured:
    """One path on one database: full speed (beside a bare pass run just before), then paced."""

    full: Pass
    bare: Pass
    paced: Pass | None = None
    stored: int | None = None

    @property
    def ratio(self) -> float:
        return self.full.rps / self.bare.rps if self.bare.rps else 0.0


class Bench:
    """One benchmark run: the bare baseline beside the router on each database."""

    def __init__(self, args: argparse.Namespace, workdir: Path, log: IO[str]) -> None:
        self.args = args
        self.workdir = workdir
        self.log = log
        self.loader = Loader(args.client, args.connections, args.duration, workdir)
        self.loader.timelines = args.timelines
        self.keys = Secrets()
        self.smtp = SmtpSink(log)
        self.workers = args.workers
        self.bare_passes: list[Pass] = []
        self.bare_server: Gunicorn | None = None

    def env(self, url: str) -> dict[str, str]:
        return production_env(url, self.keys, self.smtp.port or None, self.workers)

    def workload(self, port: int) -> Workload:
        return Workload(
            f"{HOST}:{port}",
            PUBLIC_BASE_URL,
            self.keys.twilio_auth_token,
            self.keys.portal_jwt_secret,
            self.keys.inbound_mime_token,
        )

    def full_count(self) -> int:
        return int(RATE_CEILING * self.args.duration)

    # -- bare ----------------------------------------------------------------------------

    def start_bare(self) -> None:
        """Serve the baseline for the whole run (idle between its passes)."""
        self.bare_server = Gunicorn(
            "bare_app:create_app()",
            self.env("sqlite:///unused.sqlite3"),
            self.workers,
            self.log,
            cwd=BENCH,
        )
        self.bare_server.wait_ready()
        work = self.workload(self.bare_server.port)
        warm_up(self.bare_server.port, [work.incoming(work.new_calls(20))])

    def bare_pass(self) -> Pass:
        """Measure the baseline at full speed (run beside every path's own pass)."""
        assert self.bare_server is not None
        work = self.workload(self.bare_server.port)
        result = self.loader.full_speed(
            self.bare_server.port, work.incoming(work.new_calls(self.full_count()))
        )
        self.bare_passes.append(result)
        return result

    def bare_median(self) -> Pass:
        ordered = sorted(self.bare_passes, key=lambda p: p.rps)
        return ordered[len(ordered) // 2]

    def bare_paced(self) -> Pass:
        assert self.bare_server is not None
        work = self.workload(self.bare_server.port)
        rate = self.bare_median().rps / 2
        count = int(rate * self.args.duration * 1.1) + 50
        return self.loader.paced(self.bare_server.port, work.incoming(work.new_calls(count)), rate)

    def stop_bare(self) -> list[dict[str, float]]:
        if self.bare_server is None:
            return []
        memory = self.bare_server.worker_memory()
        self.bare_server.stop()
        return memory

    # -- the router ------------------------------------------------------------------------

    def router(self, url: str) -> tuple[dict[str, Measured], list[dict[str, float]], Store]:
        env = self.env(url)
        prepare_database(env, self.log)
        server = Gunicorn("app:create_app()", env, self.workers, self.log, cwd=ROOT)
        store = Store(url)
        try:
            server.wait_ready()
            port = server.port
            work = self.workload(port)
            warm_up(
                port,
                [
                    work.incoming(calls := work.new_calls(20)),
                    work.pin(calls),
                    work.emails(20),
                    work.chats(20),
                ],
            )
            results: dict[str, Measured] = {}
            builders = {
                "voice_incoming": lambda n: work.incoming(work.new_calls(n)),
                "voice_pin": lambda n: work.pin(store.calls_awaiting_pin()[:n]),
                "email": work.emails,
                "chat": work.chats,
            }
            builders = {key: build for key, build in builders.items() if key in self.args.paths}
            for key, build in builders.items():
                if key == "voice_pin":
                    self._enough_calls(port, work, store, self.full_count())
                records = build(self.full_count())
                bare = self.bare_pass()
                before = store.counts()[key]
                full = self.loader.full_speed(port, records)
                if full.wraps:
                    raise SystemExit(f"{key}: the pass ran out of requests; raise RATE_CEILING")
                results[key] = Measured(full, bare, stored=store.counts()[key] - before)
            for key, build in builders.items():
                rate = results[key].full.rps / 2
                count = int(rate * self.args.duration * 1.1) + 50
                if key == "voice_pin":
                    self._enough_calls(port, work, store, count)
                results[key].paced = self.loader.paced(port, build(count), rate)
            return results, server.worker_memory(), store
        finally:
            server.stop()

    def _enough_calls(self, port: int, work: Workload, store: Store, needed: int) -> None:
        """Answer more new calls (not measured) until ``needed`` calls await their PIN."""
        from loadgen import send

        missing = needed - len(store.calls_awaiting_pin())
        if missing <= 0:
            return
        top_up = self.loader.full_speed(port, work.incoming(work.new_calls(missing)))
        if top_up.errors:
            raise SystemExit(f"answering calls for the PIN pass failed ({top_up.errors} errors)")
        # A full-speed pass stops at its duration; answer any remainder one by one.
        remainder = max(0, needed - len(store.calls_awaiting_pin()))
        for request in work.incoming(work.new_calls(remainder)):
            send(HOST, port, request)

    # -- profile ---------------------------------------------------------------------------

    def profile(self, url: str, key: str, count: int = 300) -> str:
        """Profile ``count`` requests of one path in process (cProfile); return the top."""
        from app import create_app
        from config import Settings
        from router.runtime import EXTENSION_KEY

        settings = Settings(
            env="production",
            database_url=url,
            secret_key=self.keys.secret_key,
            pin_pepper=self.keys.pin_pepper,
            portal_jwt_secret=self.keys.portal_jwt_secret,
            twilio_auth_token=self.keys.twilio_auth_token,
            inbound_mime_token=self.keys.inbound_mime_token,
            public_base_url=PUBLIC_BASE_URL,
            mail_from="support@router.bench.invalid",
            smtp_host=HOST,
            smtp_port=self.smtp.port or 25,
            mail_transport="smtp" if self.smtp.available else "console",
            log_level="WARNING",
        ).validated()
        app = create_app(settings)
        client = app.test_client()
        work = self.workload(0)
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


def fmt_row(
    label: str, db: str, full: Pass, ratio: float | None, paced: Pass | None, target: float | None
) -> str:
    """Return one table row."""
    ratio_text = f"{ratio:6.0%}" if ratio is not None else f"{'':>6}"
    target_text = f">={target:.0%}" if target is not None else ""
    verdict = (
        ("ok" if ratio >= target else "MISSED") if target is not None and ratio is not None else ""
    )
    paced_text, p99_verdict = f"{'-':>7} {'':>7} {'':>8}", ""
    if paced is not None:
        paced_text = f"{paced.rps:7.0f} {paced.p50_ms:7.2f} {paced.p99_ms:8.2f}"
        p99_verdict = "ok" if paced.p99_ms < P99_TARGET_MS else "MISSED"
    return (
        f"{label:<28} {db:<10} {full.rps:8.0f} {full.p50_ms:7.2f} {full.p99_ms:8.2f} "
        f"{ratio_text} {target_text:>6} {verdict:<6} | {paced_text} {p99_verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per pass (1-30)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--workers",
        type=int,
        # The Procfile's own default; a deployment's WEB_CONCURRENCY wins, as it does there.
        default=int(os.environ.get("WEB_CONCURRENCY") or 2),
    )
    parser.add_argument(
        "--database",
        choices=("all", "sqlite", "postgresql"),
        default="all",
        help="postgresql needs TEST_DATABASE_URL",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--timelines", type=Path, help="keep each paced request's send time and latency here"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip profiling missed targets")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--paths",
        type=lambda text: [p.strip() for p in text.split(",") if p.strip()],
        default=list(TARGETS),
        help=f"comma-separated subset of {', '.join(TARGETS)}",
    )
    args = parser.parse_args()
    if not 1 <= args.duration <= 30:
        raise SystemExit("--duration must be between 1 and 30 seconds")
    if not 1 <= args.connections <= 64:
        raise SystemExit("--connections must be between 1 and 64")
    if not args.paths or set(args.paths) - set(TARGETS):
        raise SystemExit(f"--paths takes some of {', '.join(TARGETS)}")
    if not 1 <= args.workers <= 16:
        raise SystemExit("--workers (WEB_CONCURRENCY) must be between 1 and 16")

    # The harness's own switch, as in tests/conftest.py (not a service setting).
    postgres_base = os.environ.get("TEST_DATABASE_URL")
    databases = []
    if args.database in ("all", "sqlite"):
        databases.append("sqlite")
    if args.database in ("all", "postgresql"):
        if postgres_base:
            databases.append("postgresql")
        elif args.database == "postgresql":
            raise SystemExit("TEST_DATABASE_URL is not set")
        else:
            print("TEST_DATABASE_URL is not set: PostgreSQL skipped")

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    if load_before > BUSY_LOAD:
        print(
            f"warning: the machine is busy (load average {load_before:.1f} on {os.cpu_count()} "
            "CPUs); the figures will be lower and noisier than on an idle machine"
        )
    with tempfile.TemporaryDirectory(prefix="bench-http-") as directory:
        workdir = Path(directory)
        log_path = workdir / "server.log"
        with log_path.open("w") as log:
            bench = Bench(args, workdir, log)
            if bench.loader.wrk is None and args.client == "auto":
                print(
                    "wrk is not installed (Debian: apt-get install wrk): the full-speed passes use "
                    "the Python client, which tops out near the bare endpoint's rate"
                )
            if not bench.smtp.available:
                print("aiosmtpd is not installed: acknowledgements are logged, not sent by SMTP")
            try:
                report = run(bench, databases, postgres_base, workdir, started)
            except BaseException:
                log.flush()
                tail = "".join(log_path.read_text().splitlines(True)[-40:])
                print(f"--- last lines of the server log:\n{tail}")
                raise
            finally:
                bench.stop_bare()
                bench.smtp.stop()
    report["machine"]["load_average_before"] = round(load_before, 2)
    report["machine"]["load_average_after"] = round(os.getloadavg()[0], 2)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"figures written to {shown}")
    if args.strict and not report["targets_met"]:
        raise SystemExit(1)


def run(
    bench: Bench, databases: list[str], postgres_base: str | None, workdir: Path, started: float
) -> dict[str, Any]:
    """Measure everything; print the table; return the report."""
    args = bench.args
    print(
        f"gunicorn from the Procfile ({bench.workers} workers, APP_ENV=production) on "
        f"{os.cpu_count()} CPUs; full speed: {bench.loader.name}, {args.connections} connections, "
        f"{args.duration:g} s per pass; then an open-loop Python client at half of each path's "
        "own maximum",
        flush=True,
    )
    bench.start_bare()
    measured_by_db: dict[str, dict[str, Measured]] = {}
    memory_by_db: dict[str, list[dict[str, float]]] = {}
    profiles_by_db: dict[str, dict[str, str]] = {}
    for db in databases:
        if db == "sqlite":
            url = f"sqlite:///{workdir / 'router.sqlite3'}"
            measured, memory, store = bench.router(url)
            store.dispose()
            profiles = _profiles(bench, url, measured)
        else:
            assert postgres_base
            with postgres_schema(postgres_base) as url:
                measured, memory, store = bench.router(url)
                store.dispose()
                profiles = _profiles(bench, url, measured)
        measured_by_db[db], memory_by_db[db], profiles_by_db[db] = measured, memory, profiles
        print(f"  {db}: measured", flush=True)
    bare_paced = bench.bare_paced()
    bare_memory = bench.stop_bare()
    bare = bench.bare_median()

    all_met = bare_paced.p99_ms < P99_TARGET_MS
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "server": {"command": "Procfile web line (gunicorn), loopback", "workers": bench.workers},
        "load": {
            "full_speed_client": bench.loader.name,
            "paced_client": "python, open loop (latency from when each request was due)",
            "connections": args.connections,
            "seconds_per_pass": args.duration,
            "email_acknowledgements": "SMTP (local sink)" if bench.smtp.available else "logged",
        },
        "targets": {"throughput_ratio": TARGETS, "p99_ms_at_half_own_max": P99_TARGET_MS},
        "bare": {
            "label": LABELS["bare"],
            "full": bare.to_dict(),
            "full_passes_rps": [round(p.rps, 1) for p in bench.bare_passes],
            "paced": bare_paced.to_dict(),
            "worker_memory": bare_memory,
        },
        "databases": {},
    }
    rows = [fmt_row(LABELS["bare"], "-", bare, None, bare_paced, None)]
    for db, measured in measured_by_db.items():
        entry: dict[str, Any] = {
            "paths": {},
            "worker_memory": memory_by_db[db],
            "profiles": profiles_by_db[db],
        }
        for key, result in measured.items():
            meets_ratio = result.ratio >= TARGETS[key]
            meets_p99 = result.paced is not None and result.paced.p99_ms < P99_TARGET_MS
            all_met = all_met and meets_ratio and meets_p99
            entry["paths"][key] = {
                "label": LABELS[key],
                "full": result.full.to_dict(),
                "bare_beside": result.bare.to_dict(),
                "ratio_to_bare": round(result.ratio, 3),
                "target_ratio": TARGETS[key],
                "meets_throughput_target": meets_ratio,
                "paced": result.paced.to_dict() if result.paced else None,
                "meets_p99_target": meets_p99,
                "stored_during_full_pass": result.stored,
            }
            rows.append(
                fmt_row(LABELS[key], db, result.full, result.ratio, result.paced, TARGETS[key])
            )
        report["databases"][db] = entry
    report["targets_met"] = all_met
    report["elapsed_seconds"] = round(time.monotonic() - started, 1)

    print()
    print(f"{'':<28} {'':<10} {'--- full speed':-<51} | {'--- half of own max':-<26}")
    print(
        f"{'path':<28} {'database':<10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>8} "
        f"{'/bare':>6} {'target':>6} {'':<6} | {'req/s':>7} {'p50 ms':>7} {'p99 ms':>8} "
        f"(< {P99_TARGET_MS:.0f})"
    )
    for row in rows:
        print(row)
    print(
        f"(bare: median of {len(bench.bare_passes)} passes; each path's /bare is against the "
        "bare pass run just before it, as the machine's load varies)"
    )
    print()
    print("resident memory per worker, MiB (peak):")
    print(f"  {_memory_line('bare Flask', bare_memory)}")
    for db, memory in memory_by_db.items():
        print(f"  {_memory_line(f'router ({db})', memory)}")
    print(f"targets {'met' if all_met else 'NOT all met'}; {report['elapsed_seconds']:.0f} s")
    for db, profiles in profiles_by_db.items():
        for key, text in profiles.items():
            print(f"\n--- where the time goes: {LABELS[key]} on {db} (in process, cProfile)")
            print(text)
    return report


def _profiles(bench: Bench, url: str, measured: dict[str, Measured]) -> dict[str, str]:
    """Profile the paths that missed a target (unless --no-profile)."""
    profiles = {}
    for key, result in measured.items():
        ratio_ok = result.ratio >= TARGETS[key]
        p99_ok = result.paced is not None and result.paced.p99_ms < P99_TARGET_MS
        if (ratio_ok and p99_ok) or bench.args.no_profile:
            continue
        profiles[key] = bench.profile(url, key)
    return profiles


def _memory_line(label: str, memory: list[dict[str, float]]) -> str:
    shown = ", ".join(f"{m['rss_mib']:.1f} ({m['peak_rss_mib']:.1f})" for m in memory)
    return f"{label:<20} {shown}"


if __name__ == "__main__":
    main()
