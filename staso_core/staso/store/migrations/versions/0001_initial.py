"""Initial tables: escalations, decisions, api_keys, policies.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('revoked_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    op.create_table('decisions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('agent_name', sa.String(length=200), server_default='', nullable=False),
    sa.Column('environment', sa.String(length=100), server_default='', nullable=False),
    sa.Column('tool_name', sa.String(length=200), nullable=False),
    sa.Column('tool_input', sa.JSON(), nullable=True),
    sa.Column('context', sa.JSON(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('rule_name', sa.String(length=200), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=True),
    sa.Column('results', sa.JSON(), nullable=True),
    sa.Column('rules_triggered', sa.JSON(), nullable=True),
    sa.Column('modified_input', sa.JSON(), nullable=True),
    sa.Column('modifications', sa.JSON(), nullable=True),
    sa.Column('escalation_id', sa.String(length=64), nullable=True),
    sa.Column('escalation_status', sa.String(length=16), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('execution_status', sa.String(length=16), nullable=True),
    sa.Column('execution_error', sa.Text(), nullable=True),
    sa.Column('execution_output', sa.Text(), nullable=True),
    sa.Column('execution_ms', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_decisions_created', 'decisions', ['created_at'], unique=False)
    op.create_index('ix_decisions_tool', 'decisions', ['tool_name', 'created_at'], unique=False)
    op.create_table('escalations',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('agent_name', sa.String(length=200), server_default='', nullable=False),
    sa.Column('environment', sa.String(length=100), server_default='', nullable=False),
    sa.Column('tool_name', sa.String(length=200), nullable=False),
    sa.Column('tool_input', sa.JSON(), nullable=False),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('rule_name', sa.String(length=200), nullable=True),
    sa.Column('reason', sa.Text(), server_default='', nullable=False),
    sa.Column('severity', sa.String(length=16), server_default='high', nullable=False),
    sa.Column('decision_id', sa.String(length=64), nullable=False),
    sa.Column('proposed_input', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.Column('resolved_at', sa.Float(), nullable=True),
    sa.Column('resolved_by', sa.String(length=200), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('modified_input', sa.JSON(), nullable=True),
    sa.Column('consumed_at', sa.Float(), nullable=True),
    sa.Column('consumed_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_escalations_fingerprint', 'escalations', ['fingerprint', 'status'], unique=False)
    op.create_index('ix_escalations_status_created', 'escalations', ['status', 'created_at'], unique=False)
    op.create_index('ux_escalations_decision', 'escalations', ['decision_id'], unique=True)
    op.create_index('ux_escalations_pending_fingerprint', 'escalations', ['fingerprint'], unique=True, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
    op.create_table('policies',
    sa.Column('version', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('version')
    )


def downgrade() -> None:
    op.drop_table('policies')
    op.drop_index('ux_escalations_pending_fingerprint', table_name='escalations', sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ux_escalations_decision', table_name='escalations')
    op.drop_index('ix_escalations_status_created', table_name='escalations')
    op.drop_index('ix_escalations_fingerprint', table_name='escalations')
    op.drop_table('escalations')
    op.drop_index('ix_decisions_tool', table_name='decisions')
    op.drop_index('ix_decisions_created', table_name='decisions')
    op.drop_table('decisions')
    op.drop_table('api_keys')
