"""voice: IVR call state (step, last answer, queue outcome)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import router.store.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ivr_calls",
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("region", sa.String(length=16), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("from_number", sa.String(length=64), nullable=True),
        sa.Column("to_number", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("pin_failures", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("idempotency_token", sa.String(length=128), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("enqueued_at", router.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("queue_result", sa.String(length=32), nullable=True),
        sa.Column("ended_at", router.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", router.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", router.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_ivr_calls_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_ivr_calls_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("call_sid", name=op.f("pk_ivr_calls")),
    )


def downgrade() -> None:
    op.drop_table("ivr_calls")
