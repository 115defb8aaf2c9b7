"""Time dispatch (issue 14): assignments a second, availability-to-offer latency, cost per offer.

Run as `.venv/bin/python bench/bench_dispatch.py` (or `make bench`). PostgreSQL when
TEST_DATABASE_URL is set (a throw-away schema is made and dropped); a small SQLite pass too
unless `--no-sqlite`. The default PostgreSQL run is the issue's full size: 500 agents, 20
queues, 10,000 then 100,000 waiting contacts. Options: `--agents`, `--queues`, `--sizes
10000,100000`, `--dispatchers 4`, `--seconds 10`, `--calls 100`.

The store holds the agents (each serves 3 of the queues, default capacities: 8 email, 3 chat;
all away) and the waiting contacts (70 % email, 30 % chat, mixed priorities and due times).
Three things are measured:

1. the cost of one dispatch_agent call (an agent just became available: offers up to their
   capacity) at 10k and at 100k waiting, single-threaded, in ms per call and per offer, with
   EXPLAIN ANALYZE of the dispatcher's own waiting-contacts query (captured as it runs) at both
   sizes -- the cost should stay flat as the waiting count grows tenfold;
2. throughput: N dispatcher threads, each with its own Database and its own share of the agents,
   loop: set_presence(available) (which dispatches), accept every offer, finish the work (the
   contacts resolved, the load given back: a plain UPDATE, there is no service for it yet), set
   away. Assignments (accepted offers) a second over the run;
3. in the same run, the latency from calling set_presence(available) to the commit of the
   agent's first offer (a session hook stamps it), p50 and p99.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, select, text, update
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import Settings
from router.core.domain import ContactStatus, Presence
from router.services import dispatch, reservations
from router.services.presence import set_presence, store_presence
from router.store import migrate
from router.store.db import Database
from router.store.models import Contact, Queue, StaffUser
from router.store.models.agents import CHANNELS, Agent, AgentSkill, Reservation
from tests.conftest import make_settings
from tests.postgres import scratch_schema

AGENTS = 500
QUEUES = 20
SIZES = (10_000, 100_000)
DISPATCHERS = 4
SECONDS = 10.0
CALLS = 30
SKILLS_PER_AGENT = 3
SQLITE = {"agents": 50, "sizes": (2_000,), "seconds": 4.0, "calls": 10}
TARGET_RATE = 500
TARGET_P99_MS = 50
BATCH = 50_000
START = datetime.now(UTC).replace(microsecond=0)
COLUMNS = (
    "channel",
    "external_id",
    "status",
    "account_id",
    "tier",
    "severity",
    "category",
    "queue_key",
    "priority",
    "tags",
    "received_at",
    "sla_policy",
    "sla_started_at",
    "warning_at",
    "due_at",
    "sla_state",
    "decision",
    "checklist",
    "created_at",
    "updated_at",
)


def queue_key(index: int) -> str:
    return f"bench-q{index:02d}"


def rows(first: int, count: int, queues: int) -> Iterator[tuple[object, ...]]:
    """Yield ``count`` waiting contacts numbered from ``first``: 70 % email, 30 % chat."""
    for index in range(first, first + count):
        received = START - timedelta(hours=6, seconds=index % 20_000)
        due = received + timedelta(hours=4 + index % 48) if index % 10 else None
        yield (
            "chat" if index % 10 < 3 else "email",
            f"<bench-dispatch-{index}@bench.example>",
            "waiting",
            None,
            "premium",
            "S3",
            "break-fix",
            queue_key(index % queues),
            (20, 40, 60, 80)[(index // queues) % 4],
            "[]",
            received,
            "premium" if due else None,
            received if due else None,
            due - timedelta(hours=1) if due else None,
            due,
            "ok" if due else "none",
            "{}",
            "{}",
            received,
            received,
        )


def load_contacts(db: Database, first: int, count: int, queues: int) -> None:
    """Add ``count`` waiting contacts: COPY on PostgreSQL, executemany on SQLite."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:
            raw = connection.connection.driver_connection
            statement = f"COPY contacts ({', '.join(COLUMNS)}) FROM STDIN"
            with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
                for row in rows(first, count, queues):
                    copy.write_row(row)
        # Vacuum now, as autovacuum would soon after a bulk load (not during a timed run).
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE contacts"))
        return
    batch: list[dict[str, object]] = []
    with db.engine.begin() as connection:
        for row in rows(first, count, queues):
            values = dict(zip(COLUMNS, row, strict=True))
            values.update(tags=[], decision={}, checklist={})
            batch.append(values)
            if len(batch) == BATCH:
                connection.execute(insert(Contact.__table__), batch)
                batch.clear()
        if batch:
            connection.execute(insert(Contact.__table__), batch)
        connection.execute(text("ANALYZE"))


def prepare(url: str, agents: int, queues: int) -> tuple[Database, list[int]]:
    """Migrate; add the queues and the agents (away, each serving SKILLS_PER_AGENT queues)."""
    migrate.upgrade(url)
    db = Database(url)
    with db.transaction() as session:
        session.add_all(
            Queue(key=queue_key(q), name=queue_key(q), team="bench", kind="human")
            for q in range(queues)
        )
        session.flush()
        session.execute(
            insert(StaffUser.__table__),
            [
                {"email": f"agent{a}@bench.example", "name": f"Agent {a}", "role": "viewer"}
                for a in range(agents)
            ],
        )
        ids = sorted(session.scalars(select(StaffUser.id)))
        session.execute(
            insert(Agent.__table__),
            [
                {
                    "staff_user_id": staff_id,
                    "languages": [],
                    "presence": Presence.AWAY.value,
                    "presence_changed_at": START,
                    "missed_offers": 0,
                    **{f"load_{c}": 0 for c in CHANNELS},
                    **{
                        f"capacity_{c}": getattr(Agent, f"capacity_{c}").default.arg
                        for c in CHANNELS
                    },
                }
                for staff_id in ids
            ],
        )
        session.execute(
            insert(AgentSkill.__table__),
            [
                {"agent_id": staff_id, "queue_key": queue_key((a + 7 * s) % queues), "level": 1}
                for a, staff_id in enumerate(ids)
                for s in range(SKILLS_PER_AGENT)
            ],
        )
    return db, ids


# --- the first-offer stamp: a Session hook notes when a transaction that stored an offer commits


_stamp = threading.local()


@event.listens_for(Session, "after_flush")
def _note_offer(session: Session, _context: object) -> None:
    if any(isinstance(obj, Reservation) for obj in session.new):
        session.info["bench_offer"] = True


@event.listens_for(Session, "after_commit")
def _stamp_offer(session: Session) -> None:
    if session.info.pop("bench_offer", False) and getattr(_stamp, "first", None) is None:
        _stamp.first = time.perf_counter()


def now() -> datetime:
    return datetime.now(UTC)


def finish_work(db: Database, settings: Settings, staff_id: int, offers: list[int]) -> int:
    """Accept the agent's offers, then resolve the contacts and give the load back; go away."""
    accepted = 0
    for reservation_id in offers:
        reservations.accept(db, reservation_id, staff_id, now())
        accepted += 1
    with db.transaction() as session:
        session.execute(
            update(Contact)
            .where(
                Contact.assigned_agent_id == staff_id,
                Contact.status == ContactStatus.ACCEPTED.value,
            )
            .values(status=ContactStatus.RESOLVED.value, resolved_at=now())
        )
        session.execute(
            update(Agent)
            .where(Agent.staff_user_id == staff_id)
            .values({f"load_{c}": 0 for c in CHANNELS})
        )
    set_presence(db, settings, staff_id, "away", reason=None, actor="bench", now=now())
    return accepted


# --- 1. cost per dispatch_agent call, and the plan of the waiting-contacts query


def capture_waiting_query(db: Database) -> dict[str, Any]:
    """Record the first waiting-contacts SELECT the dispatcher sends (SQL and parameters)."""
    captured: dict[str, Any] = {}

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        if (
            "sql" not in captured
            and "FROM contacts" in statement
            and "ORDER BY contacts.priority DESC" in (statement)
        ):
            captured["sql"], captured["params"] = statement, parameters

    event.listen(db.engine, "before_cursor_execute", before)
    captured["remove"] = lambda: event.remove(db.engine, "before_cursor_execute", before)
    return captured


def explain(db: Database, captured: dict[str, Any]) -> tuple[str, str]:
    """EXPLAIN ANALYZE the captured query; return (verdict, the plan's text)."""
    if "sql" not in captured:
        return "not captured", ""
    sqlite = db.engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(prefix + captured["sql"], captured["params"])
        plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
        raw.rollback()
    finally:
        raw.close()
    lowered = plan.lower()
    main = plan.splitlines()
    scan = "seq scan on contacts" in lowered or (
        "scan contacts" in lowered and "index" not in lowered
    )
    index = next((w for w in plan.replace("(", " ").split() if w.startswith("ix_contacts")), None)
    sort = "sort" in " ".join(main[:4]).lower() or "temp b-tree" in lowered
    verdict = ("SEQ SCAN" if scan else f"index {index}" if index else "no contacts index") + (
        " + sort" if sort else ""
    )
    return verdict, plan


@dataclass
class Cost:
    waiting: int
    calls: int = 0
    offers: int = 0
    seconds: float = 0.0
    verdict: str = ""
    plan: str = ""
    per_call: list[float] = field(default_factory=list)


def measure_cost(
    db: Database, settings: Settings, agents: list[int], waiting: int, calls: int
) -> Cost:
    """Time ``calls`` dispatch_agent calls, each for an agent who just became available."""
    cost = Cost(waiting)
    captured = capture_waiting_query(db)
    for staff_id in agents[:calls]:
        store_presence(db, staff_id, "available", reason=None, actor="bench", now=now())
        started = time.perf_counter()
        offers = dispatch.dispatch_agent(db, settings, staff_id, now())
        elapsed = time.perf_counter() - started
        cost.calls += 1
        cost.offers += len(offers)
        cost.seconds += elapsed
        cost.per_call.append(elapsed)
        if len(cost.per_call) == 1:
            captured["remove"]()
        finish_work(db, settings, staff_id, offers)
    cost.verdict, cost.plan = explain(db, captured)
    return cost


# --- 2 and 3. throughput with N dispatchers, and availability-to-offer latency


@dataclass
class Flow:
    dispatchers: int
    seconds: float = 0.0
    accepted: int = 0
    cycles: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def dispatcher(
    url: str, settings: Settings, agents: list[int], flow: Flow, stop: threading.Event
) -> None:
    """Cycle this thread's agents: available (offers), accept, finish, away."""
    db = Database(url)
    lock = threading.Lock()
    try:
        position = 0
        while not stop.is_set():
            staff_id = agents[position % len(agents)]
            position += 1
            _stamp.first = None
            started = time.perf_counter()
            set_presence(db, settings, staff_id, "available", reason=None, actor="bench", now=now())
            first = _stamp.first
            offers = open_offers(db, staff_id)
            accepted = finish_work(db, settings, staff_id, offers)
            with lock:
                flow.cycles += 1
                flow.accepted += accepted
                if first is not None:
                    flow.latencies.append(first - started)
    except Exception as error:  # reported in the table; the other dispatchers go on
        flow.errors.append(repr(error))
    finally:
        db.dispose()


def open_offers(db: Database, staff_id: int) -> list[int]:
    with db.session() as session:
        return list(
            session.scalars(
                select(Reservation.id).where(
                    Reservation.agent_id == staff_id, Reservation.status == "offered"
                )
            )
        )


def measure_flow(
    url: str, settings: Settings, agents: list[int], dispatchers: int, seconds: float
) -> Flow:
    flow = Flow(dispatchers)
    stop = threading.Event()
    shares = [agents[i::dispatchers] for i in range(dispatchers)]
    threads = [
        threading.Thread(target=dispatcher, args=(url, settings, share, flow, stop))
        for share in shares
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    flow.seconds = time.perf_counter() - started
    return flow


# --- the run


@dataclass
class Result:
    label: str
    agents: int
    queues: int
    setup: float
    costs: list[Cost]
    flow: Flow
    waiting_after: int


def run(
    label: str,
    url: str,
    options: argparse.Namespace,
    sizes: list[int],
    agents: int,
    seconds: float,
    calls: int,
) -> Result:
    started = time.perf_counter()
    db, ids = prepare(url, agents, options.queues)
    settings = make_settings(url)
    setup = time.perf_counter() - started
    costs = []
    loaded = 0
    for size in sizes:
        started = time.perf_counter()
        waiting = count_waiting(db)
        load_contacts(db, loaded, size - waiting, options.queues)
        loaded += size - waiting
        setup += time.perf_counter() - started
        costs.append(measure_cost(db, settings, ids, count_waiting(db), calls))
        print(
            f"  {label} {costs[-1].waiting:,} waiting: cost measured", file=sys.stderr, flush=True
        )
    flow = measure_flow(url, settings, ids, options.dispatchers, seconds)
    print(f"  {label} {options.dispatchers} dispatchers: done", file=sys.stderr, flush=True)
    waiting_after = count_waiting(db)
    db.dispose()
    return Result(label, agents, options.queues, setup, costs, flow, waiting_after)


def count_waiting(db: Database) -> int:
    with db.session() as session:
        return int(
            session.scalar(text("SELECT count(*) FROM contacts WHERE status = 'waiting'")) or 0
        )


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def print_results(results: list[Result], show_plans: bool) -> None:
    header = (
        f"{'database':<10} {'agents':>6} {'waiting':>8} {'calls':>5} {'offers':>6} "
        f"{'ms/call':>8} {'ms/offer':>8} {'p99 call ms':>11}  waiting-contacts query"
    )
    print("\nCost of dispatch_agent (one agent becomes available; target: flat)")
    print(header)
    print("-" * len(header))
    for result in results:
        for cost in result.costs:
            print(
                f"{result.label:<10} {result.agents:>6} {cost.waiting:>8,} {cost.calls:>5} "
                f"{cost.offers:>6} {cost.seconds / max(cost.calls, 1) * 1000:>8.1f} "
                f"{cost.seconds / max(cost.offers, 1) * 1000:>8.2f} "
                f"{percentile(cost.per_call, 0.99) * 1000:>11.1f}  {cost.verdict}"
            )
    header = (
        f"{'database':<10} {'disp.':>5} {'seconds':>7} {'accepted':>8} {'assign/s':>8} "
        f"{'(target)':>8} {'p50 ms':>7} {'p99 ms':>7} {'(target)':>8} {'waiting after':>13}"
    )
    print("\nThroughput and availability-to-offer latency")
    print(header)
    print("-" * len(header))
    for result in results:
        flow = result.flow
        rate = flow.accepted / flow.seconds if flow.seconds else 0.0
        p50 = percentile(flow.latencies, 0.50) * 1000
        p99 = percentile(flow.latencies, 0.99) * 1000
        print(
            f"{result.label:<10} {flow.dispatchers:>5} {flow.seconds:>7.1f} {flow.accepted:>8,} "
            f"{rate:>8.0f} {'>=' + str(TARGET_RATE):>8} {p50:>7.1f} {p99:>7.1f} "
            f"{'<=' + str(TARGET_P99_MS):>8} {result.waiting_after:>13,}"
        )
        for error in flow.errors:
            print(f"  dispatcher error: {error}")
    if show_plans:
        for result in results:
            for cost in result.costs:
                print(f"\n{result.label}, {cost.waiting:,} waiting: the waiting-contacts query")
                print(cost.plan)


def main() -> None:
    """Run the benchmark on PostgreSQL (when configured) and a small SQLite pass."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--agents", type=int, default=AGENTS)
    parser.add_argument("--queues", type=int, default=QUEUES)
    parser.add_argument("--dispatchers", type=int, default=DISPATCHERS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--plans", action="store_true", help="print the EXPLAIN ANALYZE output")
    options = parser.parse_args()
    sizes = sorted(int(size) for size in options.sizes.split(","))
    results: list[Result] = []
    if not options.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as directory:
            url = f"sqlite:///{Path(directory) / 'dispatch.sqlite3'}"
            results.append(
                run(
                    "sqlite",
                    url,
                    options,
                    list(SQLITE["sizes"]),
                    SQLITE["agents"],
                    SQLITE["seconds"],
                    SQLITE["calls"],
                )
            )
    # The test suite's switch for PostgreSQL, read here the same way (the bench is a tool).
    postgres = os.environ.get("TEST_DATABASE_URL")
    if postgres:
        with scratch_schema(postgres, "bench") as url:
            results.append(
                run(
                    "postgresql",
                    url,
                    options,
                    sizes,
                    options.agents,
                    options.seconds,
                    options.calls,
                )
            )
    else:
        print("TEST_DATABASE_URL is not set: PostgreSQL skipped", file=sys.stderr)
    print_results(results, options.plans)


if __name__ == "__main__":
    main()
