"""bench_http's targets and what it reports: the terminal table and bench-results.json."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from http_load import Pass
from http_router import Bench, Measured

TARGETS = {"voice_incoming": 0.50, "voice_pin": 0.25, "email": 0.25, "chat": 0.25}
P99_TARGET_MS = 50.0
LABELS = {
    "bare": "bare Flask endpoint",
    "voice_incoming": "POST /voice/incoming",
    "voice_pin": "POST /voice/pin (right PIN)",
    "email": "POST /email/inbound/mime",
    "chat": "POST /chat/sessions",
}


@dataclass
class Figures:
    """What a run measured: the bare baseline, and each database's paths, memory and profiles."""

    bare: Pass
    bare_paced: Pass
    bare_memory: list[dict[str, float]]
    measured_by_db: dict[str, dict[str, Measured]]
    memory_by_db: dict[str, list[dict[str, float]]]
    profiles_by_db: dict[str, dict[str, str]]


def meets_targets(key: str, result: Measured) -> bool:
    """Return whether a path met both its throughput and its p99 target."""
    ratio_ok = result.ratio >= TARGETS[key]
    p99_ok = result.paced is not None and result.paced.p99_ms < P99_TARGET_MS
    return ratio_ok and p99_ok


def summarise(bench: Bench, figures: Figures, started: float) -> dict[str, Any]:
    """Print the table, memory and profiles; return the report for bench-results.json."""
    args = bench.args
    bare, bare_paced, bare_memory = figures.bare, figures.bare_paced, figures.bare_memory
    measured_by_db, memory_by_db = figures.measured_by_db, figures.memory_by_db
    profiles_by_db = figures.profiles_by_db

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


def _memory_line(label: str, memory: list[dict[str, float]]) -> str:
    shown = ", ".join(f"{m['rss_mib']:.1f} ({m['peak_rss_mib']:.1f})" for m in memory)
    return f"{label:<20} {shown}"
