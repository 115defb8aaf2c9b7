"""SQL statements per voice webhook stay few and do not grow with the data (no scans)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import insert

from router.core.domain import Channel
from router.core.pins import pin_hash
from router.store.db import Database
from router.store.models import Account, Contact, PinAttempt, SupportPin
from tests.conftest import TEST_PEPPER
from tests.functional.voice.conftest import ACME_PIN, NOW, WRONG_PIN, Call, StatementCounter

# Upper bounds per webhook. The topic step includes intake (identify, route, store, timeline);
# the wait and fallback URLs never touch the database.
BOUNDS = {
    "incoming": 3,
    # Each PIN check takes a token from the shared bucket: one statement once the bucket exists.
    "pin (wrong)": 9,
    "pin (right)": 7,
    "severity": 2,
    "topic + intake": 18,
    "wait": 0,
    "queue result": 8,  # bridged: the contact is accepted and its first response recorded
    "status": 3,
    "fallback": 0,
}


def play(
    new_call: Callable[..., Call], statements: StatementCounter, caller: str
) -> dict[str, int]:
    """Play one call and return the statements each webhook ran."""
    call = new_call(caller=caller)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("incoming", call.start),
        ("pin (wrong)", lambda: call.press(WRONG_PIN)),
        ("pin (right)", lambda: call.press(ACME_PIN)),
        ("severity", lambda: call.press("1")),
        ("topic + intake", lambda: call.press("5")),
        ("wait", lambda: call.post("/voice/wait?lang=en-US", QueuePosition="2", AvgQueueTime="90")),
        (
            "queue result",
            lambda: call.post("/voice/queue-result", QueueResult="bridged", QueueTime="40"),
        ),
        ("status", lambda: call.post("/voice/status", CallStatus="completed", CallDuration="90")),
        ("fallback", lambda: call.post("/voice/fallback")),
    ]
    counts: dict[str, int] = {}
    for name, step in steps:
        statements.reset()
        step()
        assert call.last is not None and call.last.status_code in (200, 204), name
        counts[name] = statements.count
    return counts


def grow(db: Database, size: int) -> None:
    """Add many accounts with PINs, other callers' PIN attempts and other contacts."""
    with db.transaction() as session:
        session.execute(
            insert(Account),
            [
                {
                    "id": f"bulk-{i}",
                    "name": f"Bulk {i}",
                    "tier": "premium" if i % 2 else "standard",
                    "region": "us",
                    "country": "US",
                    "timezone": "America/New_York",
                    "attributes": {},
                }
                for i in range(size)
            ],
        )
        session.execute(
            insert(SupportPin),
            [
                {"account_id": f"bulk-{i}", "pin_hash": pin_hash(TEST_PEPPER, f"{700000 + i * 7}")}
                for i in range(size)
            ],
        )
        session.execute(
            insert(PinAttempt),
            [
                {
                    "calling_number": f"+1202555{i % 50:04d}",
                    "call_sid": f"CAbulk{i}",
                    "succeeded": i % 3 == 0,
                    "at": NOW - timedelta(minutes=i % 90),
                }
                for i in range(size)
            ],
        )
        session.execute(
            insert(Contact),
            [
                {
                    "channel": Channel.EMAIL.value,
                    "external_id": f"<bulk-{i}@example.com>",
                    "status": "waiting",
                    "received_at": NOW - timedelta(minutes=i),
                    "severity": "S3",
                    "category": "break-fix",
                    "priority": 30,
                    "tags": [],
                    "decision": {},
                    "checklist": {},
                    "sla_state": "none",
                    "account_id": f"bulk-{i}",
                }
                for i in range(size)
            ],
        )


def test_statements_per_voice_webhook_are_bounded(
    new_call: Callable[..., Call], statements: StatementCounter, vdb: Database
) -> None:
    first = play(new_call, statements, "+447700900100")  # compiles and caches the rule set
    for name, count in first.items():
        # The very first PIN check also creates the shared bucket (two statements, once).
        assert count <= BOUNDS[name] + (2 if name.startswith("pin") else 0), (name, count)
    small = play(new_call, statements, "+447700900101")
    for name, count in small.items():
        assert count <= BOUNDS[name], (name, count)
    grow(vdb, 400)
    large = play(new_call, statements, "+447700900102")
    assert large == small  # nothing scales with accounts, PINs, attempts or contacts
