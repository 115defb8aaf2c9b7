"""Staff console: sessions, CSRF protection, security headers, and the pages' shared helpers.

Pages live in the sibling modules (queues, contacts, rules, accounts, calendars, audit); each
registers its routes on ``blueprint`` below. Handlers are thin: read the form, call a service,
render a template (Jinja escapes everything it prints).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sansio.blueprints import BlueprintSetupState
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from router.core.domain import StaffRole
from router.core.validation import trusted_forwarded
from router.runtime import runtime
from router.services import console_sessions
from router.services.console_sessions import LoginLimits, LoginRefusal
from router.services.errors import ServiceError
from router.services.logins import StaffIdentity, verify_password
from router.services.paging import DEFAULT_PER_PAGE, MAX_PER_PAGE

log = logging.getLogger(__name__)

blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)
csrf = CSRFProtect()

F = TypeVar("F", bound=Callable[..., Any])

# app.extensions[CLOCK_KEY]: a callable returning the console's "now" (tests drive time with it).
CLOCK_KEY = "router.console.clock"
# The Flask session (a signed cookie) holds only this: the token of a server-side session.
SESSION_KEY = "console_session"
NEXT_MAX_LENGTH = 2000

# Pages render data only from the server; scripts and styles come from our own static files.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@blueprint.record_once
def _setup(state: BlueprintSetupState) -> None:
    """Protect the console's forms with CSRF tokens, without touching webhooks or the API."""
    app = cast(Flask, state.app)
    # CSRF is checked in this blueprint's before_request only: provider webhooks and the
    # bearer-token API have no browser session to forge.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 8 * 3600)
    csrf.init_app(app)


@blueprint.before_request
def _check_csrf() -> None:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()
    clock: Callable[[], datetime] = current_app.extensions.get(CLOCK_KEY, _utcnow)
    g.console_now = clock()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@blueprint.after_request
def _headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "console.static":
        # Pages show customer data: never keep them in shared or browser caches.
        response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.errorhandler(CSRFError)
def _csrf_error(error: CSRFError) -> tuple[str, int]:
    return render_template(
        "console/error.html",
        title="Form expired",
        message=f"{error.description} Reload the page and submit the form again.",
    ), 400


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[str, int] | BaseResponse:
    if request.accept_mimetypes.best == "application/json" or request.is_json:
        answer = jsonify(error=error.name, message=error.description)
        answer.status_code = error.code or 500
        return answer
    return render_template(
        "console/error.html", title=error.name, message=error.description
    ), error.code or 500


# -- who is logged in --------------------------------------------------------------------------


def current_user() -> StaffIdentity | None:
    """Return the logged-in staff member from their server-side session, checked each request."""
    # Checked every time, so log-out, expiry, deactivation and a password change act at once.
    if "console_user" in g:
        user: StaffIdentity | None = g.console_user
        return user
    identity = None
    token = session.get(SESSION_KEY)
    if isinstance(token, str) and token:
        identity = console_sessions.session_identity(runtime().db, token, _limits(), now())
        if identity is None:
            # The cookie names a session that ended: drop it, and say why on the login page.
            session.clear()
            g.console_session_ended = True
    g.console_user = identity
    return identity


def _limits() -> LoginLimits:
    return LoginLimits.from_settings(runtime().settings)


def client_ip() -> str:
    """Return the client's address: the one our outermost trusted proxy saw, else the peer's."""
    peer = request.remote_addr or "unknown"
    trusted = runtime().settings.trusted_proxy_count
    hop = trusted_forwarded(request.headers.getlist("X-Forwarded-For"), trusted)
    if hop is None:
        return peer
    # Some load balancers write the client's port too: "203.0.113.5:51234", "[2001:db8::1]:443".
    if hop.startswith("[") and "]" in hop:
        hop = hop[1 : hop.index("]")]
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return peer


def login_required(role: StaffRole = StaffRole.VIEWER) -> Callable[[F], F]:
    """Send anonymous visitors to the login page; refuse (403) staff below ``role``."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                if g.pop("console_session_ended", False):
                    flash("Your session has ended; log in again.", "info")
                target = request.full_path.rstrip("?")
                if request.method == "GET" and _safe(target):
                    return redirect(url_for("console.login", next=target))
                return redirect(url_for("console.login"))
            if user.role.rank < role.rank:
                abort(403, description=f"This needs the {role.value} role; yours is {user.role}.")
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def can(role: str) -> bool:
    """Return whether the logged-in user has at least ``role`` (for templates)."""
    user = current_user()
    return user is not None and user.role.rank >= StaffRole(role).rank


@blueprint.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"console_user": current_user, "can": can}


def actor() -> str:
    """Return the logged-in user's email for audit entries."""
    user = current_user()
    assert user is not None
    return user.email


def now() -> datetime:
    """Return this request's instant."""
    value: datetime = g.get("console_now") or datetime.now(UTC)
    return value


def page_args(default: int = DEFAULT_PER_PAGE) -> tuple[int, int]:
    """Read ?page= and ?per_page= (bad values fall back to the first page)."""
    try:
        page = max(1, min(int(request.args.get("page", 1)), 1_000_000))
    except ValueError:
        page = 1
    try:
        per_page = max(1, min(int(request.args.get("per_page", default)), MAX_PER_PAGE))
    except ValueError:
        per_page = default
    return page, per_page


def report(error: ServiceError) -> None:
    """Flash a refused change with its details."""
    flash(error.message, "error")
    details = error.errors
    if isinstance(details, dict):
        for field, problems in details.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                flash(f"{field}: {problem}", "error")
    elif isinstance(details, list):
        for item in details:
            if isinstance(item, dict):
                flash(f"{item.get('path')}: {item.get('message')}", "error")


def back(default: str) -> BaseResponse:
    """Redirect to the page the form was on (same site only), else ``default``."""
    target = request.form.get("next") or ""
    if _safe(target):
        return redirect(target)
    return redirect(default)


def _safe(target: str) -> bool:
    """Return whether ``target`` is a console path on this site, safe to redirect to."""
    # Control characters would end up in the Location header (a header break, or a 500).
    if not target or len(target) > NEXT_MAX_LENGTH or not target.startswith("/console"):
        return False
    if "\\" in target or any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


# -- login -------------------------------------------------------------------------------------


@blueprint.get("/")
def index() -> BaseResponse:
    """Start at the queues overview."""
    return redirect(url_for("console.queues"))


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> str | BaseResponse | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """Log in with email and password."""
    target = request.values.get("next", "")
    if request.method == "GET":
        if current_user() is not None:
            return redirect(target if _safe(target) else url_for("console.queues"))
        return render_template("console/login.html", next=target if _safe(target) else "")
    email = request.form.get("email", "").strip()[:400]
    if target and not _safe(target):
        # The form only ever carries a next the server put there: this one was forged. Refused
        # before anything else, so no session is opened for a redirect that cannot be made.
        flash("The page to return to after logging in is not a console address.", "error")
        return render_template("console/login.html", next="", email=email), 400
    password = request.form.get("password", "")
    if not email or not password:
        flash("Enter your email and password.", "error")
        return render_template("console/login.html", next=target, email=email), 400
    rt = runtime()
    limits, ip, at = _limits(), client_ip(), now()
    address = console_sessions.login_email(email)
    refusal = console_sessions.check_login_allowed(rt.db, address, ip, limits, at)
    if refusal is None:
        # An address no one can have (control characters, over-long) is checked as an unknown
        # one: same cost, and never sent to the database (PostgreSQL's text refuses NUL).
        identity = verify_password(rt.db, email if address is not None else "", password)
        if identity is not None:
            token = console_sessions.start_session(rt.db, identity, ip, limits, at)
            # A fresh cookie on login, so a session planted before it is worth nothing.
            session.clear()
            session[SESSION_KEY] = token
            session.permanent = False
            return redirect(target if _safe(target) else url_for("console.queues"))
        refusal = console_sessions.record_login_failure(rt.db, address, ip, limits, at)
        if refusal is None:
            flash("Wrong email or password.", "error")
            return render_template("console/login.html", next=target, email=email), 401
    log.warning("console log-in refused (%s) from %s", refusal.reason, ip)
    flash(_refusal_message(refusal, at), "error")
    page = render_template("console/login.html", next=target, email=email)
    return page, 429, {"Retry-After": str(refusal.retry_after_seconds(at))}


def _refusal_message(refusal: LoginRefusal, at: datetime) -> str:
    """Say when to try again, the same way whether or not a staff user has the address."""
    seconds = refusal.retry_after_seconds(at)
    if seconds < 120:
        wait = f"{seconds} second{'' if seconds == 1 else 's'}"
    elif seconds < 7200:
        wait = f"{round(seconds / 60)} minutes"
    else:
        wait = f"{round(seconds / 3600)} hours"
    shown = "%H:%M" if refusal.retry_at.date() == at.date() else "%Y-%m-%d %H:%M"
    when = f"{refusal.retry_at.astimezone(UTC):{shown}} UTC (in about {wait})"
    if refusal.reason == "throttled":
        return f"Too many failed log-ins from your network. Try again after {when}."
    return f"Too many failed log-ins for this email address. Try again after {when}."


@blueprint.post("/logout")
def logout() -> BaseResponse:
    """Log out: the server-side session ends, so a copy of the cookie opens nothing."""
    token = session.get(SESSION_KEY)
    if isinstance(token, str) and token:
        console_sessions.end_session(runtime().db, token, now())
    session.clear()
    flash("Logged out.", "info")
    return redirect(url_for("console.login"))


# Register the pages (they import `blueprint` from this module).
import router.console.accounts  # noqa: E402
import router.console.audit  # noqa: E402
import router.console.calendars  # noqa: E402
import router.console.contacts  # noqa: E402
import router.console.desk  # noqa: E402
import router.console.queues  # noqa: E402
import router.console.rule_editor  # noqa: E402
import router.console.rules  # noqa: E402, F401
