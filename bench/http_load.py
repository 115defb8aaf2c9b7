"""Load passes for bench_http, from a separate process: wrk, or the Python client (loadgen.py).

Both report one JSON line; a pass is what one of them measured against one port.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server import BENCH, HOST
from workload import write_records

LOADGEN = BENCH / "loadgen.py"
LUA = BENCH / "replay.lua"


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


def warm_up(port: int, batches: list[list[bytes]]) -> None:
    """Send a few requests of every kind so both workers have loaded and cached what they use."""
    from loadgen import send

    for batch in batches:
        for request in batch:
            status = send(HOST, port, request)
            if not 200 <= status < 300:
                raise SystemExit(f"warm-up request answered HTTP {status}: {request[:80]!r}")
