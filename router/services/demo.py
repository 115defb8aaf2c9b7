"""Demo data for `make run`: a handful of accounts, admins, PINs and a staff user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from config.policy import Policy
from router.services.account_import import ImportSummary, import_accounts_csv
from router.services.bootstrap import seed_policy_defaults
from router.services.logins import create_staff, issue_token
from router.store.db import Database
from router.store.models import Account, StaffUser

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
    token = issue_token(db, DEMO_STAFF_EMAIL, name=DEMO_TOKEN_NAME, actor="demo-data", replace=True)
    return DemoCredentials(
        loaded=empty,
        pins=tuple((row[0], row[8], row[9]) for row in _DEMO_ROWS if row[9]),
        admins=tuple((row[0], row[2], row[8]) for row in _DEMO_ROWS),
        staff_email=DEMO_STAFF_EMAIL,
        staff_password=DEMO_STAFF_PASSWORD,
        staff_token=token.token,
        summary=summary,
    )


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
