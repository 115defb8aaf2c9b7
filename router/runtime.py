"""What a running app holds: settings, policy, database and metrics, wired once by create_app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from config.policy import Policy
from config.settings import Settings
from router.intake import IntakeService
from router.metrics import Metrics
from router.store.db import Database

EXTENSION_KEY = "contact_router"


@dataclass(frozen=True)
class Runtime:
    """The app's collaborators, reachable from handlers and CLI commands."""

    settings: Settings
    policy: Policy
    db: Database
    metrics: Metrics
    intake: IntakeService


def runtime() -> Runtime:
    """Return the current app's runtime."""
    found: Runtime = current_app.extensions[EXTENSION_KEY]
    return found
