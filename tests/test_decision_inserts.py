"""Decision rows are inserted in groups of the columns they hold (nulls left out), on SQLite
and PostgreSQL: every row reads back as written, a retry is one row whichever group it falls
in, a reused id is refused, and a column that must hold something still refuses a null."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from staso.errors import DecisionIdReused
from staso.store import open_store


def _row(decision_id: str, **values: object) -> dict[str, object]:
    return {"id": decision_id, "created_at": time.time(), "agent_name": "agent",
            "environment": "", "tool_name": "tool", "tool_input": {"n": 1}, "context": {},
            "action": "allow", "reason": "", "rule_name": None, "severity": "low",
            "results": [], "rules_triggered": [], "modified_input": None,
            "modifications": [], "escalation_id": None, "escalation_status": None,
            "latency_ms": 0.1, "policy_version": None, "policy_digest": "d",
            "grant_id": None, "answers": None, **values}


ROWS = [
    _row("dec_allow"),
    _row("dec_esc", action="escalate", rule_name="big", escalation_id="esc_1",
         escalation_status="pending", modified_input={"n": 2}, policy_version=3),
    _row("dec_granted", grant_id="grant_1", answers=[{"by": "ann"}]),
    {"id": "dec_unguarded", "created_at": time.time(), "agent_name": "agent",
     "environment": "", "tool_name": "tool", "tool_input": {"n": 1}, "context": {},
     "action": None, "execution_status": "ok", "execution_output": "done",
     "execution_ms": 2.0},
    _row("dec_none_input", tool_input=None),
]


def test_rows_of_every_shape_read_back_as_written(database_url: str) -> None:
    store = open_store(database_url)
    try:
        store.write_decisions(ROWS, [("dec_allow", {"execution_status": "error",
                                                    "execution_error": "boom"})])
        for row in ROWS:
            stored = store.get_decision(str(row["id"]))
            assert stored is not None
            for column, value in row.items():
                if column == "execution_status" or row["id"] != "dec_allow":
                    assert stored[column] == value, (row["id"], column)
        allow = store.get_decision("dec_allow")
        assert allow is not None
        assert (allow["execution_status"], allow["execution_error"]) == ("error", "boom")
        assert allow["modified_input"] is None and allow["grant_id"] is None
        # a retry of any of them, in a batch of other shapes, is still one row each
        store.write_decisions([ROWS[1], ROWS[0], _row("dec_new"), ROWS[3]], [])
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM decisions")).scalar() == 6
        # the same id for another call, whatever columns it holds, is refused
        with pytest.raises(DecisionIdReused, match="dec_esc"):
            store.write_decisions([_row("dec_x"), _row("dec_esc", tool_input={"n": 9})], [])
        assert store.get_decision("dec_x") is None  # (the batch is one transaction)
        with pytest.raises(DecisionIdReused, match="dec_none_input"):
            store.write_decisions([_row("dec_none_input", tool_input={"n": 1})], [])
    finally:
        store.close()


def test_a_column_that_must_hold_something_still_refuses_a_null(database_url: str) -> None:
    store = open_store(database_url)
    try:
        for column in ("agent_name", "tool_name", "created_at"):
            with pytest.raises(sa.exc.IntegrityError):
                store.write_decisions([_row(f"dec_{column}", **{column: None})], [])
            assert store.get_decision(f"dec_{column}") is None
    finally:
        store.close()
