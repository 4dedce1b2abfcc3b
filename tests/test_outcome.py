"""The one decision → outcome mapping that every adapter uses (``staso.outcome``)."""

from __future__ import annotations

import pytest

import staso as st
from staso.outcome import decide_outcome

ARGS = {"amount": 5000}


def test_allow_and_modify_run():
    allow = decide_outcome(st.GuardResult(action="allow", tool_name="t"), ARGS)
    assert (allow.run, allow.tool_input, allow.message) == (True, ARGS, None)
    mod = decide_outcome(st.GuardResult(action="modify", modified_input={"amount": 500},
                                        tool_name="t"), ARGS)
    assert (mod.run, mod.tool_input) == (True, {"amount": 500})


def test_block_output_names_rule_and_reason_or_raises():
    r = st.GuardResult(action="block", rule_name="no_drops", reason="DROP is forbidden",
                       tool_name="run_sql")
    out = decide_outcome(r, ARGS)
    assert not out.run and out.tool_input is None
    assert "'no_drops'" in out.message and "DROP is forbidden" in out.message
    assert "not run" in out.message
    with pytest.raises(st.GuardBlocked) as info:
        decide_outcome(r, ARGS, on_block="raise")
    assert info.value.rule_name == "no_drops" and info.value.result is r


def test_pending_output_gives_id_and_says_nothing_was_done_or_raises():
    r = st.GuardResult(action="escalate", rule_name="big", reason="over $1,000",
                       escalation_id="esc_123", escalation_status="pending", tool_name="refund")
    out = decide_outcome(r, ARGS)
    assert not out.run
    for part in ("esc_123", "Nothing was done", "'big'", "over $1,000"):
        assert part in out.message
    with pytest.raises(st.EscalationPending) as info:
        decide_outcome(r, ARGS, on_escalate="raise")
    assert info.value.escalation_id == "esc_123"


def test_unknown_action_never_runs():
    out = decide_outcome(st.GuardResult(action="teleport", tool_name="t"), ARGS)
    assert not out.run
