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
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_report import TARGETS, Figures, meets_targets, summarise
from http_router import Bench, Measured
from server import ROOT, postgres_schema

RESULTS = ROOT / "bench-results.json"
BUSY_LOAD = 0.5  # 1-minute load average above which other work is competing for the CPUs


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
    figures = Figures(bare, bare_paced, bare_memory, measured_by_db, memory_by_db, profiles_by_db)
    return summarise(bench, figures, started)


def _profiles(bench: Bench, url: str, measured: dict[str, Measured]) -> dict[str, str]:
    """Profile the paths that missed a target (unless --no-profile)."""
    profiles = {}
    for key, result in measured.items():
        if meets_targets(key, result) or bench.args.no_profile:
            continue
        profiles[key] = bench.profile(url, key)
    return profiles


if __name__ == "__main__":
    main()
