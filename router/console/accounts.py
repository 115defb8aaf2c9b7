"""Console: accounts, administrators, support PINs (shown once) and PIN lock-outs."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from router.console.views import actor, blueprint, login_required, now, page_args, report
from router.core.domain import StaffRole, Tier
from router.core.validation import parse_instant
from router.runtime import runtime
from router.services import accounts as accounts_service
from router.services import pins as pins_service
from router.services.errors import Invalid, NotFound, ServiceError
from router.services.pins import IssuedPin

TIERS = [member.value for member in Tier]


@blueprint.get("/accounts")
@login_required()
def accounts() -> str:
    """List accounts (filter by tier, region, text)."""
    page, per_page = page_args()
    tier = request.args.get("tier", "")
    region = request.args.get("region", "")
    q = request.args.get("q", "").strip()[:200]
    listed = accounts_service.list_accounts(
        runtime().db,
        page=page,
        per_page=per_page,
        tier=tier if tier in TIERS else None,
        region=region[:16] or None,
        q=q or None,
    )
    return render_template(
        "console/accounts.html",
        listed=listed,
        tiers=TIERS,
        regions=sorted(runtime().policy.regions),
        filters={"tier": tier, "region": region, "q": q},
    )


def _account_fields() -> dict[str, Any]:
    form = request.form
    values: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "tier": form.get("tier", ""),
        "region": form.get("region", "").strip() or None,
        "partner_id": form.get("partner_id", "").strip() or None,
        "is_partner": form.get("is_partner") == "on",
        "professional_services": form.get("professional_services") == "on",
        "csm_name": form.get("csm_name", "").strip() or None,
        "csm_email": form.get("csm_email", "").strip() or None,
        "account_manager_name": form.get("account_manager_name", "").strip() or None,
        "account_manager_email": form.get("account_manager_email", "").strip() or None,
    }
    trial = form.get("trial_started_at", "").strip()
    if trial:
        try:
            values["trial_started_at"] = parse_instant(trial)
        except ValueError as exc:
            raise Invalid(f"trial start: {exc}") from None
    else:
        values["trial_started_at"] = None
    for name in ("name", "csm_name", "account_manager_name"):
        if values[name] and len(values[name]) > 200:
            raise Invalid(f"{name} is longer than 200 characters")
    return values


@blueprint.post("/accounts")
@login_required(StaffRole.ADMIN)
def account_create() -> BaseResponse:
    """Create an account."""
    rt = runtime()
    try:
        values = {"id": request.form.get("id", "").strip(), **_account_fields()}
        created = accounts_service.create_account(rt.db, rt.policy, values, actor=actor())
    except ServiceError as exc:
        report(exc)
        return redirect(url_for("console.accounts"))
    flash(f"Account {created.id} created.", "info")
    return redirect(url_for("console.account", account_id=created.id))


@blueprint.get("/accounts/<account_id>")
@login_required()
def account(account_id: str) -> str | tuple[str, int]:
    """Show an account: its administrators and PINs (never their digits)."""
    try:
        data = accounts_service.get_account(runtime().db, account_id)
    except NotFound as exc:
        return render_template("console/error.html", title="Not found", message=exc.message), 404
    return render_template(
        "console/account.html",
        account=data,
        tiers=TIERS,
        regions=sorted(runtime().policy.regions),
    )


@blueprint.post("/accounts/<account_id>")
@login_required(StaffRole.ADMIN)
def account_update(account_id: str) -> BaseResponse:
    """Change an account's fields."""
    rt = runtime()
    try:
        accounts_service.update_account(
            rt.db, rt.policy, account_id, _account_fields(), actor=actor()
        )
        flash("Account saved.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.account", account_id=account_id))


@blueprint.post("/accounts/<account_id>/admins")
@login_required(StaffRole.ADMIN)
def admin_add(account_id: str) -> BaseResponse:
    """Add an administrator."""
    try:
        accounts_service.add_admin(
            runtime().db,
            account_id,
            request.form.get("email", ""),
            name=request.form.get("name", "").strip()[:200] or None,
            active=True,
            actor=actor(),
        )
        flash("Administrator added.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.account", account_id=account_id))


@blueprint.post("/accounts/<account_id>/admins/<int(max=2147483647):admin_id>")
@login_required(StaffRole.ADMIN)
def admin_update(account_id: str, admin_id: int) -> BaseResponse:
    """Deactivate or reactivate an administrator."""
    try:
        accounts_service.update_admin(
            runtime().db,
            account_id,
            admin_id,
            {"active": request.form.get("active") == "1"},
            actor=actor(),
        )
        flash("Administrator saved.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.account", account_id=account_id))


def _issued(account_id: str, issued: IssuedPin) -> tuple[str, int]:
    # Rendered straight into this answer (never flashed: the session cookie is not secret).
    return render_template("console/pin_issued.html", account_id=account_id, issued=issued), 201


@blueprint.post("/accounts/<account_id>/pins")
@login_required(StaffRole.ADMIN)
def pin_set(account_id: str) -> BaseResponse | tuple[str, int]:
    """Set a PIN (or replace an administrator's); the digits are shown on the next page only."""
    rt = runtime()
    raw_admin = request.form.get("admin_id", "").strip()
    try:
        admin_id = int(raw_admin) if raw_admin else None
        issued = pins_service.issue_pin(
            rt.db,
            rt.settings.pin_pepper,
            account_id,
            actor=actor(),
            admin_id=admin_id,
            pin=request.form.get("pin", "").strip() or None,
        )
    except ValueError:
        flash("Choose an administrator.", "error")
        return redirect(url_for("console.account", account_id=account_id))
    except ServiceError as exc:
        report(exc)
        return redirect(url_for("console.account", account_id=account_id))
    return _issued(account_id, issued)


@blueprint.post("/accounts/<account_id>/pins/<int(max=2147483647):pin_id>/rotate")
@login_required(StaffRole.ADMIN)
def pin_rotate(account_id: str, pin_id: int) -> BaseResponse | tuple[str, int]:
    """Replace a PIN with new random digits."""
    rt = runtime()
    try:
        issued = pins_service.issue_pin(
            rt.db, rt.settings.pin_pepper, account_id, actor=actor(), replace_id=pin_id
        )
    except ServiceError as exc:
        report(exc)
        return redirect(url_for("console.account", account_id=account_id))
    return _issued(account_id, issued)


@blueprint.post("/accounts/<account_id>/pins/<int(max=2147483647):pin_id>/revoke")
@login_required(StaffRole.ADMIN)
def pin_revoke(account_id: str, pin_id: int) -> BaseResponse:
    """Revoke a PIN."""
    try:
        pins_service.revoke_pin(runtime().db, account_id, pin_id, actor=actor())
        flash("PIN revoked.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.account", account_id=account_id))


@blueprint.get("/lockouts")
@login_required()
def lockouts() -> str:
    """List calling numbers locked out of PIN checks."""
    page, per_page = page_args()
    state = request.args.get("state", "active")
    active = {"active": True, "expired": False, "all": None}.get(state, True)
    listed = pins_service.list_lockouts(
        runtime().db, now(), page=page, per_page=per_page, active=active
    )
    return render_template("console/lockouts.html", listed=listed, state=state)


@blueprint.post("/lockouts/unlock")
@login_required(StaffRole.ADMIN)
def unlock() -> BaseResponse:
    """Unlock a calling number."""
    number = request.form.get("calling_number", "")
    try:
        pins_service.unlock(runtime().db, number, actor=actor(), now=now())
        flash(f"Unlocked {number}.", "info")
    except ServiceError as exc:
        report(exc)
    return redirect(url_for("console.lockouts"))
