"""Agent keys bound to agent names; name columns wide enough for any escaped text.

``api_keys.agents``: the agent names (a glob, such as ``billing-*``) an agent key may act
for. Keys made before this revision have none (NULL) and keep acting for any agent name,
as they did; ``staso keys bind KEY_ID --agent PATTERN`` narrows one.

The name columns become unbounded text on PostgreSQL: a tool or agent name holding text
the database cannot store as is is kept escaped (longer than given), and a bounded column
would refuse it. SQLite never enforced the bounds.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WIDENED = {
    "escalations": ("agent_name", "environment", "tool_name", "rule_name", "resolved_by"),
    "decisions": ("agent_name", "environment", "tool_name", "rule_name"),
    "api_keys": ("name",),
    "policies": ("created_by",),
}


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("agents", sa.Text(), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in WIDENED.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.Text())


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("agents")
