"""The account CSV import: a good file lands whole; any bad row leaves the store unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from config.policy import Policy
from router.core.pins import pin_hash
from router.services.account_import import CsvImportError, import_accounts_csv
from router.store.db import Database
from router.store.models import Account, Admin, AuditEntry, SupportPin
from tests.conftest import TEST_PEPPER

HEADER = (
    "account_id,account_name,tier,trial_started_at,is_partner,partner_id,region,country,"
    "subdivision,timezone,professional_services,csm_email,admin_email,admin_name,pin"
)
GOOD = "\n".join(
    [
        HEADER,
        "northwind,Northwind MSP,premium,,yes,,au,,,,no,csm@support.example,erin@northwind.example,Erin,615274",
        "acme,Acme Corp,premium,,no,,us,,,,yes,csm@support.example,Alice@Acme.Example,Alice,482913",
        "acme,Acme Corp,premium,,no,,us,,,,yes,csm@support.example,amir@acme.example,Amir,",
        "contoso,Contoso,standard,,no,northwind,,AU,NSW,Australia/Sydney,no,,frank@contoso.example,,",
        "initech,Initech,trial,2026-11-20T10:00:00+01:00,no,,gb,,,,no,,,,",
    ]
)


def counts(db: Database) -> tuple[int, ...]:
    with db.session() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Account, Admin, SupportPin, AuditEntry)
        )


def run(db: Database, policy: Policy, text: str) -> object:
    return import_accounts_csv(db, policy, TEST_PEPPER, text, actor="test")


def test_good_file_imports_everything(db: Database, policy: Policy) -> None:
    summary = run(db, policy, GOOD)
    assert (summary.accounts_created, summary.admins_created, summary.pins_set) == (4, 4, 2)  # type: ignore[attr-defined]
    with db.session() as session:
        acme = session.get(Account, "acme")
        assert acme is not None
        assert (acme.country, acme.timezone, acme.region) == ("US", "America/New_York", "us")
        assert acme.professional_services is True
        assert sorted(a.email for a in acme.admins) == ["alice@acme.example", "amir@acme.example"]
        contoso = session.get(Account, "contoso")
        assert contoso is not None and contoso.partner_id == "northwind"
        assert (contoso.subdivision, contoso.timezone) == ("NSW", "Australia/Sydney")
        initech = session.get(Account, "initech")
        assert initech is not None
        assert initech.trial_started_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
        pin = session.scalar(
            select(SupportPin).where(SupportPin.pin_hash == pin_hash(TEST_PEPPER, "482913"))
        )
        assert pin is not None and pin.account_id == "acme" and pin.admin is not None
        assert pin.admin.email == "alice@acme.example"
        # The PIN's digits are never stored.
        assert "482913" not in str([p.pin_hash for p in session.scalars(select(SupportPin))])


def test_reimport_updates_without_duplicating(db: Database, policy: Policy) -> None:
    run(db, policy, GOOD)
    before = counts(db)[:3]
    summary = run(db, policy, GOOD.replace("Acme Corp", "Acme Corporation"))
    assert counts(db)[:3] == before
    assert summary.accounts_updated == 4  # type: ignore[attr-defined]
    with db.session() as session:
        assert session.get(Account, "acme").name == "Acme Corporation"  # type: ignore[union-attr]


BAD_ROWS = [
    ("acme,Acme,gold,,no,,us,,,,no,,a@acme.example,,", "line 2: tier 'gold' is not one of"),
    ("acme,Acme,premium,,no,,us,,,,no,,not-an-email,,", "line 2: not an email address"),
    (
        "acme,Acme,premium,,no,,us,,,,no,,a@acme.example,,123456",
        "line 2: pin: that PIN is too easy",
    ),
    (
        "acme,Acme,premium,,no,,us,,,,no,,a@acme.example,,12345",
        "line 2: pin: a PIN has 6 to 8 digits",
    ),
    (
        "acme,Acme,premium,,no,,us,,,,no,,a@acme.example,,48291a",
        "line 2: pin: a PIN is digits only",
    ),
    (
        "acme,Acme,premium,,no,,atlantis,,,,no,,a@acme.example,,",
        "line 2: unknown region 'atlantis'",
    ),
    (
        "acme,Acme,premium,,no,,,US,,America/Nowhere,no,,a@acme.example,,",
        "line 2: unknown time zone",
    ),
    ("acme,Acme,premium,,no,,,XX,,UTC,no,,a@acme.example,,", "line 2: unknown country code 'XX'"),
    ("acme,Acme,premium,,no,,,US,,,no,,a@acme.example,,", "line 2: timezone is empty"),
    (
        "acme,Acme,trial,,no,,us,,,,no,,a@acme.example,,",
        "line 2: a trial account needs trial_started_at",
    ),
    (
        "acme,Acme,trial,2026-11-20T10:00:00,no,,us,,,,no,,a@acme.example,,",
        "has no time zone offset",
    ),
    (
        "acme,Acme,premium,,no,ghost,us,,,,no,,a@acme.example,,",
        "line 2: partner ghost is not a partner",
    ),
    (
        "acme,Acme,premium,,maybe,,us,,,,no,,a@acme.example,,",
        "line 2: is_partner/professional_services",
    ),
    ("ac me,Acme,premium,,no,,us,,,,no,,a@acme.example,,", "line 2: account id 'ac me'"),
    (",Acme,premium,,no,,us,,,,no,,a@acme.example,,", "line 2: account id ''"),
    ("acme,Acme,premium,,no,,us,,,,no,,,,482913", "line 2: a PIN needs the admin_email"),
    ("acme,Acme,premium,,no,,us,,,,no,,a@acme.example,,,extra", "line 2: more fields than columns"),
]


@pytest.mark.parametrize(("row", "message"), BAD_ROWS)
def test_bad_row_leaves_the_store_unchanged(
    db: Database, policy: Policy, row: str, message: str
) -> None:
    good_row = "globex,Globex,standard,,no,,il,,,,no,,bob@globex.example,,"
    before = counts(db)
    with pytest.raises(CsvImportError) as caught:
        run(db, policy, "\n".join([HEADER, row, good_row]))
    assert any(message in error for error in caught.value.errors), caught.value.errors
    assert counts(db) == before


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [
                "acme,Acme,premium,,no,,us,,,,no,,a@acme.example,,482913",
                "globex,Globex,standard,,no,,il,,,,no,,b@globex.example,,482913",
            ],
            "line 3: PIN repeats the one on line 2",
        ),
        (
            [
                "acme,Acme,premium,,no,,us,,,,no,,a@acme.example,,",
                "globex,Globex,standard,,no,,il,,,,no,,a@acme.example,,",
            ],
            "line 3: admin a@acme.example is also listed for another account (line 2)",
        ),
        (
            [
                "acme,Acme,premium,,no,,us,,,,no,,a@acme.example,,",
                "acme,Acme,standard,,no,,us,,,,no,,b@acme.example,,",
            ],
            "line 3: account acme differs from line 2 in tier",
        ),
    ],
)
def test_rows_that_conflict_within_the_file(
    db: Database, policy: Policy, rows: list[str], message: str
) -> None:
    with pytest.raises(CsvImportError) as caught:
        run(db, policy, "\n".join([HEADER, *rows]))
    assert message in caught.value.errors
    assert counts(db) == (0, 0, 0, 0)


def test_rows_that_conflict_with_the_store(db: Database, policy: Policy) -> None:
    run(db, policy, GOOD)
    before = counts(db)
    text = "\n".join(
        [
            HEADER,
            "globex,Globex,standard,,no,,il,,,,no,,alice@acme.example,,",
            "hooli,Hooli,premium,,no,,in,,,,no,,priya@hooli.example,,482913",
        ]
    )
    with pytest.raises(CsvImportError) as caught:
        run(db, policy, text)
    assert caught.value.errors == [
        "line 2: admin alice@acme.example already belongs to another account",
        "line 3: that PIN is already in use; choose another",
    ]
    assert counts(db) == before


def test_header_problems(db: Database, policy: Policy) -> None:
    with pytest.raises(CsvImportError, match="line 1: unknown column\\(s\\) colour"):
        run(db, policy, "account_id,account_name,tier,colour\nacme,Acme,premium,red\n")
    with pytest.raises(CsvImportError, match="line 1: missing column\\(s\\) tier"):
        run(db, policy, "account_id,account_name\nacme,Acme\n")
    with pytest.raises(CsvImportError, match="line 1: the file is empty"):
        run(db, policy, "")
