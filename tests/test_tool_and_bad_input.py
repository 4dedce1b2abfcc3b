"""``@st.tool`` records and guards calls; bad input gets clear errors naming the problem."""

from __future__ import annotations

import datetime

import pytest

import staso as st


def test_tool_records_and_guards(home):
    ran = []

    @st.tool(name="process_refund", guard=True)
    def refund(customer_id: str, amount: float = 10.0) -> str:
        ran.append(amount)
        return f"refunded {amount}"

    @st.tool
    def lookup(q: str) -> str:
        return q.upper()

    @st.tool(name="send_email", guard=True)
    async def send_email(to: str, body: str) -> str:
        return body

    assert refund("c1") == "refunded 10.0"
    with pytest.raises(st.EscalationPending) as pending:
        refund("c2", amount=5000)
    assert pending.value.escalation_id.startswith("esc_")
    assert ran == [10.0]
    assert lookup("x") == "X"
    import asyncio
    body = asyncio.run(send_email("a@b.co", "ssn 123-45-6789"))
    assert body == "ssn [REDACTED:ssn]"
    client = st.get_client()
    client.flush()
    rows = client.transport.service.store.list_decisions()
    by_tool = {}
    for row in rows:
        by_tool.setdefault(row["tool_name"], []).append(row)
    statuses = sorted(r["execution_status"] for r in by_tool["process_refund"])
    assert statuses == ["not_run", "ok"]
    assert by_tool["lookup"][0]["action"] is None
    assert by_tool["lookup"][0]["execution_output"] == "X"  # text outputs are stored as text
    assert by_tool["send_email"][0]["action"] == "modify"


def test_tool_guard_block_raises(home):
    @st.tool(name="run_sql", guard=True)
    def run_sql(query: str) -> str:
        raise AssertionError("must not run")

    with pytest.raises(st.GuardBlocked) as info:
        run_sql("DROP TABLE users")
    assert info.value.rule_name == "builtin/destructive_sql"


def test_bad_inputs_get_clear_errors(home):
    with pytest.raises(st.InvalidToolInput, match=r"tool_input\['when'\] is a datetime"):
        st.guard("t", {"when": datetime.datetime.now()})
    with pytest.raises(st.InvalidToolInput, match="must be a dict"):
        st.guard("t", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(st.InvalidToolInput, match="NaN"):
        st.guard("t", {"x": float("nan")})
    # a tool name as long as the server takes (200), and no longer: a policy's globs match
    # a name in time that grows faster than its length
    assert st.guard("t" * 200, {}).action == "allow"
    with pytest.raises(st.InvalidToolInput, match="201 characters, over the 200-character"):
        st.guard("t" * 201, {})
    big = st.guard("t", {"blob": "x" * (1024 * 1024 + 10)})
    assert big.action == "block" and "over the 1,048,576-byte limit" in big.reason
    with pytest.raises(st.EscalationNotFound):
        st.get_escalation("esc_missing")
    r = st.guard("wire_transfer", {"amount": 5000})
    st.approve(r.escalation_id, by="a")
    with pytest.raises(st.EscalationConflict, match="already approved by a"):
        st.deny(r.escalation_id, by="b")
    with pytest.raises(ValueError, match="'by' must name"):
        st.approve(r.escalation_id, by="  ")
    # nothing stored was lost or corrupted by the bad calls
    assert st.get_escalation(r.escalation_id).status == "approved"


def test_guard_without_init_uses_environment(tmp_path, monkeypatch):
    st.shutdown()
    monkeypatch.setenv("STASO_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    try:
        assert st.guard("wire_transfer", {"amount": 50000}).action == "escalate"
        assert (tmp_path / "staso.db").exists()
    finally:
        st.shutdown()


def test_guard_disabled(tmp_path, monkeypatch):
    monkeypatch.setenv("STASO_GUARD_ENABLED", "false")
    st.init(home=tmp_path)
    try:
        assert st.guard("run_sql", {"q": "DROP TABLE x"}).action == "allow"
    finally:
        st.shutdown()
