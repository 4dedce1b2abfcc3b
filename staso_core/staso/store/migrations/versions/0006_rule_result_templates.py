"""Rule results templates: a decision row keeps only the rule results that differ from its
tool's template (``result_templates.py``); rows written before keep their full list.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_result_templates",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("results", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    # rows in the compact form would lose their templates: refuse rather than lose them
    bind = op.get_bind()
    compact = bind.execute(sa.text(
        "SELECT COUNT(*) FROM decisions "
        "WHERE CAST(results AS TEXT) LIKE '{\"template\":%'")).scalar()
    if compact:
        raise RuntimeError(f"{compact} decision rows hold compact rule results; downgrading "
                           "would lose what they refer to")
    op.drop_table("rule_result_templates")
