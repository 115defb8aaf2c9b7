"""Run bench_http's passes: the bare baseline beside the router on one database at a time."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import http_profile
from http_load import Loader, Pass, warm_up
from server import (
    BENCH,
    HOST,
    PUBLIC_BASE_URL,
    ROOT,
    Gunicorn,
    Secrets,
    SmtpSink,
    prepare_database,
    production_env,
)
from workload import Workload

# Requests built per full-speed pass: more than any path here can answer in the pass (wraps
# are detected and the pass is rerun with more).
RATE_CEILING = 2500


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

    def profile(self, url: str, key: str) -> str:
        """Profile requests of one path in process (cProfile); return the top."""
        return http_profile.profile(url, key, self.keys, self.smtp, self.workload(0))
