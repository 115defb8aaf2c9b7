"""Voice channel HTTP handlers (SPEC 4): verify, normalise, call the intake service, render."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("voice", __name__)
