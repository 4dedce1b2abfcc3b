"""staso_crewai: guard_crew and guard_tools on real crews with a scripted LLM (no network)."""

from __future__ import annotations

import pytest

pytest.importorskip("crewai", reason="crewai is part of the dev extras")

import staso as st
from approvers import answer_later
from conftest import logged, use_policy
from crew_agents import Ledger, act, crew, done, llm_of
from staso_crewai import guard_crew, guard_tools


def kickoff(replies, *, ledger=None, **options):
    ledger = ledger or Ledger()
    c = guard_crew(crew(replies, ledger.tools()), **options)
    out = c.kickoff()
    return out, ledger, llm_of(c)


def test_allow_runs_and_modify_rewrites_the_input(home):
    out, ledger, llm = kickoff([act("refund", {"order_id": "A1", "amount": 50}),
                                act("send_email", {"to": "bob@example.com",
                                                   "body": "SSN 123-45-6789"}),
                                done("both done")])
    assert ledger.ran == [("refund", {"order_id": "A1", "amount": 50.0}),
                          ("send_email", {"to": "bob@example.com",
                                          "body": "SSN [REDACTED:ssn]"})]
    assert out.raw == "both done"
    assert any("refunded $50 on A1" in o for o in llm.observations())


def test_block_and_pending_are_what_the_agent_reads(home):
    _, ledger, llm = kickoff([act("run_sql", {"query": "DROP TABLE users"}),
                                act("refund", {"order_id": "A2", "amount": 5000}),
                                done("could not")])
    assert ledger.ran == []
    seen = "\n".join(llm.observations())
    assert "'builtin/destructive_sql'" in seen and "not run" in seen
    assert "Tool execution blocked by hook" not in seen  # crewai's text has no reason
    [esc] = st.get_client().list_escalations(status="pending")
    assert esc.id in seen and "Nothing was done" in seen


def test_wait_for_a_person(home):
    t = answer_later(st.approve, by="manager", modified_input={"order_id": "A2",
                                                               "amount": 900})
    _, ledger, _ = kickoff([act("refund", {"order_id": "A2", "amount": 5000}), done()],
                           wait_for_escalation=True, escalation_timeout=20)
    t.join()
    assert ledger.ran == [("refund", {"order_id": "A2", "amount": 900.0})]


def test_the_identical_call_after_approval_runs_once(home):
    ledger = Ledger()
    args = {"order_id": "A7", "amount": 5000}
    kickoff([act("refund", args), done("asked")], ledger=ledger)
    st.approve(st.get_client().list_escalations(status="pending")[0].id, by="manager")
    kickoff([act("refund", args), done("refunded")], ledger=ledger)
    _, _, llm = kickoff([act("refund", args), done("asked again")], ledger=ledger)
    assert ledger.ran == [("refund", {"order_id": "A7", "amount": 5000.0})]
    assert "needs a person's approval" in "\n".join(llm.observations())


def test_context_and_one_decision_per_call(home, tmp_path):
    use_policy(tmp_path, """
version: 1
rules:
  - name: interns_cannot_refund
    tools: [refund]
    when: context.agent_role == "intern"
    action: block
    reason: interns cannot refund
""")
    kickoff([act("refund", {"order_id": "A1"}), done()])
    [row] = logged("refund")
    assert row["context"] == {"framework": "crewai", "crew": "refund-crew",
                              "agent_role": "support", "task": "handle-request"}
    assert row["tool_input"] == {"order_id": "A1", "amount": 10.0}  # the default, seen
    assert row["execution_status"] == "ok"
    ledger = Ledger()
    c = guard_crew(crew([act("refund", {"order_id": "A1"}), done()], ledger.tools(),
                        role="intern"))
    c.kickoff()
    assert ledger.ran == []
    assert "interns cannot refund" in "\n".join(llm_of(c).observations())


def test_scoped_to_that_crew(home):
    ledger = Ledger()
    tools = ledger.tools()
    guard_crew(crew([done()], tools))
    other = crew([act("run_sql", {"query": "DROP TABLE users"}), done()], tools,
                 name="other-crew")
    other.kickoff()  # the same tools, in a crew nobody guarded
    assert ledger.ran == [("run_sql", {"query": "DROP TABLE users"})]
    assert logged("run_sql") == []


def test_crewais_own_copies_of_the_crew_stay_guarded(home):
    ledger = Ledger()
    c = guard_crew(crew([act("run_sql", {"query": "DROP TABLE users"}), done()],
                        ledger.tools()))
    c.copy().kickoff()
    assert ledger.ran == []


def test_guarded_even_if_the_hooks_are_cleared(home):
    from crewai.hooks import clear_all_global_hooks

    ledger = Ledger()
    c = guard_crew(crew([act("run_sql", {"query": "DROP TABLE users"}), done()],
                        ledger.tools()))
    clear_all_global_hooks()
    c.kickoff()
    assert ledger.ran == []
    assert "'builtin/destructive_sql'" in "\n".join(llm_of(c).observations())


def test_guard_tools_alone(home):
    ledger = Ledger()
    [refund, run_sql, _] = guard_tools(ledger.tools())
    assert refund.run(order_id="A1", amount=5) == "refunded $5 on A1"
    assert "blocked" in run_sql.run(query="DROP TABLE users")
    c = crew([act("refund", {"order_id": "A3", "amount": 4000}), done()], [refund])
    c.kickoff()
    assert ledger.ran == [("refund", {"order_id": "A1", "amount": 5.0})]
    with pytest.raises(TypeError, match="crewai tools"):
        guard_tools([lambda: None])


def test_task_tools_are_guarded_too(home):
    from crewai import Task

    from staso_crewai.tools import guard_of

    ledger = Ledger()
    c = crew([act("run_sql", {"query": "DROP TABLE users"}), done()], [])
    c.tasks[0] = Task(description="Clean up", expected_output="a sentence",
                      agent=c.agents[0], tools=ledger.tools(), name="cleanup")
    guard_crew(c)
    assert all(guard_of(t) is not None for t in c.tasks[0].tools)
    c.kickoff()
    assert ledger.ran == []
    assert "'builtin/destructive_sql'" in "\n".join(llm_of(c).observations())


def test_a_basetool_subclass_with_its_own_run(home):
    from crewai.tools import BaseTool
    from pydantic import BaseModel

    ran = []

    class WireArgs(BaseModel):
        account: str
        amount: float

    class WireTransfer(BaseTool):
        name: str = "wire_transfer"
        description: str = "Send money to an account."
        args_schema: type[BaseModel] = WireArgs

        def _run(self, account: str, amount: float) -> str:
            ran.append((account, amount))
            return f"sent {amount:g} to {account}"

    c = guard_crew(crew([act("wire_transfer", {"account": "DE89", "amount": 20}),
                         act("wire_transfer", {"account": "DE89", "amount": 50000}), done()],
                        [WireTransfer()]))
    c.kickoff()
    assert ran == [("DE89", 20.0)]
    seen = "\n".join(llm_of(c).observations())
    assert "sent 20 to DE89" in seen and "needs a person's approval" in seen
    [direct] = guard_tools([WireTransfer()])
    assert isinstance(direct, WireTransfer)
    assert "Nothing was done" in direct.run(account="DE89", amount=9000)
    assert ran == [("DE89", 20.0)]
