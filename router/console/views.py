"""Staff console pages."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("console", __name__, url_prefix="/console")
