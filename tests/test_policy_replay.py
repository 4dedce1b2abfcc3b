"""``staso policy replay`` (recorded calls under a candidate policy: what changes, by rule;
nothing written) on the embedded store and against a real ``staso serve``, and ``staso
policy push`` (checked here first; admin key only)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import staso as st
from conftest import start_server, stop_server
from servers import Server, cli
from staso.cli import app

# in force when the calls were made: destructive SQL is blocked, the rest runs
RECORDED = "version: 1\nrules:\n  - use: builtin/destructive_sql\n    tools: [run_sql]\n"
# the candidate: refunds over 1,000 now escalate; SQL is no longer checked
CANDIDATE = """version: 1
rules:
  - name: big_refund
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
"""
CALLS = [("process_refund", {"amount": 50}), ("process_refund", {"amount": 5000}),
         ("process_refund", {"amount": 9000, "order": "A-1"}),
         ("run_sql", {"q": "DROP TABLE users"}), ("login", {"user": "ann", "password": "pw"})]


def replay(*args: str, home: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["policy", "replay", *args],
                                env={"STASO_HOME": str(home), "STASO_BASE_URL": ""})
    return result.exit_code, result.stdout + result.stderr


def counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        return (conn.execute("SELECT count(*) FROM decisions").fetchone()[0],
                conn.execute("SELECT count(*) FROM escalations").fetchone()[0])


def assert_changes(text: str) -> None:
    assert "replayed 5 recorded call(s) from the last 7d" in text
    assert ": 3 outcome(s) change" in text
    assert "  allow → escalate  big_refund  2 call(s)" in text
    assert "  block → allow  builtin/destructive_sql  1 call(s)" in text
    assert '{"amount": 9000, "order": "A-1"}' in text and "process_refund" in text
    assert "1 of these call(s) hold masked fields" in text


def test_replay_on_the_embedded_store_shows_changes_by_rule_and_writes_nothing(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "recorded.yaml").write_text(RECORDED)
    st.init(home=home, agent_name="refund-agent", policy=tmp_path / "recorded.yaml")
    try:
        ids = [st.guard(tool, args).decision_id for tool, args in CALLS]
    finally:
        st.shutdown()
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    before = counts(home / "staso.db")
    code, text = replay(str(candidate), home=home)
    assert code == 0, text
    assert_changes(text)
    assert ids[1] in text and ids[2] in text and ids[3] in text
    code, text = replay(str(candidate), "--json", "--limit", "3", home=home)
    assert code == 0, text
    data = json.loads(text)
    assert data["replayed"] == 3 and data["masked"] == 1  # the newest three calls
    assert [(c["before"], c["after"], c["rule"], c["count"]) for c in data["changes"]] == [
        ("allow", "escalate", "big_refund", 1), ("block", "allow", "builtin/destructive_sql", 1)]
    assert counts(home / "staso.db") == before  # no decision, no escalation written


def test_replay_refuses_a_bad_policy_or_filter_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: r\n    acton: block\n")
    code, text = replay(str(bad), home=tmp_path)
    assert code == 1 and text.strip().endswith("did you mean 'action'?")
    bad.write_text(CANDIDATE)
    code, text = replay(str(bad), home=tmp_path / "none")
    assert code == 1 and "no decision log to replay" in text
    assert not (tmp_path / "none").exists()
    st.init(home=tmp_path, agent_name="refund-agent")
    st.shutdown()
    code, text = replay(str(bad), "--since", "lately", home=tmp_path)
    assert code == 1 and len(text.strip().splitlines()) == 1 and "since" in text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("replay-serve")
    (tmp / "recorded.yaml").write_text(RECORDED)
    running = start_server(tmp, "sqlite", policy=tmp / "recorded.yaml")
    yield running
    stop_server(running)


def test_replay_against_a_server_with_an_approver_key(server: Server, tmp_path: Path) -> None:
    client = server.agent_client("refund-agent")
    try:
        ids = [client.guard(tool, args).decision_id for tool, args in CALLS]
        client.flush()
    finally:
        client.shutdown()
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    decisions, escalations = server.stored_ids("decisions"), server.stored_ids("escalations")
    assert set(ids) <= decisions
    # a real process, as an operator runs it
    proc = cli("policy", "replay", str(candidate), "--url", server.url,
               "--key", server.keys["approver"])
    assert_changes(proc.stdout)
    assert server.stored_ids("decisions") == decisions
    assert server.stored_ids("escalations") == escalations
    result = CliRunner().invoke(app, ["policy", "replay", str(candidate), "--url", server.url,
                                      "--key", server.keys["agent"]])
    assert result.exit_code == 1 and "403" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_reads_the_servers_decision_log(server: Server, tmp_path: Path) -> None:
    """With --url, the recorded calls on the server name the known tools and give samples."""
    client = server.agent_client("refund-agent")
    try:
        client.guard("process_refund", {"amount": 70})
        client.flush()
    finally:
        client.shutdown()
    path = tmp_path / "candidate.yaml"
    path.write_text(CANDIDATE.replace("[process_refund]", "[proces_refund, process_refund]")
                    .replace("> 1000", '> "1000"'))
    result = CliRunner().invoke(app, ["policy", "check", str(path), "--url", server.url,
                                      "--key", server.keys["approver"]])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:5: rule big_refund (line 3): tool_input.amount > "
                               "\"1000\" fails on decision ")
    assert lines[0].endswith("; did you mean 1000?") and "is 70 (a number)" in lines[0]
    assert lines[1] == (f"warning: {path}:4: rule 'big_refund': tool 'proces_refund' matches "
                        "no tool seen yet in the policy's tests, the decision log or --tool; "
                        "did you mean 'process_refund'?")


def push(file: Path, server: Server, role: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["policy", "push", str(file), "--url", server.url,
                                      "--key", server.keys[role]])
    return result.exit_code, result.stdout, result.stderr


def policy_version(server: Server) -> object:
    answer = httpx.get(server.url + "/v1/policy", headers=server.headers("admin"), timeout=30)
    return answer.json().get("version")


def test_push_installs_with_an_admin_key_only(server: Server, tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    version = policy_version(server)
    code, out, err = push(candidate, server, "approver")
    assert code == 1
    assert err.strip().splitlines() == [err.strip()] and "403" in err and "admin key" in err
    assert policy_version(server) == version
    code, out, err = push(candidate, server, "admin")
    assert code == 0, err
    new = policy_version(server)
    assert new != version and f"version {new} (1 rule)" in out
    answer = httpx.get(server.url + "/v1/policy", headers=server.headers("admin"), timeout=30)
    assert "big_refund" in json.dumps(answer.json())


def test_an_invalid_policy_never_reaches_the_server(server: Server, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CANDIDATE.replace("action:", "acton:") + "  - use: builtin/nope\n")
    version = policy_version(server)
    code, _, err = push(bad, server, "admin")
    assert code == 1
    assert ":6: rule 'big_refund': unknown key 'acton'; did you mean 'action'?" in err
    assert ":7: rule 'builtin/nope': unknown rule pack" in err
    assert "was not pushed" in err
    assert policy_version(server) == version


def test_a_policy_with_an_unknown_pack_option_is_refused_by_push_and_server(
        server: Server, tmp_path: Path) -> None:
    """builtin/pii with a detector it lacks: once installed by push, every call holding an
    SSN got HTTP 500 (KeyError). Now check, push and the server itself refuse it at load."""
    bad = tmp_path / "pii.yaml"
    bad.write_text("version: 1\nrules:\n  - use: builtin/pii\n    detectors: [ssn, nope]\n")
    version = policy_version(server)
    code, _, err = push(bad, server, "admin")
    assert code == 1 and ":4: rule 'builtin/pii': unknown detector 'nope'" in err
    answer = httpx.put(server.url + "/v1/policy", json={"source": bad.read_text()},
                       headers=server.headers("admin"), timeout=30)
    assert 400 <= answer.status_code < 500 and "nope" in answer.text
    assert policy_version(server) == version
    guarded = httpx.post(server.url + "/v1/guard", headers=server.headers("agent"), timeout=30,
                         json={"tool_name": "send_email", "agent_name": "a",
                               "tool_input": {"body": "ssn 078-05-1120"}})
    assert guarded.status_code == 200


def test_replay_skips_unguarded_executions_and_prints_recorded_text_escaped(
        tmp_path: Path) -> None:
    """Rows from /v1/executions have no decision: the policy in force replays with 0 changes
    (they were counted as `→ allow`). Recorded tool names reach the terminal escaped."""
    from staso.policy.loader import load_policy_text
    from staso.policy.replay import replay as replay_calls

    home = tmp_path / "home"
    (tmp_path / "recorded.yaml").write_text(RECORDED)
    st.init(home=home, agent_name="refund-agent", policy=tmp_path / "recorded.yaml")
    try:
        client = st.get_client()
        for n in range(3):
            client.record_execution(decision_id=None, tool_name="cron_job",
                                    tool_input={"n": n}, fields={"status": "ok"})
        st.guard("run_sql", {"q": "DROP TABLE users"})
        st.guard("\x1b[2Jwipe\x07", {"q": "DROP TABLE t", "note": "\x1b]0;owned\x07"})
    finally:
        st.shutdown()
    code, text = replay(str(tmp_path / "recorded.yaml"), home=home)
    assert code == 0, text
    assert ": 0 outcome(s) change" in text and "replayed 2 recorded call(s)" in text
    assert "skipped 3 recorded execution(s) without a guard decision" in text
    code, text = replay(str(tmp_path / "recorded.yaml"), "--json", home=home)
    data = json.loads(text)
    assert (data["replayed"], data["changed"], data["unguarded"]) == (2, 0, 3)
    (tmp_path / "candidate.yaml").write_text("rules:\n  - name: block_all\n    action: block\n")
    code, text = replay(str(tmp_path / "candidate.yaml"), home=home)
    assert code == 0 and "  allow → block  block_all  1 call(s)" in text
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2Jwipe\\x07" in text and "owned" in text
    # the report itself: a row without an action is no change
    report = replay_calls(load_policy_text(CANDIDATE), {},
                          [{"id": "x", "tool_name": "process_refund", "action": None,
                            "tool_input": {"amount": 5000}}])
    assert (report.replayed, report.changed, report.unguarded) == (0, 0, 1)


def test_replay_compares_what_the_policy_decided_not_what_a_person_answered(
        tmp_path: Path) -> None:
    """A call the policy escalated is recorded as it was answered: approved with an edit it
    is `modify`, allowed by a standing approval it is `allow`. Both were "escalate" under
    the policy of their day: replaying that same policy changes nothing (it said
    `modify → escalate` and `allow → escalate`)."""
    from staso.policy.replay import decided

    home = tmp_path / "home"
    policy = tmp_path / "recorded.yaml"
    policy.write_text(CANDIDATE)  # refunds over 1,000 escalate
    st.init(home=home, agent_name="refund-agent", policy=policy)
    try:
        asked = {"amount": 5000, "to": "acct-1"}
        first = st.guard("process_refund", asked)
        assert first.action == "escalate" and first.escalation_id
        st.approve(first.escalation_id, by="alice", modified_input={"amount": 1500,
                                                                    "to": "acct-1"})
        edited = st.guard("process_refund", asked)  # the retry gets the edit
        assert (edited.action, edited.escalation_id) == ("modify", first.escalation_id)
        routine = st.guard("process_refund", {"amount": 1200, "to": "acct-2"})
        assert routine.escalation_id
        st.approve(routine.escalation_id, by="alice", grant={"ttl": "1h"})
        granted = st.guard("process_refund", {"amount": 1300, "to": "acct-3"})
        assert granted.action == "allow" and granted.grant_id and not granted.escalation_id
        st.guard("process_refund", {"amount": 50})
    finally:
        st.shutdown()
    code, text = replay(str(policy), "--json", home=home)
    assert code == 0, text
    data = json.loads(text)
    assert (data["replayed"], data["changed"], data["changes"]) == (5, 0, [])
    # a candidate that allows big refunds: each of those calls was "escalate" before
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("version: 1\nrules: []\n")
    code, text = replay(str(candidate), home=home)
    assert code == 0 and ": 4 outcome(s) change" in text, text
    assert "  escalate → allow  big_refund  4 call(s)" in text
    # the row, as recorded, and what the policy decided
    row = {"action": "modify", "escalation_id": "e1", "results": [
        {"rule_name": "big_refund", "passed": False, "action": "escalate", "mode": "enforce"}]}
    assert decided(row) == "escalate"
    assert decided({"action": "allow", "grant_id": "g1"}) == "escalate"
    assert decided({"action": "modify"}) == "modify"
    assert decided({"action": None}) is None
