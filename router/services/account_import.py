"""The CSV import of accounts, their administrators and support PINs: all rows or none."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.policy import Policy
from router.core.domain import Tier
from router.core.pins import PinError, pin_hash, validate_pin
from router.core.validation import check_account_id, normalise_email, parse_bool, parse_instant
from router.services import audit
from router.store.db import Database
from router.store.models import Account, Admin, SupportPin

CSV_COLUMNS = (
    "account_id",
    "account_name",
    "tier",
    "trial_started_at",
    "is_partner",
    "partner_id",
    "region",
    "country",
    "subdivision",
    "timezone",
    "professional_services",
    "csm_name",
    "csm_email",
    "account_manager_name",
    "account_manager_email",
    "admin_email",
    "admin_name",
    "admin_active",
    "pin",
)
REQUIRED_COLUMNS = ("account_id", "account_name", "tier")
ACCOUNT_FIELDS = (
    "name",
    "tier",
    "trial_started_at",
    "is_partner",
    "partner_id",
    "region",
    "country",
    "subdivision",
    "timezone",
    "professional_services",
    "csm_name",
    "csm_email",
    "account_manager_name",
    "account_manager_email",
)
_SUPPORTED_COUNTRIES = holidays.list_supported_countries()


class CsvImportError(ValueError):
    """The file has bad rows; nothing from it was imported."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass
class ImportSummary:
    """What an import created or changed."""

    accounts_created: int = 0
    accounts_updated: int = 0
    admins_created: int = 0
    admins_updated: int = 0
    pins_set: int = 0


@dataclass
class _AccountRow:
    line: int
    values: dict[str, Any]
    admins: list[tuple[int, str, str | None, bool, str | None]] = field(default_factory=list)


def account_snapshot(account: Account) -> dict[str, Any]:
    """Return an account's fields as JSON-ready data (for the audit log)."""
    data: dict[str, Any] = {"id": account.id}
    for name in ACCOUNT_FIELDS:
        value = getattr(account, name)
        data[name] = value.isoformat() if isinstance(value, datetime) else value
    return data


def import_accounts_csv(
    db: Database, policy: Policy, pepper: str, text: str, *, actor: str = "cli"
) -> ImportSummary:
    """Import accounts, admins and PINs from CSV text: all rows or none."""
    errors: list[str] = []
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in (reader.fieldnames or [])]
    unknown = [name for name in header if name not in CSV_COLUMNS]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if not header:
        raise CsvImportError(["line 1: the file is empty; expected a header row"])
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        raise CsvImportError(
            [f"line 1: {'; '.join(problems)}; columns are: {', '.join(CSV_COLUMNS)}"]
        )

    accounts: dict[str, _AccountRow] = {}
    pins_in_file: dict[str, int] = {}
    emails_in_file: dict[str, tuple[int, str]] = {}
    for raw in reader:
        line = reader.line_num
        row = {key.strip(): (value or "").strip() for key, value in raw.items() if key}
        if None in raw:
            errors.append(f"line {line}: more fields than columns in the header")
            continue
        try:
            values = _parse_account(row, policy)
            admin = _parse_admin(row)
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        existing = accounts.get(values["id"])
        if existing is None:
            existing = accounts[values["id"]] = _AccountRow(line=line, values=values)
        elif existing.values != values:
            differing = sorted(k for k in values if values[k] != existing.values.get(k))
            errors.append(
                f"line {line}: account {values['id']} differs from line {existing.line} "
                f"in {', '.join(differing)}"
            )
            continue
        if admin is None:
            continue
        email, name, active, pin = admin
        if email in emails_in_file and emails_in_file[email][1] != values["id"]:
            errors.append(
                f"line {line}: admin {email} is also listed for another account "
                f"(line {emails_in_file[email][0]})"
            )
            continue
        emails_in_file[email] = (line, values["id"])
        if pin is not None:
            if pin in pins_in_file:
                errors.append(f"line {line}: PIN repeats the one on line {pins_in_file[pin]}")
                continue
            pins_in_file[pin] = line
        existing.admins.append((line, email, name, active, pin))

    with db.transaction() as session:
        errors.extend(_check_against_store(session, accounts, pepper))
        if errors:
            # Raising inside the transaction rolls back anything flushed so far.
            raise CsvImportError(errors)
        summary = _apply(session, accounts, pepper, actor)
    return summary


def parse_account_row(row: dict[str, str], policy: Policy) -> dict[str, Any]:
    """Validate one account's fields given as CSV-style strings; raise ValueError saying why."""
    return _parse_account(row, policy)


def _parse_account(row: dict[str, str], policy: Policy) -> dict[str, Any]:
    account_id = check_account_id(row.get("account_id", ""))
    name = row.get("account_name", "")
    if not name:
        raise ValueError("account_name is empty")
    try:
        tier = Tier(row.get("tier", "").lower())
    except ValueError:
        raise ValueError(
            f"tier {row.get('tier')!r} is not one of {', '.join(t.value for t in Tier)}"
        ) from None
    trial_raw = row.get("trial_started_at", "")
    trial_started_at = None
    if trial_raw:
        try:
            trial_started_at = parse_instant(trial_raw)
        except ValueError as exc:
            raise ValueError(f"trial_started_at {exc}") from None
    if tier is Tier.TRIAL and trial_started_at is None:
        raise ValueError("a trial account needs trial_started_at")
    region_key = row.get("region", "").lower() or None
    region = None
    if region_key is not None:
        region = policy.regions.get(region_key)
        if region is None:
            raise ValueError(
                f"unknown region {region_key!r}; use one of {', '.join(policy.regions)}"
            )
    country = row.get("country", "").upper() or (region.country if region else "")
    if not country:
        raise ValueError("country is empty (give a country or a region)")
    if country not in _SUPPORTED_COUNTRIES:
        raise ValueError(f"unknown country code {country!r}")
    subdivision = row.get("subdivision", "") or (
        region.subdivision if region and region.country == country else None
    )
    if subdivision and subdivision not in _SUPPORTED_COUNTRIES[country]:
        raise ValueError(f"unknown subdivision {subdivision!r} of {country}")
    timezone = row.get("timezone", "") or (region.timezone if region else "")
    if not timezone:
        raise ValueError("timezone is empty (give a time zone or a region)")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {timezone!r}") from None
    partner_id = row.get("partner_id", "") or None
    if partner_id is not None:
        partner_id = check_account_id(partner_id)
        if partner_id == account_id:
            raise ValueError("an account cannot be its own partner")
    contacts = {}
    for key in ("csm_email", "account_manager_email"):
        contacts[key] = normalise_email(row[key]) if row.get(key) else None
    try:
        is_partner = parse_bool(row.get("is_partner", ""))
        professional_services = parse_bool(row.get("professional_services", ""))
    except ValueError as exc:
        raise ValueError(f"is_partner/professional_services: {exc}") from None
    return {
        "id": account_id,
        "name": name,
        "tier": tier.value,
        "trial_started_at": trial_started_at,
        "is_partner": is_partner,
        "partner_id": partner_id,
        "region": region_key,
        "country": country,
        "subdivision": subdivision or None,
        "timezone": timezone,
        "professional_services": professional_services,
        "csm_name": row.get("csm_name") or None,
        "csm_email": contacts["csm_email"],
        "account_manager_name": row.get("account_manager_name") or None,
        "account_manager_email": contacts["account_manager_email"],
    }


def _parse_admin(row: dict[str, str]) -> tuple[str, str | None, bool, str | None] | None:
    raw_email = row.get("admin_email", "")
    pin = row.get("pin", "") or None
    if not raw_email:
        if pin is not None:
            raise ValueError("a PIN needs the admin_email it is issued to")
        return None
    email = normalise_email(raw_email)
    active = parse_bool(row["admin_active"]) if row.get("admin_active") else True
    if pin is not None:
        try:
            validate_pin(pin)
        except PinError as exc:
            raise ValueError(f"pin: {exc}") from None
    return email, row.get("admin_name") or None, active, pin


def _check_against_store(
    session: Session, accounts: dict[str, _AccountRow], pepper: str
) -> list[str]:
    """Find rows that conflict with what is already stored."""
    errors: list[str] = []
    known_partners = {
        account_id
        for account_id, is_partner in session.execute(select(Account.id, Account.is_partner))
        if is_partner
    }
    known_partners |= {key for key, row in accounts.items() if row.values["is_partner"]}
    for row in accounts.values():
        partner_id = row.values["partner_id"]
        if partner_id is not None and partner_id not in known_partners:
            errors.append(
                f"line {row.line}: partner {partner_id} is not a partner account "
                "(in the store or this file)"
            )
        for line, email, _name, _active, pin in row.admins:
            owner = session.scalar(select(Admin.account_id).where(Admin.email == email))
            if owner is not None and owner != row.values["id"]:
                errors.append(f"line {line}: admin {email} already belongs to another account")
            if pin is not None:
                holder = session.scalar(
                    select(SupportPin.account_id).where(
                        SupportPin.pin_hash == pin_hash(pepper, pin)
                    )
                )
                if holder is not None and holder != row.values["id"]:
                    # Do not say whose: a PIN identifies an account.
                    errors.append(f"line {line}: that PIN is already in use; choose another")
    return sorted(errors, key=lambda text: int(text.split(":")[0].split()[1]))


def _apply(
    session: Session, accounts: dict[str, _AccountRow], pepper: str, actor: str
) -> ImportSummary:
    summary = ImportSummary()
    # Partners first, so managed accounts' foreign keys resolve inside the one transaction.
    ordered = sorted(accounts.values(), key=lambda row: not row.values["is_partner"])
    for row in ordered:
        values = row.values
        account = session.get(Account, values["id"])
        before = account_snapshot(account) if account else None
        if account is None:
            account = Account(id=values["id"])
            session.add(account)
            summary.accounts_created += 1
        else:
            summary.accounts_updated += 1
        for name in ACCOUNT_FIELDS:
            setattr(account, name, values[name])
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="account.import",
            entity_type="account",
            entity_id=account.id,
            before=before,
            after=account_snapshot(account),
        )
        for _line, email, admin_name, active, pin in row.admins:
            admin = session.scalar(select(Admin).where(Admin.email == email))
            if admin is None:
                admin = Admin(account_id=account.id, email=email, name=admin_name, active=active)
                session.add(admin)
                summary.admins_created += 1
            else:
                admin.name, admin.active = admin_name or admin.name, active
                summary.admins_updated += 1
            session.flush()
            if pin is not None:
                digest = pin_hash(pepper, pin)
                if (
                    session.scalar(select(SupportPin.id).where(SupportPin.pin_hash == digest))
                    is None
                ):
                    session.add(
                        SupportPin(
                            account_id=account.id,
                            admin_id=admin.id,
                            pin_hash=digest,
                            created_by=actor,
                        )
                    )
                    summary.pins_set += 1
                    audit.record(
                        session,
                        actor=actor,
                        action="pin.set",
                        entity_type="account",
                        entity_id=account.id,
                        after={"admin": email},
                    )
    return summary
