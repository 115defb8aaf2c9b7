"""`flask --app app scheduler`: the scheduler process (the Procfile's `clock`)."""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType

import click
from flask.cli import with_appcontext

from router.mailer import mailer_from_settings
from router.runtime import runtime
from router.scheduler.process import LockBusy, SchedulerProcess


@click.command("scheduler")
@click.option(
    "--once",
    is_flag=True,
    help="Run every job once now and exit (fails if another scheduler is active).",
)
@with_appcontext
def scheduler_command(once: bool) -> None:
    """Run the scheduler: SLA sweeps, notifications, trial and lock-out expiry, purges."""
    rt = runtime()
    try:
        process = SchedulerProcess(
            rt.settings, rt.policy, rt.db, mailer_from_settings(rt.settings), runtime=rt
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if once:
        try:
            results = process.run_once()
        except LockBusy as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(json.dumps(results, indent=2, sort_keys=True))
        if any("error" in result for result in results.values()):
            raise SystemExit(1)
        return
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # SIGTERM is how platforms stop a process: finish running jobs, release the lock, exit.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    process.run(stop)
