"""Start the router as production does (gunicorn with the Procfile's web settings) for bench_http.

What this gives the benchmark: a production environment (APP_ENV=production, generated strong
secrets), a database migrated and loaded with the demo data through the same CLI a deployment
uses, a local SMTP sink for the acknowledgements, and gunicorn processes bound to loopback whose
workers' resident memory can be read.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"  # loopback only
PUBLIC_BASE_URL = "https://support-router.bench.invalid"
MAIL_FROM = "support@router.bench.invalid"
# The receiving MTA the benchmark plays: its Authentication-Results verify the demo admin.
TRUSTED_RECEIVING_HOST = "mx.router.bench.invalid"


def free_port() -> int:
    """Return a TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def procfile_web(app_spec: str, port: int, workers: int) -> list[str]:
    """Return the Procfile's web command for ``app_spec``, bound to loopback on ``port``."""
    line = next(
        entry.split(":", 1)[1]
        for entry in (ROOT / "Procfile").read_text().splitlines()
        if entry.startswith("web:")
    )
    values = {"PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    # ${NAME:-default} as a shell would expand it, with the benchmark's values.
    line = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: values.get(m.group(1), m.group(2)), line)
    argv = shlex.split(line)
    if argv[0] != "gunicorn" or argv[1] != "app:create_app()":
        raise SystemExit(f"unexpected Procfile web line: {line.strip()}")
    argv[0] = str(BIN / "gunicorn")
    argv[1] = app_spec
    bind = argv.index("--bind") + 1
    argv[bind] = f"{HOST}:{port}"  # the Procfile binds 0.0.0.0; the benchmark stays on loopback
    if "--config" in argv:  # relative to the repository, where the Procfile runs
        config = argv.index("--config") + 1
        argv[config] = str(ROOT / argv[config])
    return argv


@dataclass
class Secrets:
    """Strong secrets generated for one benchmark run."""

    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    pin_pepper: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    portal_jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    twilio_auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    inbound_mime_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))


def production_env(
    database_url: str, keys: Secrets, smtp_port: int | None, workers: int
) -> dict[str, str]:
    """Return the environment a production deployment would give the web process."""
    env = {
        name: value
        for name, value in os.environ.items()
        # Nothing of the caller's own configuration leaks in (make exports APP_ENV, etc.).
        if name in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONHASHSEED")
    }
    env.update(
        APP_ENV="production",
        DATABASE_URL=database_url,
        SECRET_KEY=keys.secret_key,
        PIN_PEPPER=keys.pin_pepper,
        PORTAL_JWT_SECRET=keys.portal_jwt_secret,
        TWILIO_AUTH_TOKEN=keys.twilio_auth_token,
        INBOUND_MIME_TOKEN=keys.inbound_mime_token,
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        MAIL_FROM=MAIL_FROM,
        EMAIL_TRUSTED_AUTHSERV_IDS=TRUSTED_RECEIVING_HOST,
        WEB_CONCURRENCY=str(workers),
        # The benchmark measures what a PIN check costs, so the global PIN-check rate (a
        # deployment's default is one a second) is set out of its way.
        PIN_GLOBAL_RATE_PER_MINUTE="60000",
        PIN_GLOBAL_BURST="10000",
        PYTHONDONTWRITEBYTECODE="1",
    )
    if smtp_port is not None:
        env.update(SMTP_HOST=HOST, SMTP_PORT=str(smtp_port))
    else:
        env.update(MAIL_TRANSPORT="console")
    return env


def prepare_database(env: Mapping[str, str], log: IO[str]) -> None:
    """Migrate as a deployment's release phase does, then load the demo data through the CLI."""
    for command in (["db", "upgrade"], ["demo-data"]):
        # demo-data refuses APP_ENV=production (its password, PINs and token are published);
        # the benchmark wants exactly those, with the production secrets (the PIN pepper).
        run_env = {**env, "APP_ENV": "development"} if command == ["demo-data"] else dict(env)
        result = subprocess.run(
            [str(BIN / "flask"), "--app", "app", *command],
            cwd=ROOT,
            env=run_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"flask {' '.join(command)} failed; see {log.name}")


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """Yield a URL on a fresh schema of ``base_url`` (dropped afterwards)."""
    from tests.postgres import scratch_schema

    with scratch_schema(base_url, "bench") as url:
        yield url


class Gunicorn:
    """One gunicorn master (and its workers) started from the Procfile's web line."""

    def __init__(
        self, app_spec: str, env: Mapping[str, str], workers: int, log: IO[str], *, cwd: Path
    ) -> None:
        self.port = free_port()
        self.workers = workers
        self.argv = procfile_web(app_spec, self.port, workers)
        self.process = subprocess.Popen(
            self.argv, cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
        self.log = log

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every worker answers /healthz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"gunicorn exited ({self.process.returncode}); see {self.log.name}"
                )
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=2):
                    if len(self.worker_pids()) >= self.workers:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"gunicorn did not become ready in {timeout:.0f} s; see {self.log.name}")

    def worker_pids(self) -> list[int]:
        """Return the pids of the master's worker processes."""
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children")
        if children.exists():
            return [int(pid) for pid in children.read_text().split()]
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                found.append(int(stat.parent.name))
        return found

    def worker_memory(self) -> list[dict[str, float]]:
        """Return each worker's resident and peak resident memory, in MiB."""
        memory = []
        for pid in self.worker_pids():
            status = _proc_status(pid)
            if status:
                memory.append(
                    {
                        "pid": pid,
                        "rss_mib": status.get("VmRSS", 0) / 1024,
                        "peak_rss_mib": status.get("VmHWM", 0) / 1024,
                    }
                )
        return memory

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), then kill if need be."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _proc_status(pid: int) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    values: dict[str, int] = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])  # kB
    return values


class SmtpSink:
    """A local SMTP server that accepts and discards the router's acknowledgements."""

    def __init__(self, log: IO[str]) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        try:
            import aiosmtpd  # noqa: F401  (installed with the test extras `make bench` uses)
        except ImportError:
            self.port = 0
            return
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"{HOST}:{self.port}",
                "-c",
                "aiosmtpd.handlers.Sink",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("the SMTP sink did not start")

    @property
    def available(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
