"""Application factory: the one place that wires settings, policy, store, services and blueprints.

Read top to bottom: configuration (config/), the Flask app with its request and session classes
(router/http.py), what every request shares (router/runtime.py), then the blueprints, the CLI,
metrics and error answers.
"""

from __future__ import annotations

import gc
import logging
import time

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from channels.chat import views as chat
from channels.chat.service import ChatService
from channels.email import views as email
from channels.email.sender import EmailSender
from channels.email.service import EmailService
from channels.simulate import simulate_group
from channels.voice import views as voice
from channels.voice.config import VoiceConfig
from channels.voice.service import VoiceService
from config import Policy, PolicyError, Settings, SettingsError, load_policy
from router import cli, ops
from router.api import init_api
from router.console import views as console
from router.http import CookieSessions, Request
from router.intake import IntakeService
from router.metrics import Metrics
from router.runtime import EXTENSION_KEY, Runtime
from router.services.routing import RoutingCache
from router.store.db import Database

log = logging.getLogger("router")

# Webhook bodies are small; a large body is an attack or a mistake (email attachments arrive
# as metadata only through the providers' parse modes).
MAX_CONTENT_LENGTH = 10 * 1024 * 1024


class StartupError(SystemExit):
    """The service refuses to start; the message names the variable or the policy file and key."""


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app from ``settings`` (read from the environment when not given)."""
    settings, policy = _configuration(settings)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )

    app = Flask(__name__)
    app.request_class = Request
    app.session_interface = CookieSessions()
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_CONTENT_LENGTH,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
    )
    runtime = _runtime(settings, policy)
    app.extensions[EXTENSION_KEY] = runtime
    _channel_services(app, runtime)

    _register_blueprints(app)
    cli.register(app)
    app.cli.add_command(simulate_group)
    _instrument(app, runtime.metrics)
    _register_error_handlers(app)
    if settings.is_production:
        # The app's ~200,000 start-up objects live as long as the process; left to the cyclic
        # collector, every full collection walks them all and stalls a request for ~90 ms.
        gc.collect()
        gc.freeze()
    return app


def _configuration(settings: Settings | None) -> tuple[Settings, Policy]:
    """Return the settings (from the environment when not given) and the policy they name."""
    try:
        settings = settings if settings is not None else Settings.from_env()
        policy = load_policy(settings.policy_dir)
    except (SettingsError, PolicyError) as exc:
        # SystemExit prints one clear line (no traceback) under flask, gunicorn and python.
        raise StartupError(f"contact router refuses to start: {exc}") from exc
    return settings, policy


def _runtime(settings: Settings, policy: Policy) -> Runtime:
    """Build what every request shares: the store, the metrics and the intake service."""
    db = Database(settings.database_url)
    return Runtime(
        settings=settings,
        policy=policy,
        db=db,
        metrics=Metrics(),
        intake=IntakeService(db, policy, RoutingCache(policy), settings=settings),
    )


def _channel_services(app: Flask, rt: Runtime) -> None:
    """Build each channel's service once; the channel's views read it from app.extensions."""
    app.extensions[voice.SERVICE_KEY] = VoiceService(
        rt.db, rt.policy, rt.intake, VoiceConfig.from_settings(rt.settings)
    )
    app.extensions[chat.SERVICE_KEY] = ChatService(
        settings=rt.settings, policy=rt.policy, db=rt.db, intake=rt.intake
    )
    email_service = EmailService.from_runtime(rt)
    app.extensions[email.SERVICE_KEY] = email_service
    # The sender's thread starts on its first submit: in a gunicorn worker, after the fork.
    app.extensions[email.SENDER_KEY] = EmailSender(email_service.outbox.deliver)


def _register_blueprints(app: Flask) -> None:
    """Mount the health and metrics views, the three channels, the console and the API."""
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(voice.blueprint)
    app.register_blueprint(email.blueprint)
    app.register_blueprint(chat.blueprint)
    app.register_blueprint(console.blueprint)
    init_api(app)


def _instrument(app: Flask, metrics: Metrics) -> None:
    """Count and time every request by its URL rule (bounded label values)."""

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("request_started", None)
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
            metrics.observe(
                rule, request.method, response.status_code, time.perf_counter() - started
            )
        return response


def _register_error_handlers(app: Flask) -> None:
    """Answer errors as JSON with a message, and never leak a traceback."""

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response, int]:
        code = error.code or 500
        return jsonify(error=error.name, message=error.description), code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(
            error="Internal Server Error", message="unexpected error; it was logged"
        ), 500
