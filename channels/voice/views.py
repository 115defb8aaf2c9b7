"""Voice channel HTTP handlers (SPEC 4.1): verify, normalise, call the voice service, render.

Every URL here checks `X-Twilio-Signature` first (403 otherwise). A step that cannot reach the
database answers with the fallback queue instead of an error, so no caller is dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from channels.http import error_response, store_unavailable, unavailable
from channels.voice import signature
from channels.voice.calls import CallRequest
from channels.voice.service import VoiceService
from ivr.machine import Stage
from ivr.twiml import CONTENT_TYPE, Urls
from router.runtime import runtime

blueprint = Blueprint("voice", __name__, url_prefix="/voice")
log = logging.getLogger(__name__)

SERVICE_KEY = "channels.voice"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
_CALL_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# QueueResult and CallStatus values: bridged, queue-full, no-answer, ...
_STATUS_WORD = re.compile(r"[a-z-]{1,32}")


class BadWebhook(ValueError):
    """A signed request the IVR cannot use (a missing CallSid, a broken step number)."""


def voice_service() -> VoiceService:
    """Return the voice service create_app built for the current app."""
    service: VoiceService = current_app.extensions[SERVICE_KEY]
    return service


@blueprint.before_request
def _authenticate() -> Response | None:
    """Refuse any request Twilio did not sign for this public URL."""
    verdict = signature.check(request, runtime().settings)
    if verdict.ok:
        return None
    # Never the signature, the token or the body: only what lets an operator find the cause.
    log.warning(
        "refused voice webhook %s %s from %s: %s (%s)",
        request.method,
        request.path,
        request.remote_addr,
        verdict.reason,
        verdict.algorithm,
    )
    return error_response(403, "missing or invalid Twilio signature")


@blueprint.post("/incoming")
def incoming() -> Response:
    """Answer a new call (the Voice URL of every regional number)."""
    return _answer(lambda: voice_service().incoming(_call(), _urls()))


@blueprint.post("/fallback")
def fallback() -> Response:
    """Answer without the database: an apology, then the fallback queue."""
    return _twiml(voice_service().fallback(_dialled(), _urls()))


@blueprint.post("/pin")
def pin() -> Response:
    """Take the keyed PIN."""
    return _answer(
        lambda: voice_service().pin(_call(), _step(), request.form.get("Digits"), _urls())
    )


@blueprint.post("/severity")
def severity() -> Response:
    """Take the severity choice."""
    return _menu(Stage.SEVERITY)


@blueprint.post("/topic")
def topic() -> Response:
    """Take the topic choice, open the contact and queue the caller."""
    return _menu(Stage.TOPIC)


@blueprint.post("/wait")
def wait() -> Response:
    """Tell a waiting caller their position and expected wait, then play hold music."""
    voice = request.args.get("lang", "")
    position = _number(request.form.get("QueuePosition"))
    average = _number(request.form.get("AvgQueueTime"))
    return _twiml(voice_service().wait(voice, position, average, _urls()))


@blueprint.post("/queue-result")
def queue_result() -> Response:
    """Record why the caller left the queue (Enqueue's action URL) and answer."""
    result = request.form.get("QueueResult", "").strip().lower()
    if not _STATUS_WORD.fullmatch(result):
        return _bad_request(BadWebhook("QueueResult is missing or malformed"))
    queue_time = _number(request.form.get("QueueTime"))
    try:
        call = _call()
        return _twiml(voice_service().queue_result(call, result, queue_time, _urls()))
    except BadWebhook as exc:
        return _bad_request(exc)
    except SQLAlchemyError as exc:
        _log_store_error(exc, f"voice queue result {result} not recorded")
    except Exception:
        log.exception("voice queue result %s not recorded: unexpected error", result)
    if result == "hangup":
        # The caller is gone: refuse, so the report is not acknowledged and lost.
        return _unavailable()
    # The caller is still on the line: answer as the result needs, without the database.
    return _twiml(voice_service().queue_left_offline(result, _dialled(), _urls()))


@blueprint.post("/status")
def status() -> Response:
    """Record the call status callback ("completed" goes on the contact's timeline)."""
    call_status = request.form.get("CallStatus", "").strip().lower()
    if not _STATUS_WORD.fullmatch(call_status):
        return error_response(400, "CallStatus is missing or malformed")
    try:
        call = _call()
        voice_service().status(call, call_status, _number(request.form.get("CallDuration")))
    except BadWebhook as exc:
        return error_response(400, str(exc))
    except SQLAlchemyError as exc:
        _log_store_error(exc, f"voice status {call_status} not recorded")
        return _unavailable()
    return Response(status=204)


def _menu(stage: Stage) -> Response:
    return _answer(
        lambda: voice_service().menu(_call(), stage, _step(), request.form.get("Digits"), _urls())
    )


def _answer(work: Callable[[], str]) -> Response:
    """Run one IVR step; if it fails, the caller still reaches a human via the fallback queue."""
    try:
        return _twiml(work())
    except BadWebhook as exc:
        return _bad_request(exc)
    except SQLAlchemyError as exc:
        _log_store_error(exc, f"voice {request.path}", "; caller sent to the fallback queue")
    except Exception:
        log.exception("voice %s: unexpected error; caller sent to the fallback queue", request.path)
    return _twiml(voice_service().fallback(_dialled(), _urls()))


def _call() -> CallRequest:
    """Read the call's identity from the webhook's form."""
    call_sid = request.form.get("CallSid", "").strip()
    if not _CALL_SID.fullmatch(call_sid):
        raise BadWebhook("CallSid is missing or malformed")
    token = request.headers.get(IDEMPOTENCY_HEADER, "").strip()[:128] or None
    return CallRequest(
        call_sid=call_sid,
        from_number=request.form.get("From", "").strip()[:64],
        to_number=_dialled(),
        idempotency_token=token,
    )


def _dialled() -> str:
    return (request.form.get("To") or request.form.get("Called") or "").strip()[:64]


def _step() -> int:
    raw = request.args.get("step", "")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise BadWebhook("the step number in the URL is missing or malformed")
    return int(raw)


def _number(raw: str | None) -> int | None:
    """Read a Twilio count (seconds, a position); anything else is treated as absent."""
    text = (raw or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _urls() -> Urls:
    return Urls(base=f"{request.script_root}{blueprint.url_prefix}/")


def _twiml(twiml: str, status: int = 200) -> Response:
    return Response(twiml, status=status, content_type=CONTENT_TYPE)


def _bad_request(exc: BadWebhook) -> Response:
    log.warning("voice %s: bad webhook: %s", request.path, exc)
    return _twiml(voice_service().failure(_dialled(), _urls()), status=400)


def _unavailable() -> Response:
    # Twilio does not retry callbacks on its own; Retry-After says when a replay may succeed.
    return unavailable("could not record the report; retry", retry_after=5)


def _log_store_error(exc: SQLAlchemyError, what: str, outcome: str = "") -> None:
    """Log a database error: an unreachable store in one line, a failing query with its trace."""
    if store_unavailable(exc):
        log.error("%s: database unavailable (%s)%s", what, type(exc).__name__, outcome)
    else:
        log.exception("%s: database error%s", what, outcome)
