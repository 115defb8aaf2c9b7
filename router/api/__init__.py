"""The staff JSON API under /api/v1 (flask-smorest: schemas and the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api

from router.api import (
    accounts,
    agents,
    contacts,
    explain,
    queues,
    regions,
    reservations,
    rules,
    staff,
)
from router.api.common import ErrorSchema

API_PREFIX = "/api/v1"


class StaffApi(Api):  # type: ignore[misc]
    """flask-smorest's Api, documenting errors in the shape this API answers them."""

    ERROR_SCHEMA = ErrorSchema


def _date_param(_converter: Any) -> dict[str, str]:
    return {"type": "string", "format": "date"}


def init_api(app: Flask) -> Api:
    """Attach the API blueprints and the OpenAPI document at /api/v1/openapi.json."""
    app.config.update(
        API_TITLE="Contact router staff API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
    )
    api = StaffApi(
        app,
        spec_kwargs={
            "info": {
                "description": "Routing rules, queues, accounts and PINs, calendars, contacts "
                "and the audit log. Every operation needs `Authorization: Bearer <token>` "
                "(`flask --app app staff token EMAIL`). Roles: viewer reads; editor changes "
                "rules, queues, calendars and contacts; admin manages staff, accounts, PINs "
                "and tokens. Lists take `page` and `per_page` and answer "
                "`{items, page, per_page, total, pages}`. Errors answer "
                "`{error, message, errors?}` with 400, 401, 403, 404, 409 or 422."
            }
        },
    )
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "Staff API token"}
    )
    app.url_map.converters["isodate"] = regions.DateConverter
    api.register_converter(regions.DateConverter, _date_param)
    for blueprint, prefix in (
        (explain.blueprint, "/route"),
        (rules.rules_blp, "/rules"),
        (rules.ruleset_blp, "/rule-set"),
        (queues.blp, "/queues"),
        (queues.overview_blp, "/queue-overview"),
        (regions.blp, "/regions"),
        (contacts.blp, "/contacts"),
        (accounts.blp, "/accounts"),
        (accounts.lockouts_blp, "/pin-lockouts"),
        (staff.blp, "/staff"),
        (agents.blp, "/agents"),
        (staff.me_blp, "/me"),
        (staff.audit_blp, "/audit"),
        (reservations.blp, ""),
    ):
        api.register_blueprint(blueprint, url_prefix=f"{API_PREFIX}{prefix}")
    return api
