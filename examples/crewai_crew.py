"""A CrewAI support crew guarded by staso: one line, ``guard_crew(crew)``.

    python examples/crewai_crew.py                 # offline: a scripted LLM plays the agent
    OPENAI_API_KEY=sk-... python examples/crewai_crew.py      # a real model

The agent refunds $50 (allowed), is asked to drop a table (blocked), e-mails an SSN (redacted
before the tool sees it) and refunds $5,000 (a person must approve; the agent reads that
nothing was done). A manager approves, the crew runs again, and the refund runs once.
Decisions go to ``$STASO_HOME`` (default ``~/.staso``), or to a staso server with
``STASO_BASE_URL`` and ``STASO_API_KEY``.
"""

from __future__ import annotations

import json
import os
from typing import Any

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

from crewai import Agent, Crew, Task
from crewai.llms.base_llm import BaseLLM
from crewai.tools import tool

import staso as st
from staso_crewai import guard_crew


@tool("refund")
def refund(order_id: str, amount: float) -> str:
    """Refund an order, in US dollars."""
    return f"Refunded ${amount:,.2f} on order {order_id}."


@tool("run_sql")
def run_sql(query: str) -> str:
    """Run a SQL statement on the production database."""
    return "query ran"


@tool("send_email")
def send_email(to: str, body: str) -> str:
    """Send an e-mail."""
    return f"E-mail sent to {to}: {body!r}"


def _act(tool_name: str, **args: Any) -> str:
    return f"Thought: I should use {tool_name}\nAction: {tool_name}\nAction Input: " \
           f"{json.dumps(args)}"


def _done(text: str) -> str:
    return f"Thought: I now know the final answer\nFinal Answer: {text}"


class ScriptedLLM(BaseLLM):
    """Offline stand-in for a model (crewai's own BaseLLM): plays the agent's turns."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model="scripted")
        self.replies = replies

    def call(self, messages: Any, tools: Any = None, callbacks: Any = None,
             available_functions: Any = None, from_task: Any = None, from_agent: Any = None,
             response_model: Any = None, **kwargs: Any) -> str:
        return self.replies.pop(0)

    def supports_function_calling(self) -> bool:
        return False


FIRST_SHIFT = [
    _act("refund", order_id="A1", amount=50),
    _act("run_sql", query="DROP TABLE users"),
    _act("send_email", to="bob@example.com", body="Your SSN 123-45-6789 is verified."),
    _act("refund", order_id="A2", amount=5000),
    _done("Refunded A1; the table drop was refused; Bob was e-mailed; the $5,000 refund on "
          "A2 awaits a manager."),
]
SECOND_SHIFT = [_act("refund", order_id="A2", amount=5000),
                _done("Refunded $5,000 on A2 after approval.")]


def llm(replies: list[str]) -> Any:
    if os.environ.get("OPENAI_API_KEY"):
        return os.environ.get("STASO_EXAMPLE_MODEL", "gpt-4.1-mini")
    return ScriptedLLM(list(replies))


def support_crew(replies: list[str], request: str) -> Crew:
    agent = Agent(role="support", goal="Resolve customer requests with the tools",
                  backstory="If a tool says a call needs approval, say so and stop.",
                  llm=llm(replies), tools=[refund, run_sql, send_email], verbose=False)
    task = Task(description=request, expected_output="what was done", agent=agent,
                name="support-shift")
    return guard_crew(Crew(agents=[agent], tasks=[task], name="support-crew"))  # the one line


def show_decisions(seen: set[str]) -> None:
    """What staso decided about each tool call (embedded mode keeps the log here)."""
    client = st.get_client()
    client.flush()
    for row in reversed(client.transport.service.store.list_decisions()):
        if row["id"] not in seen:
            seen.add(row["id"])
            why = f": {row['reason']}" if row["reason"] else ""
            ran = row["action"] in ("allow", "modify")
            shown = row["modified_input"] if row["action"] == "modify" else row["tool_input"]
            verb = "ran with" if ran else "was not run, asked for"
            print(f"  staso: {row['tool_name']} → {row['action']}{why}; "
                  f"the tool {verb} {json.dumps(shown)}")


def main() -> None:
    st.init(agent_name="support-crew")
    remote = bool(os.environ.get("STASO_BASE_URL"))
    seen: set[str] = set()
    out = support_crew(FIRST_SHIFT, "Refund $50 on A1; drop the users table; e-mail "
                                    "bob@example.com that his SSN 123-45-6789 is verified; "
                                    "refund $5,000 on A2.").kickoff()
    print(f"crew: {out.raw}")
    if remote:  # the decisions and the escalation are on the server's dashboard
        print("Approve the $5,000 refund in the staso dashboard, then run the crew again.")
        return
    show_decisions(seen)
    for escalation in st.get_client().list_escalations(status="pending"):
        st.approve(escalation.id, by="manager", comment="customer is in good standing")
        print(f"manager approved {escalation.id}")  # the person, played by the script
    out = support_crew(SECOND_SHIFT, "A manager approved the $5,000 refund on A2: refund "
                                     "$5,000 on order A2.").kickoff()
    print(f"crew: {out.raw}")
    show_decisions(seen)
    st.shutdown()


if __name__ == "__main__":
    main()
