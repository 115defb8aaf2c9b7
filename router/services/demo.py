"""Demo data for `make run`: a handful of accounts, admins, PINs, a staff user and agents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from sqlalchemy import func, select, update

from config.policy import Policy
from router.services.account_import import ImportSummary, import_accounts_csv
from router.services.agents import create_agent
from router.services.bootstrap import seed_policy_defaults
from router.services.logins import create_staff, issue_token
from router.services.presence import store_presence
from router.store.db import Database
from router.store.models import Account, StaffUser
from router.store.models.agents import Agent

DEMO_STAFF_EMAIL = "ops@support.example"
DEMO_STAFF_PASSWORD = "demo-password-change-me"
DEMO_TOKEN_NAME = "demo (make run)"

# (account, name, tier, trial days ago, partner?, managed by, region, prof. services,
#  admin email, PIN) -- PINs are public demo values, loaded only by this command.
_DEMO_ROWS = (
    (
        "acme",
        "Acme Corp",
        "premium",
        None,
        False,
        None,
        "us",
        False,
        "alice@acme.example",
        "482913",
    ),
    ("acme", "Acme Corp", "premium", None, False, None, "us", False, "amir@acme.example", None),
    (
        "hooli",
        "Hooli India",
        "premium",
        None,
        False,
        None,
        "in",
        True,
        "priya@hooli.example",
        "730561",
    ),
    (
        "globex",
        "Globex Israel",
        "standard",
        None,
        False,
        None,
        "il",
        False,
        "bob@globex.example",
        None,
    ),
    ("initech", "Initech", "trial", 5, False, None, "gb", False, "carol@initech.example", None),
    ("umbrella", "Umbrella", "trial", 45, False, None, "fr", False, "dave@umbrella.example", None),
    (
        "northwind",
        "Northwind MSP",
        "premium",
        None,
        True,
        None,
        "au",
        False,
        "erin@northwind.example",
        "615274",
    ),
    (
        "contoso",
        "Contoso",
        "standard",
        None,
        False,
        "northwind",
        "au",
        False,
        "frank@contoso.example",
        None,
    ),
)


# Agents across teams, languages and regions: (email, name, role, languages, skills as
# (queue, level), voice endpoint, presence). They log in with the demo staff password.
_DEMO_AGENTS: tuple[
    tuple[str, str, str, tuple[str, ...], tuple[tuple[str, int], ...], str | None, str], ...
] = (
    (
        DEMO_STAFF_EMAIL,
        "Demo Support Ops",
        "admin",
        ("en",),
        (("escalations", 3), ("cse-general", 2)),
        "client:ops",
        "offline",
    ),
    (
        "noa.levi@support.example",
        "Noa Levi (Tel Aviv)",
        "viewer",
        ("he", "en"),
        (("cse-windows", 3), ("cse-identity", 2), ("standard-chat", 1)),
        "+97235551234",
        "available",
    ),
    (
        "raj.patel@support.example",
        "Raj Patel (Bengaluru)",
        "viewer",
        ("en", "hi"),
        (("cse-linux", 3), ("cse-windows", 2), ("professional-services", 2)),
        "+919876543210",
        "available",
    ),
    (
        "claire.martin@support.example",
        "Claire Martin (Paris)",
        "viewer",
        ("fr", "en"),
        (("cse-mac", 3), ("trial-chat", 2), ("cse-general", 1)),
        "sip:claire@pbx.support.example",
        "away",
    ),
    (
        "sam.taylor@support.example",
        "Sam Taylor (Sydney)",
        "viewer",
        ("en",),
        (("cse-devices", 2), ("cse-directory", 2), ("csm", 1), ("account-managers", 1)),
        "client:sam.taylor",
        "available",
    ),
    (
        "jordan.lee@support.example",
        "Jordan Lee (New York, supervisor)",
        "editor",
        ("en", "es"),
        (("escalations", 3), ("cse-general", 2), ("standard-chat", 2)),
        "+12025550143",
        "offline",
    ),
)


@dataclass(frozen=True)
class DemoCredentials:
    """What `make run` prints so a newcomer can try every channel."""

    loaded: bool
    pins: tuple[tuple[str, str, str], ...]  # (account, admin email, PIN)
    admins: tuple[tuple[str, str, str], ...]  # (account, tier, admin email)
    staff_email: str
    staff_password: str
    staff_token: str
    summary: ImportSummary | None
    agents: tuple[tuple[str, str, str], ...] = ()  # (email, role, presence)


def load_demo_data(db: Database, policy: Policy, pepper: str, now: datetime) -> DemoCredentials:
    """Load demo data into an empty store (idempotent) and issue a fresh demo staff token."""
    seed_policy_defaults(db, policy, actor="demo-data")
    with db.session() as session:
        empty = session.scalar(select(func.count()).select_from(Account)) == 0
        has_staff = session.scalar(select(StaffUser.id).where(StaffUser.email == DEMO_STAFF_EMAIL))
    summary = None
    if empty:
        summary = import_accounts_csv(db, policy, pepper, _demo_csv(now), actor="demo-data")
    if has_staff is None:
        create_staff(
            db,
            DEMO_STAFF_EMAIL,
            "admin",
            name="Demo Support Ops",
            password=DEMO_STAFF_PASSWORD,
            actor="demo-data",
        )
    _load_agents(db, now)
    token = issue_token(db, DEMO_STAFF_EMAIL, name=DEMO_TOKEN_NAME, actor="demo-data", replace=True)
    return DemoCredentials(
        loaded=empty,
        pins=tuple((row[0], row[8], row[9]) for row in _DEMO_ROWS if row[9]),
        admins=tuple((row[0], row[2], row[8]) for row in _DEMO_ROWS),
        staff_email=DEMO_STAFF_EMAIL,
        staff_password=DEMO_STAFF_PASSWORD,
        staff_token=token.token,
        summary=summary,
        agents=tuple((row[0], row[2], row[6]) for row in _DEMO_AGENTS),
    )


@cache
def _demo_password_hash() -> str:
    """Return one hash of the published demo password for every demo agent."""
    # Hashing is slow on purpose (about 0.2 s); tests load the demo data many times over.
    return PasswordHasher().hash(DEMO_STAFF_PASSWORD)


def _load_agents(db: Database, now: datetime) -> None:
    """Add the demo agents that are missing (a second run changes nothing)."""
    for email, name, role, languages, skills, endpoint, presence in _DEMO_AGENTS:
        with db.session() as session:
            staff_id = session.scalar(select(StaffUser.id).where(StaffUser.email == email))
            has_agent = staff_id is not None and session.get(Agent, staff_id) is not None
        if staff_id is None:
            user = create_staff(db, email, role, name=name, actor="demo-data")
            staff_id = user.id
            with db.transaction() as session:
                session.execute(
                    update(StaffUser)
                    .where(StaffUser.id == staff_id)
                    .values(password_hash=_demo_password_hash())
                )
        if has_agent:
            continue
        profile = {
            "languages": list(languages),
            "skills": [{"queue": queue, "level": level} for queue, level in skills],
            "voice_endpoint": endpoint,
        }
        create_agent(db, staff_id, profile, actor="demo-data", now=now)
        store_presence(db, staff_id, presence, reason="demo", actor="demo-data", now=now)


def _demo_csv(now: datetime) -> str:
    lines = [
        "account_id,account_name,tier,trial_started_at,is_partner,partner_id,region,"
        "professional_services,csm_name,csm_email,admin_email,pin"
    ]
    for account, name, tier, days_ago, partner, managed_by, region, ps, email, pin in _DEMO_ROWS:
        trial = (now - timedelta(days=days_ago)).isoformat() if days_ago is not None else ""
        lines.append(
            ",".join(
                [
                    account,
                    name,
                    tier,
                    trial,
                    "yes" if partner else "no",
                    managed_by or "",
                    region,
                    "yes" if ps else "no",
                    "Casey CSM",
                    "casey.csm@support.example",
                    email,
                    pin or "",
                ]
            )
        )
    return "\n".join(lines) + "\n"
