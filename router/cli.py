"""Command line: `flask --app app …` (database, demo data, staff, accounts)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from alembic import command
from alembic.util.exc import CommandError
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from channels.simulate import simulate_group
from router import migrate
from router.runtime import runtime
from router.services.accounts import CsvImportError, import_accounts_csv
from router.services.bootstrap import seed_policy_defaults
from router.services.demo import load_demo_data
from router.services.staff import StaffError, create_staff, issue_token

db_group = AppGroup("db", help="Apply, revert and inspect database migrations (Alembic).")
staff_group = AppGroup("staff", help="Manage staff users and their API tokens.")
accounts_group = AppGroup("accounts", help="Manage customer accounts.")


def register(app: Flask) -> None:
    """Attach the command groups to the app's CLI."""
    for group in (db_group, staff_group, accounts_group):
        app.cli.add_command(group)
    app.cli.add_command(demo_data)
    app.cli.add_command(simulate_group)


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
