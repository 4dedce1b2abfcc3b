"""Tables. Times are epoch seconds (float) so SQLite and PostgreSQL agree."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

escalations = sa.Table(
    "escalations", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("agent_name", sa.Text, nullable=False, server_default=""),
    sa.Column("environment", sa.Text, nullable=False, server_default=""),
    sa.Column("tool_name", sa.Text, nullable=False),
    sa.Column("tool_input", sa.JSON(none_as_null=True), nullable=False),
    sa.Column("context", sa.JSON(none_as_null=True), nullable=False),
    sa.Column("rule_name", sa.Text),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("severity", sa.String(16), nullable=False, server_default="high"),
    sa.Column("decision_id", sa.String(64), nullable=False),
    sa.Column("proposed_input", sa.JSON(none_as_null=True)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float),
    sa.Column("resolved_by", sa.Text),
    sa.Column("comment", sa.Text),
    sa.Column("modified_input", sa.JSON(none_as_null=True)),
    sa.Column("consumed_at", sa.Float),
    sa.Column("consumed_by", sa.String(64)),
    # how the answer came: api, dashboard, slack, email (None: older rows, embedded calls)
    sa.Column("resolved_via", sa.Text),
    # where the escalation is announced: the rule's ``notify`` targets (None: the defaults)
    sa.Column("notify", sa.JSON(none_as_null=True)),
    # 0: not yet announced to any channel, 1: its post is queued, 2: its answer is too
    sa.Column("announced", sa.SmallInteger, nullable=False, server_default="0"),
    # who may answer (the rule's ``approvers``; NULL: any approver) and how many must
    sa.Column("approvers", sa.JSON(none_as_null=True)),
    sa.Column("approvals_required", sa.Integer, nullable=False, server_default="1"),
    sa.Column("forbid_self_approval", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("requested_by", sa.Text),  # the call's context.requested_by
    sa.Column("approvals", sa.JSON(none_as_null=True)),  # [{name, by, via, at, comment}]
    sa.Column("policy_version", sa.Integer),  # the server's policy version (NULL: embedded)
    sa.Column("policy_digest", sa.String(32)),  # the policy source's fingerprint
    sa.Column("rule_digest", sa.String(32)),  # what its rule said (a grant from it holds
    # only while the rule still says so)
    sa.Index("ix_escalations_announced", "announced", "status"),
    sa.Index("ix_escalations_fingerprint", "fingerprint", "status"),
    sa.Index("ix_escalations_status_created", "status", "created_at"),
    sa.Index("ux_escalations_decision", "decision_id", unique=True),
    # at most one pending escalation per call: concurrent creators collide here
    sa.Index("ux_escalations_pending_fingerprint", "fingerprint", unique=True,
             sqlite_where=sa.text("status = 'pending'"),
             postgresql_where=sa.text("status = 'pending'")),
)

decisions = sa.Table(
    "decisions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("agent_name", sa.Text, nullable=False, server_default=""),
    sa.Column("environment", sa.Text, nullable=False, server_default=""),
    sa.Column("tool_name", sa.Text, nullable=False),
    sa.Column("tool_input", sa.JSON(none_as_null=True)),
    sa.Column("context", sa.JSON(none_as_null=True)),
    sa.Column("action", sa.String(16)),  # None: an unguarded @st.tool call
    sa.Column("reason", sa.Text),
    sa.Column("rule_name", sa.Text),
    sa.Column("severity", sa.String(16)),
    sa.Column("results", sa.JSON(none_as_null=True)),
    sa.Column("rules_triggered", sa.JSON(none_as_null=True)),
    sa.Column("modified_input", sa.JSON(none_as_null=True)),
    sa.Column("modifications", sa.JSON(none_as_null=True)),
    sa.Column("escalation_id", sa.String(64)),
    sa.Column("escalation_status", sa.String(16)),
    sa.Column("latency_ms", sa.Float),
    sa.Column("execution_status", sa.String(16)),  # ok | error | not_run
    sa.Column("execution_error", sa.Text),
    sa.Column("execution_output", sa.Text),
    sa.Column("execution_ms", sa.Float),
    sa.Column("policy_version", sa.Integer),  # which policy decided (NULL: embedded)
    sa.Column("policy_digest", sa.String(32)),
    sa.Column("grant_id", sa.String(64)),  # the standing approval that allowed the call
    sa.Column("answers", sa.JSON(none_as_null=True)),  # who answered, how: [{by, via, at, …}]
    sa.Index("ix_decisions_created", "created_at"),
    sa.Index("ix_decisions_tool", "tool_name", "created_at"),
)

# a tool's rule results when every rule passes, stored once: a decision's ``results`` holds
# the key and what differed (``result_templates.py``)
rule_result_templates = sa.Table(
    "rule_result_templates", metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # a hash of ``results``
    sa.Column("results", sa.Text, nullable=False),  # the JSON list, as rows held it
    sa.Column("created_at", sa.Float, nullable=False),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    # agent keys: the agent names (a glob) the key may act for; NULL: any (older keys)
    sa.Column("agents", sa.Text),
    # approver keys: the Slack user and the e-mail address that answer as this key
    sa.Column("slack_user", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("groups", sa.JSON(none_as_null=True)),  # approver groups: ["payments", …]
)

# standing approvals: while one lives, a call its rule would escalate that falls inside its
# scope (agent, tool, rule, an optional CEL condition) is allowed, up to ``max_uses`` times
grants = sa.Table(
    "grants", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_via", sa.Text),
    sa.Column("escalation_id", sa.String(64)),  # the escalation it was granted from
    sa.Column("agent_name", sa.Text, nullable=False),
    sa.Column("tool_name", sa.Text, nullable=False),
    sa.Column("rule_name", sa.Text, nullable=False),
    sa.Column("environment", sa.Text),  # NULL: any
    sa.Column("condition", sa.Text),  # CEL over tool_name, tool_input, context
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("max_uses", sa.Integer),  # NULL: until it expires
    sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_used_at", sa.Float),
    sa.Column("forbid_self_approval", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("revoked_at", sa.Float),
    sa.Column("revoked_by", sa.Text),
    sa.Column("policy_version", sa.Integer),
    sa.Column("rule_digest", sa.String(32)),  # what its rule said; another rule: not used
    sa.Index("ix_grants_scope", "agent_name", "tool_name", "expires_at"),
    sa.Index("ix_grants_created", "created_at"),
)

policies = sa.Table(
    "policies", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.Text),
)

# dashboard sessions ended before their expiry (logout): every replica refuses them
ended_sessions = sa.Table(
    "ended_sessions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SHA-256 of the session cookie
    sa.Column("expires_at", sa.Float, nullable=False),  # the row may go once this passes
    sa.Column("ended_at", sa.Float, nullable=False),
    sa.Index("ix_ended_sessions_expires", "expires_at"),
)

# what the approval channels post: one row per escalation and target (``slack:#payments``)
# and kind (post, then update once answered); queued rows are delivered, retried with
# backoff, by any replica (``lease_until``: one replica delivers it at a time)
notices = sa.Table(
    "notices", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("escalation_id", sa.String(64), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # post | update
    sa.Column("state", sa.String(16), nullable=False),  # queued | sent | failed | skipped
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("ref", sa.JSON(none_as_null=True)),  # what the channel needs to update it
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float),
    sa.Index("ix_notices_due", "state", "next_at"),
    sa.Index("ix_notices_escalation", "escalation_id"),
)

# things that may be used once: a signed Slack request (replays), an e-mail link
used_once = sa.Table(
    "used_once", metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SHA-256 of what was used
    sa.Column("expires_at", sa.Float, nullable=False),  # the row may go once this passes
    sa.Column("used_at", sa.Float, nullable=False),
    sa.Index("ix_used_once_expires", "expires_at"),
)

# the e-mail channel's answer links: a random token each, kept only as its SHA-256 (whoever
# reads the database cannot make a link), bound to one escalation, approver key, address
# and action; used once
answer_links = sa.Table(
    "answer_links", metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SHA-256 of the token
    sa.Column("escalation_id", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # approve | deny
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float),  # answered with it, or withdrawn (its key re-linked)
    sa.Index("ix_answer_links_key", "key_id"),
    sa.Index("ix_answer_links_expires", "expires_at"),
)
