"""The durable tables as the first versioned schema had them: API tokens, the scheduler's
reminders and sweep mark, and ``storage_meta``.

A ledger made before migrations existed already has some of them, in exactly this shape:
each is created only where it is missing, so such a ledger is adopted as it stands.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    if "auth_tokens" not in have:
        op.create_table(
            "auth_tokens",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
            sa.Column("created_at", sa.String(32), nullable=False),
            sa.Column("revoked_at", sa.String(32)),
        )
    if "sched_reminders" not in have:
        op.create_table(
            "sched_reminders",
            sa.Column("kind", sa.String(32), primary_key=True),
            sa.Column("subject", sa.String(200), primary_key=True),
            sa.Column("due_on", sa.String(10), primary_key=True),
            sa.Column("raised_on", sa.String(10), nullable=False),
            sa.Column("raised_at", sa.String(32), nullable=False),
            sa.Column("pool", sa.String(64)),
            sa.Column("project", sa.String(200)),
            sa.Column("detail", sa.Text),
        )
        op.create_index("ix_sr_due", "sched_reminders", ["due_on"])
        op.create_index("ix_sr_kind_due", "sched_reminders", ["kind", "due_on"])
    if "sched_state" not in have:
        op.create_table(
            "sched_state",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("position", sa.BigInteger, nullable=False),
            sa.Column("as_of", sa.String(10), nullable=False),
            sa.Column("horizon", sa.String(10), nullable=False),
        )
    if "storage_meta" not in have:
        op.create_table(
            "storage_meta",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )


def downgrade() -> None:
    for table in ("storage_meta", "sched_state", "sched_reminders", "auth_tokens"):
        op.drop_table(table)
