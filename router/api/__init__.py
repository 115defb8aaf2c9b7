"""The staff JSON API under /api/v1 (flask-smorest: schemas and the OpenAPI document)."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from router.api import explain

API_PREFIX = "/api/v1"


def init_api(app: Flask) -> Api:
    """Attach the API blueprints and the OpenAPI document at /api/v1/openapi.json."""
    app.config.update(
        API_TITLE="Contact router staff API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
    )
    api = Api(
        app, spec_kwargs={"info": {"description": "Routing rules, queues, accounts, contacts."}}
    )
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "Staff API token"}
    )
    api.register_blueprint(explain.blueprint, url_prefix=f"{API_PREFIX}/route")
    return api
