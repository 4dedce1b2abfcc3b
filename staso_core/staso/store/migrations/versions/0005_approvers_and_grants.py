"""Approvers, quorum and standing approvals.

Escalations keep, from the rule that made them, who may answer (``approvers``), how many
must approve (``approvals_required``), whether the requester may approve
(``forbid_self_approval``, ``requested_by``), the approvals so far and which policy made them.
Keys get groups. ``grants``: standing approvals, each with its scope, expiry and uses.
Decision rows record the policy, the grant and the answers that decided them.

Revision ID: 0005
Revises: 0004
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ESCALATION_COLUMNS: tuple[sa.Column[Any], ...] = (
    sa.Column("approvers", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("approvals_required", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("forbid_self_approval", sa.Boolean(), nullable=False,
              server_default=sa.false()),
    sa.Column("requested_by", sa.Text(), nullable=True),
    sa.Column("approvals", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("policy_version", sa.Integer(), nullable=True),
    sa.Column("policy_digest", sa.String(length=32), nullable=True),
    sa.Column("rule_digest", sa.String(length=32), nullable=True),
)
_DECISION_COLUMNS = (
    ("policy_version", sa.Integer()),
    ("policy_digest", sa.String(length=32)),
    ("grant_id", sa.String(length=64)),
    ("answers", sa.JSON(none_as_null=True)),
)


def upgrade() -> None:
    for column in _ESCALATION_COLUMNS:
        op.add_column("escalations", column)
    for name, kind in _DECISION_COLUMNS:
        op.add_column("decisions", sa.Column(name, kind, nullable=True))
    op.add_column("api_keys", sa.Column("groups", sa.JSON(none_as_null=True), nullable=True))
    op.create_table(
        "grants",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_via", sa.Text(), nullable=True),
        sa.Column("escalation_id", sa.String(length=64), nullable=True),
        sa.Column("agent_name", sa.Text(), nullable=False),
        sa.Column("tool_name", sa.Text(), nullable=False),
        sa.Column("rule_name", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=True),
        sa.Column("condition", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.Column("forbid_self_approval", sa.Boolean(), nullable=False,
                  server_default=sa.false()),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("revoked_by", sa.Text(), nullable=True),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("rule_digest", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_grants_scope", "grants", ["agent_name", "tool_name", "expires_at"])
    op.create_index("ix_grants_created", "grants", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_grants_created", table_name="grants")
    op.drop_index("ix_grants_scope", table_name="grants")
    op.drop_table("grants")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("groups")
    with op.batch_alter_table("decisions") as batch:
        for name, _ in reversed(_DECISION_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("escalations") as batch:
        for column in reversed(_ESCALATION_COLUMNS):
            batch.drop_column(column.name)
