"""Command line: `flask --app app …` (database, demo data, staff, accounts)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from alembic import command
from alembic.util.exc import CommandError
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from router.core.domain import Category, Channel, Severity, Tier, Topic
from router.core.rules import ContactAttributes, RuleValidationError
from router.core.validation import parse_instant
from router.intake import ContactRequest, IdentityError, Sender
from router.runtime import runtime
from router.scheduler.cli import scheduler_command
from router.services.account_import import CsvImportError, import_accounts_csv
from router.services.bootstrap import seed_policy_defaults
from router.services.demo import load_demo_data
from router.services.logins import StaffError, create_staff, issue_token
from router.services.routing import RoutingCache
from router.store import migrate

db_group = AppGroup("db", help="Apply, revert and inspect database migrations (Alembic).")
staff_group = AppGroup("staff", help="Manage staff users and their API tokens.")
accounts_group = AppGroup("accounts", help="Manage customer accounts.")


def register(app: Flask) -> None:
    """Attach the command groups to the app's CLI."""
    for group in (db_group, staff_group, accounts_group):
        app.cli.add_command(group)
    app.cli.add_command(demo_data)
    app.cli.add_command(explain)
    app.cli.add_command(scheduler_command)


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head), then add missing default queues/rules."""
    rt = runtime()
    try:
        migrate.upgrade(rt.db.url, revision)
    except CommandError as exc:
        raise click.ClickException(str(exc)) from None
    if revision == "head":
        seeded = seed_policy_defaults(rt.db, rt.policy, actor="db upgrade")
        click.echo(
            f"database at {migrate.head_revision()}; default queues added: {seeded.queues_added}"
            + (
                f"; routing rules version {seeded.rules_version_added} stored"
                if seeded.rules_version_added
                else ""
            )
        )
        # A release whose rules engine refuses the stored rule set (e.g. a pattern RE2 cannot
        # run) would fail every contact's routing: stop the release step instead, by name.
        try:
            with rt.db.session() as session:
                RoutingCache(rt.policy).rules(session)
        except RuleValidationError as exc:
            raise click.ClickException(
                f"the routing rules in force no longer compile; correct them (rules API or "
                f"console) before deploying this release. {exc}"
            ) from None


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ('-1' for one step, 'base' for an empty database)."""
    try:
        migrate.downgrade(runtime().db.url, revision)
    except CommandError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"database downgraded to {revision}")


@db_group.command("current")
def db_current() -> None:
    """Print the revision the database is at."""
    current = migrate.current_revision(runtime().db.engine)
    head = migrate.head_revision()
    click.echo(f"current: {current or 'empty'}; head: {head}")


@db_group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration changes.")
@click.option("--autogenerate/--empty", default=True, help="Compare models with the database.")
def db_revision(message: str, autogenerate: bool) -> None:
    """Write a new migration (run against an up-to-date database)."""
    command.revision(
        migrate.alembic_config(runtime().db.url), message=message, autogenerate=autogenerate
    )


@click.command("demo-data")
@with_appcontext
def demo_data() -> None:
    """Load demo accounts, admins, PINs and a staff user if the database is empty."""
    rt = runtime()
    if rt.settings.is_production:
        # The demo password, PINs and token are published (README, make run): in production
        # they would open the console and the phone line to anyone.
        raise click.ClickException(
            "demo-data refuses to run with APP_ENV=production: it adds an admin with a published "
            "password, published support PINs and an admin API token; nothing was written"
        )
    credentials = load_demo_data(rt.db, rt.policy, rt.settings.pin_pepper, datetime.now(UTC))
    click.echo(
        "demo data loaded" if credentials.loaded else "demo data already present; kept as is"
    )
    click.echo("\nPhone support PINs (premium accounts; call a regional number and enter one):")
    for account, email, pin in credentials.pins:
        click.echo(f"  {pin}  {account:<10} issued to {email}")
    click.echo("\nAdministrators (email From: address, or portal token `sub`):")
    for account, tier, email in credentials.admins:
        click.echo(f"  {email:<26} {account:<10} {tier}")
    click.echo(f"\nStaff console: {credentials.staff_email} / {credentials.staff_password}")
    click.echo(f"Staff API token (admin role): {credentials.staff_token}\n")
    click.echo(f"Agents (console password {credentials.staff_password}):")
    for email, role, presence in credentials.agents:
        click.echo(f"  {email:<32} {role:<7} {presence}")
    click.echo()


def _choices(enum: type[Any]) -> click.Choice:  # type: ignore[type-arg]
    return click.Choice([member.value for member in enum])


@click.command("explain")
@click.option("--account", "account_id", help="Account id (its tier, region and flags are used).")
@click.option("--admin", "admin_email", help="Admin email (a partner admin acts for --account).")
@click.option("--tier", type=_choices(Tier), help="Explicit tier (instead of --account).")
@click.option("--region", help="Account region key for --tier (business calendar).")
@click.option("--channel", type=_choices(Channel), required=True)
@click.option("--severity", type=_choices(Severity), default="S3", show_default=True)
@click.option("--category", type=_choices(Category), default="break-fix", show_default=True)
@click.option("--topic", type=_choices(Topic))
@click.option("--tag", "tags", multiple=True, help="A contact tag (repeatable).")
@click.option("--handoff", is_flag=True, help="Chat: the bot was asked for a human.")
@click.option("--at", "at", help="When the contact arrives (ISO 8601 with offset); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole decision as JSON.")
@with_appcontext
def explain(
    account_id: str | None,
    admin_email: str | None,
    tier: str | None,
    region: str | None,
    channel: str,
    severity: str,
    category: str,
    topic: str | None,
    tags: tuple[str, ...],
    handoff: bool,
    at: str | None,
    as_json: bool,
) -> None:
    """Show how a contact would be routed, rule by rule (nothing is stored)."""
    rt = runtime()
    try:
        received_at = parse_instant(at) if at else datetime.now(UTC)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None
    if (tier is None) == (account_id is None and admin_email is None):
        raise click.UsageError("give --account/--admin, or --tier (with --region), not both")
    if tier is not None:
        if region is not None and region not in rt.policy.regions:
            raise click.BadParameter(f"unknown region {region!r}", param_hint="--region")
        attrs = ContactAttributes(
            channel=Channel(channel),
            tier=Tier(tier),
            received_at=received_at,
            in_business_hours=False,
            account_region=region,
            severity=Severity(severity),
            category=Category(category),
            topic=Topic(topic) if topic else None,
            tags=frozenset(tags) | ({"handoff"} if handoff else set()),
        )
        # Business hours come from the region's calendar, as for a real contact.
        key = region or rt.policy.default_region
        with rt.db.session() as session:
            calendar = rt.intake.cache.region_calendar(session, key, received_at.date())
        attrs = dataclasses.replace(attrs, in_business_hours=calendar.is_open(received_at))
        result = rt.intake.explain_attributes(attrs)
    else:
        request = ContactRequest(
            channel=Channel(channel),
            external_id="explain",
            received_at=received_at,
            sender=Sender(account_id=account_id, admin_email=admin_email),
            severity=Severity(severity),
            category=Category(category),
            topic=Topic(topic) if topic else None,
            tags=frozenset(tags),
            handoff=handoff,
        )
        try:
            result = rt.intake.explain_request(request)
        except IdentityError as exc:
            raise click.ClickException(f"cannot identify the contact: {exc.reason}") from None
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    decision = result["decision"]
    sla = decision["sla"]
    click.echo(f"queue:    {decision['queue']}  (priority {decision['priority']})")
    click.echo(
        f"rule:     {decision['matched_rule']}  (rule set version {decision['ruleset_version']})"
    )
    click.echo(f"access:   {result['access'] or '-'}")
    click.echo(
        f"sla:      {decision['sla_policy']}"
        + (f", due {sla['due_at']} (warning {sla['warning_at']})" if sla else ", no due time")
    )
    click.echo(f"tags:     {', '.join(decision['tags']) or '-'}")
    click.echo("trace:")
    for step in decision["trace"]:
        why = f": {step['failed_condition']}" if step["failed_condition"] else ""
        click.echo(f"  {step['outcome']:<9} {step['rule_id']}{why}")


@staff_group.command("create")
@click.argument("email")
@click.option(
    "--role", type=click.Choice(["viewer", "editor", "admin"]), required=True, help="Permissions."
)
@click.option("--name", default=None, help="Display name.")
@click.option(
    "--password",
    prompt=True,
    prompt_required=False,
    hide_input=True,
    confirmation_prompt=True,
    default=None,
    help="Give --password alone to be prompted; without it the user can only use API tokens.",
)
def staff_create(email: str, role: str, name: str | None, password: str | None) -> None:
    """Create a staff user."""
    try:
        user = create_staff(runtime().db, email, role, name=name, password=password)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {user.email} ({user.role})")


@staff_group.command("token")
@click.argument("email")
@click.option("--name", default="cli", help="A label for the token (where it is used).")
def staff_token(email: str, name: str) -> None:
    """Issue an API token for a staff user and print it (shown only this once)."""
    try:
        issued = issue_token(runtime().db, email, name=name)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(issued.token)


@accounts_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def accounts_import(file: Path) -> None:
    """Import accounts, admins and PINs from a CSV file: every row, or none if any is bad."""
    rt = runtime()
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{file} is not UTF-8 text") from None
    try:
        summary = import_accounts_csv(rt.db, rt.policy, rt.settings.pin_pepper, text)
    except CsvImportError as exc:
        for error in exc.errors:
            click.echo(f"{file}: {error}", err=True)
        raise click.ClickException(
            f"{len(exc.errors)} bad row(s); nothing was imported from {file}"
        ) from None
    click.echo(
        f"imported {file}: {summary.accounts_created} account(s) created, "
        f"{summary.accounts_updated} updated, {summary.admins_created} admin(s) created, "
        f"{summary.admins_updated} updated, {summary.pins_set} PIN(s) set"
    )
