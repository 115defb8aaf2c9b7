"""`flask --app app simulate …`: play a call, an email or a chat against a running instance."""

from __future__ import annotations

import click

from channels.chat.simulate import chat_command
from channels.email.simulate import email_command
from channels.voice.simulate import call_command

simulate_group = click.Group(
    "simulate", help="Play a call, email or chat against a running instance, signed correctly."
)
simulate_group.add_command(chat_command)
simulate_group.add_command(email_command)
simulate_group.add_command(call_command)
