"""agents: profiles, skills, presence events, reservations; contacts' agent; queues' strategy

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import router.store.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column(
            "languages",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("voice_endpoint", sa.String(length=320), nullable=True),
        sa.Column("capacity_voice", sa.Integer(), nullable=False),
        sa.Column("capacity_chat", sa.Integer(), nullable=False),
        sa.Column("capacity_email", sa.Integer(), nullable=False),
        sa.Column("capacity_portal", sa.Integer(), nullable=False),
        sa.Column("load_voice", sa.Integer(), nullable=False),
        sa.Column("load_chat", sa.Integer(), nullable=False),
        sa.Column("load_email", sa.Integer(), nullable=False),
        sa.Column("load_portal", sa.Integer(), nullable=False),
        sa.Column("presence", sa.String(length=16), nullable=False),
        sa.Column("presence_reason", sa.String(length=100), nullable=True),
        sa.Column(
            "presence_changed_at", router.store.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("missed_offers", sa.Integer(), nullable=False),
        sa.Column("idle_since", router.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_offered_at", router.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", router.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", router.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "presence IN ('available', 'away', 'offline')", name=op.f("ck_agents_presence_valid")
        ),
        sa.CheckConstraint(
            "capacity_chat BETWEEN 0 AND 100", name=op.f("ck_agents_capacity_chat_range")
        ),
        sa.CheckConstraint(
            "capacity_email BETWEEN 0 AND 100", name=op.f("ck_agents_capacity_email_range")
        ),
        sa.CheckConstraint(
            "capacity_portal BETWEEN 0 AND 100", name=op.f("ck_agents_capacity_portal_range")
        ),
        sa.CheckConstraint(
            "capacity_voice BETWEEN 0 AND 100", name=op.f("ck_agents_capacity_voice_range")
        ),
        sa.CheckConstraint(
            "load_chat >= 0 AND load_chat <= capacity_chat",
            name=op.f("ck_agents_load_chat_within_capacity"),
        ),
        sa.CheckConstraint(
            "load_email >= 0 AND load_email <= capacity_email",
            name=op.f("ck_agents_load_email_within_capacity"),
        ),
        sa.CheckConstraint(
            "load_portal >= 0 AND load_portal <= capacity_portal",
            name=op.f("ck_agents_load_portal_within_capacity"),
        ),
        sa.CheckConstraint(
            "load_voice >= 0 AND load_voice <= capacity_voice",
            name=op.f("ck_agents_load_voice_within_capacity"),
        ),
        sa.ForeignKeyConstraint(
            ["staff_user_id"],
            ["staff_users.id"],
            name=op.f("fk_agents_staff_user_id_staff_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("staff_user_id", name=op.f("pk_agents")),
    )
    op.create_table(
        "agent_presence_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("at", router.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("presence", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.CheckConstraint(
            "presence IN ('available', 'away', 'offline')",
            name=op.f("ck_agent_presence_events_presence_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.staff_user_id"],
            name=op.f("fk_agent_presence_events_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_presence_events")),
    )
    with op.batch_alter_table("agent_presence_events", schema=None) as batch_op:
        batch_op.create_index("ix_agent_presence_events_agent_at", ["agent_id", "at"], unique=False)

    op.create_table(
        "agent_skills",
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("queue_key", sa.String(length=64), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.CheckConstraint("level BETWEEN 1 AND 3", name=op.f("ck_agent_skills_level_range")),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.staff_user_id"],
            name=op.f("fk_agent_skills_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["queue_key"],
            ["queues.key"],
            name=op.f("fk_agent_skills_queue_key_queues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", "queue_key", name=op.f("pk_agent_skills")),
    )
    with op.batch_alter_table("agent_skills", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_skills_queue_key"), ["queue_key"], unique=False)

    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("offered_at", router.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", router.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", router.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "explain",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "channel IN ('voice', 'email', 'chat', 'portal')",
            name=op.f("ck_reservations_channel_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('offered', 'accepted', 'rejected', 'expired', 'cancelled')",
            name=op.f("ck_reservations_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.staff_user_id"],
            name=op.f("fk_reservations_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_reservations_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.create_index("ix_reservations_agent_status", ["agent_id", "status"], unique=False)
        batch_op.create_index(
            "ix_reservations_status_expires_at", ["status", "expires_at"], unique=False
        )
        batch_op.create_index(
            "uq_reservations_open_contact",
            ["contact_id"],
            unique=True,
            sqlite_where=sa.text("status = 'offered'"),
            postgresql_where=sa.text("status = 'offered'"),
        )

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assigned_agent_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_contacts_assigned_agent_id"), ["assigned_agent_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_contacts_assigned_agent_id_agents"),
            "agents",
            ["assigned_agent_id"],
            ["staff_user_id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "assignment_strategy",
                sa.String(length=16),
                server_default="longest_idle",
                nullable=False,
            )
        )
        batch_op.create_check_constraint(
            "assignment_strategy_valid",
            "assignment_strategy IN ('longest_idle', 'least_occupied', 'round_robin', 'highest_skill')",
        )


def downgrade() -> None:
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_constraint("assignment_strategy_valid", type_="check")
        batch_op.drop_column("assignment_strategy")

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_contacts_assigned_agent_id_agents"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_contacts_assigned_agent_id"))
        batch_op.drop_column("assigned_agent_id")

    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_reservations_open_contact",
            sqlite_where=sa.text("status = 'offered'"),
            postgresql_where=sa.text("status = 'offered'"),
        )
        batch_op.drop_index("ix_reservations_status_expires_at")
        batch_op.drop_index("ix_reservations_agent_status")

    op.drop_table("reservations")
    with op.batch_alter_table("agent_skills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_skills_queue_key"))

    op.drop_table("agent_skills")
    with op.batch_alter_table("agent_presence_events", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_presence_events_agent_at")

    op.drop_table("agent_presence_events")
    op.drop_table("agents")
