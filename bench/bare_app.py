"""The bare Flask baseline for bench_http.py: one fixed TwiML answer to any POST.

Served by gunicorn exactly as the real app is (the Procfile's web settings, same workers), so the
ratio in the table is what the router's own work costs on top of Flask and the WSGI server.
"""

from __future__ import annotations

from flask import Flask, Response

TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Gather input="dtmf" '
    'action="/voice/pin?step=1" timeout="6"><Say language="en-US">Thank you for calling '
    "Premium Support. Please enter your support PIN, then press the pound key.</Say></Gather>"
    "</Response>"
)


def create_app() -> Flask:
    """Return the baseline app (gunicorn 'bare_app:create_app()')."""
    app = Flask("bare")

    @app.post("/", defaults={"path": ""})
    @app.post("/<path:path>")
    def answer(path: str) -> Response:
        return Response(TWIML, content_type="text/xml; charset=utf-8")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status": "ok"}', content_type="application/json")

    return app
