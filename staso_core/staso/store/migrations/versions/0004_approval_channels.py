"""Approval channels: Slack and e-mail.

``notices``: what the channels post and update, queued in the database so that a restart
loses none and any replica delivers them. ``used_once``: signed Slack requests already
received (replays are refused on every replica). ``answer_links``: the e-mail channel's
approve and deny links, each kept only as the hash of its random token. Escalations learn where they
are announced (``notify``), whether they have been (``announced``) and how their answer
came (``resolved_via``); approver keys, which Slack user and e-mail address answer as them.

Escalations made before this revision count as announced: a server upgraded with a Slack
channel configured does not post its whole history.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("escalations", sa.Column("resolved_via", sa.Text(), nullable=True))
    op.add_column("escalations", sa.Column("notify", sa.JSON(none_as_null=True),
                                           nullable=True))
    op.add_column("escalations", sa.Column("announced", sa.SmallInteger(), nullable=False,
                                           server_default="0"))
    op.execute("UPDATE escalations SET announced = 2")
    op.create_index("ix_escalations_announced", "escalations", ["announced", "status"])
    op.add_column("api_keys", sa.Column("slack_user", sa.Text(), nullable=True))
    op.add_column("api_keys", sa.Column("email", sa.Text(), nullable=True))
    op.create_table(
        "notices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("escalation_id", sa.String(length=64), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("ref", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notices_due", "notices", ["state", "next_at"])
    op.create_index("ix_notices_escalation", "notices", ["escalation_id"])
    op.create_table(
        "used_once",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_used_once_expires", "used_once", ["expires_at"])
    op.create_table(
        "answer_links",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("escalation_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_answer_links_key", "answer_links", ["key_id"])
    op.create_index("ix_answer_links_expires", "answer_links", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_answer_links_expires", table_name="answer_links")
    op.drop_index("ix_answer_links_key", table_name="answer_links")
    op.drop_table("answer_links")
    op.drop_index("ix_used_once_expires", table_name="used_once")
    op.drop_table("used_once")
    op.drop_index("ix_notices_escalation", table_name="notices")
    op.drop_index("ix_notices_due", table_name="notices")
    op.drop_table("notices")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("email")
        batch.drop_column("slack_user")
    op.drop_index("ix_escalations_announced", table_name="escalations")
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("announced")
        batch.drop_column("notify")
        batch.drop_column("resolved_via")
