"""Application factory: the one place that wires settings, policy, database and blueprints."""

from __future__ import annotations

import gc
import json
import logging
import time
from typing import Any

import flask
from flask import Flask, Response, g, jsonify, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.wsgi import LimitedStream

from channels.chat import views as chat
from channels.email import views as email
from channels.voice import views as voice
from config import PolicyError, Settings, SettingsError, load_policy
from router import cli, ops
from router.api import init_api
from router.console import views as console
from router.core.validation import json_body_problem
from router.intake.service import IntakeService
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


class Request(flask.Request):
    """Flask's request, except that a body sent without a Content-Length is refused (413) when
    it reaches the size limit instead of being read cut short, and a JSON body nested too deep
    or holding a lone surrogate is refused (400) before anything parses it.

    Werkzeug stops reading such a (chunked) body at ``max_content_length`` without an error: an
    oversize email would be stored truncated, and any form or JSON silently shortened. Every
    JSON reader (Flask's get_json, the API's webargs parser, the email providers' JSON) reads
    the body through get_data, so the JSON check there covers every endpoint once: Python's
    parser raises RecursionError on deep nesting, and a lone surrogate cannot be stored.
    """

    _json_checked = False

    def get_data(  # type: ignore[override]
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> bytes | str:
        if self.is_json:
            self._refuse_hostile_json()
        data = super().get_data(cache=cache, as_text=as_text, parse_form_data=parse_form_data)
        self._refuse_if_cut_short()
        return data

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if force:  # a body parsed as JSON whatever its Content-Type is checked as JSON too
            self._refuse_hostile_json()
        return super().get_json(force=force, silent=silent, cache=cache)

    def _refuse_hostile_json(self) -> None:
        if self._json_checked:
            return
        self._json_checked = True
        body = super().get_data(cache=True)  # cached: whoever reads it next gets the same bytes
        self._refuse_if_cut_short()
        # The checks read UTF-8 bytes, and Flask's parser would also take UTF-16 or UTF-32 (with
        # brackets and surrogates the checks cannot see): RFC 8259 JSON between systems is UTF-8.
        if body and json.detect_encoding(body) not in ("utf-8", "utf-8-sig"):
            raise BadRequest("the JSON body must be UTF-8 (RFC 8259)")
        # A provider's email (Postmark's JSON) is kept, its text cleaned by the email channel,
        # rather than refused: a 4xx would make the provider drop a customer's message.
        problem = json_body_problem(body, allow_lone_surrogates=self.path.startswith("/email/"))
        if problem:
            raise BadRequest(problem)

    def _load_form_data(self) -> None:
        super()._load_form_data()
        self._refuse_if_cut_short()

    def _refuse_if_cut_short(self) -> None:
        stream = self.stream
        cut_short = isinstance(stream, LimitedStream) and stream.is_exhausted
        if self.content_length is None and cut_short:
            stream.read(1)  # past a maximum this raises RequestEntityTooLarge


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions (the console's), not unpacked for requests without the
    cookie: every webhook would otherwise build a signer for nothing."""

    def open_session(self, app: Flask, request: flask.Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app from ``settings`` (read from the environment when not given)."""
    try:
        settings = settings if settings is not None else Settings.from_env()
        policy = load_policy(settings.policy_dir)
    except (SettingsError, PolicyError) as exc:
        # SystemExit prints one clear line (no traceback) under flask, gunicorn and python.
        raise StartupError(f"contact router refuses to start: {exc}") from exc
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
    db = Database(settings.database_url)
    app.extensions[EXTENSION_KEY] = Runtime(
        settings=settings,
        policy=policy,
        db=db,
        metrics=Metrics(),
        intake=IntakeService(db, policy, RoutingCache(policy)),
    )

    app.register_blueprint(ops.blueprint)
    app.register_blueprint(voice.blueprint)
    app.register_blueprint(email.blueprint)
    app.register_blueprint(chat.blueprint)
    app.register_blueprint(console.blueprint)
    init_api(app)
    cli.register(app)
    _instrument(app)
    _register_error_handlers(app)
    if settings.is_production:
        # The app's ~200,000 start-up objects live as long as the process; left to the cyclic
        # collector, every full collection walks them all and stalls a request for ~90 ms.
        gc.collect()
        gc.freeze()
    return app


def _instrument(app: Flask) -> None:
    """Count and time every request by its URL rule (bounded label values)."""
    metrics: Metrics = app.extensions[EXTENSION_KEY].metrics

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
