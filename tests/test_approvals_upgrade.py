"""Approvers and grants on a database made before them, and the documented policy.

A store at revision 0004 (the approval channels) holding a pending escalation and an
approver key is migrated on first use: the escalation keeps its old meaning (any approver,
one approval), the key has no groups, and the migration goes back down cleanly."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from servers import new_database
from staso.errors import PolicyError
from staso.plugins import make_plugin_manager
from staso.policy.discovery import load_policy_source
from staso.store import open_store
from staso.store.keys import hash_key
from staso.store.store import HEAD_REVISION, MIGRATIONS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "approvals.md"


def _alembic(conn: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_database_from_before_approvers_is_migrated_and_keeps_its_meaning(
        tmp_path: Path, backend: str) -> None:
    url = new_database(tmp_path, backend)
    engine = sa.create_engine(url)
    now = time.time()
    with engine.begin() as conn:
        command.upgrade(_alembic(conn), "0004")
        conn.execute(sa.text(
            "INSERT INTO escalations (id, fingerprint, status, tool_name, tool_input, context,"
            " decision_id, created_at, expires_at, announced) VALUES ('esc_old', 'fp', "
            "'pending', 'process_refund', '{\"amount\": 5000}', '{}', 'dec_old', :now, "
            ":later, 2)"), {"now": now, "later": now + 3600})
        conn.execute(sa.text("INSERT INTO api_keys (id, name, role, key_hash, created_at) "
                             "VALUES ('key_old', 'olga', 'approver', :h, :t)"),
                     {"h": hash_key(secrets.token_hex(16)), "t": now})
    engine.dispose()
    store = open_store(url)  # migrates to the head revision
    try:
        esc = store.get_escalation("esc_old")
        assert (esc.approvers, esc.approvals_required, esc.forbid_self_approval,
                esc.approvals, esc.requested_by) == (None, 1, False, [], None)
        found = store.key_by_id("key_old")
        assert found is not None and found[0].groups == ()
        assert store.list_grants() == []
        answered = store.resolve("esc_old", status="approved", by="olga")
        assert answered.status == "approved"
        assert [a["name"] for a in answered.approvals] == ["olga"]
    finally:
        store.close()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")
                                ).scalar() == HEAD_REVISION
            command.downgrade(_alembic(conn), "0004")
            names = {c["name"] for c in sa.inspect(conn).get_columns("escalations")}
            assert "approvals" not in names and "resolved_via" in names
            assert not sa.inspect(conn).has_table("grants")
            command.upgrade(_alembic(conn), "head")
            assert sa.inspect(conn).has_table("grants")
    finally:
        engine.dispose()


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)


def test_the_documented_policy_loads_with_its_terms() -> None:
    pm = make_plugin_manager()
    block = _yaml_blocks(DOCS.read_text())[0]
    policy = load_policy_source("version: 1\n" + block, str(DOCS), pm)
    terms = policy.escalation_terms("large-refund")
    assert terms["approvers"] == ["alice", "group:finance-leads", "slack:U024BE7LH",
                                  "email:cfo@example.com"]
    assert terms["approvals_required"] == 2 and terms["forbid_self_approval"] is True
    assert policy.escalation_terms("refund")["approvers"] is None


@pytest.mark.parametrize(("terms", "message"), [
    ("approvers: alice", "non-empty list"),
    ("approvers: [\"team:x\"]", "unknown kind 'team'"),
    ("approvers: [\"slack:alice\"]", "Slack member id"),
    ("approvers: [\"email:not an address\"]", "one address"),
    ("approvers: [\"al ice\"]", "not a key name"),
    ("approvals_required: 0", "from 1 to 20"),
    ("approvals_required: true", "from 1 to 20"),
    ("approvers: [alice]\n    approvals_required: 2", "names only 1 person"),
    ("forbid_self_approval: \"yes\"", "true or false"),
])
def test_bad_answer_terms_fail_at_load_with_their_line(terms: str, message: str) -> None:
    source = ("version: 1\nrules:\n  - name: r\n    action: escalate\n"
              f"    {terms}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy_source(source, "p.yaml", make_plugin_manager())
    assert message in str(caught.value) and "p.yaml:5" in str(caught.value)


def test_answer_terms_on_a_rule_that_does_not_escalate_are_refused() -> None:
    source = "version: 1\nrules:\n  - name: r\n    action: block\n    approvers: [alice]\n"
    with pytest.raises(PolicyError, match="about answering escalations") as caught:
        load_policy_source(source, "p.yaml", make_plugin_manager())
    assert "p.yaml:5" in str(caught.value)  # the approvers line, not the action's
