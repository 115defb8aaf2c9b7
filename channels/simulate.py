"""`flask --app app simulate …`: play a call, an email or a chat against a running instance."""

from __future__ import annotations

import click

simulate_group = click.Group(
    "simulate", help="Play a call, email or chat against a running instance, signed correctly."
)
