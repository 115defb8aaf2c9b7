"""pin_attempts: index failed attempts by time

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pin_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_pin_attempts_succeeded_at", ["succeeded", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pin_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_pin_attempts_succeeded_at")
