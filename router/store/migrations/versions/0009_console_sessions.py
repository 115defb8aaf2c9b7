"""console: server-side sessions and log-in lock-outs

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import router.store.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", router.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", router.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", router.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", router.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_user_id"],
            ["staff_users.id"],
            name=op.f("fk_console_sessions_staff_user_id_staff_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_console_sessions_token_hash")),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_sessions_staff_user_id"), ["staff_user_id"], unique=False
        )
    op.create_table(
        "console_login_locks",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("lockouts", sa.Integer(), nullable=False),
        sa.Column("locked_until", router.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "last_failure_at", router.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_console_login_locks")),
    )
    with op.batch_alter_table("console_login_locks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_login_locks_last_failure_at"), ["last_failure_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("console_login_locks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_login_locks_last_failure_at"))
    op.drop_table("console_login_locks")
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_sessions_staff_user_id"))
    op.drop_table("console_sessions")
