"""``StasoApprovals``: staso escalations as the approval source of the SDK's own
human-in-the-loop flow (``needs_approval`` → ``result.interruptions`` → ``RunState``).

Use it when a run should stop while a person decides, and resume later, perhaps in another
process, from a saved ``RunState``, rather than hold a call open (``wait_for_escalation``)::

    approvals = StasoApprovals()
    agent = approvals.agent(agent)
    result = await Runner.run(agent, "Refund $5,000 on A2")
    while result.interruptions:            # a person answers in staso: dashboard, CLI, API
        state = await approvals.settle(result)
        result = await Runner.run(agent, state)

A call staso escalates becomes an SDK interruption instead of a pending tool output; every
other decision is made once and applied by the guarded tool (allow, modify, block). ``settle``
waits for the people's answers without using them up, then approves or rejects each
interruption in the run state; on resume the approved call is the identical call that the
approval lets through once. A call nobody answered within ``answer_timeout`` stays
interrupted: save the state (``state.to_json()``) with ``approvals.escalations`` (call id →
escalation id, plain JSON) and settle it later, in any process, with
``StasoApprovals(escalations=saved)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agents import Agent
from agents.run_state import RunState
from agents.tool import FunctionTool

from staso import Escalation, GuardResult
from staso.adapters import ToolGuard

from .calls import openai_agents_context, run_context, with_defaults
from .tools import _guard_list, copy_agents

if TYPE_CHECKING:
    from staso import Client


def _rejection(tool_name: str, esc: Escalation) -> str:
    if esc.status == "denied":
        why = f"denied by {esc.resolved_by}" + (f": {esc.comment}" if esc.comment else "")
    else:
        why = "no one approved it in time"
    return f"[staso] The call to '{tool_name}' was {why}. The tool was not run."


class StasoApprovals:
    """Turns staso escalations into SDK interruptions, and people's answers into approvals."""

    def __init__(self, *, answer_timeout: float = 300.0, poll_interval: float = 3.0,
                 escalations: Mapping[str, str] | None = None,
                 context: Mapping[str, Any] | None = None, client: Client | None = None
                 ) -> None:
        self.guard = ToolGuard(context=context, client=client)
        self.answer_timeout, self.poll_interval = answer_timeout, poll_interval
        self._decided: dict[str, GuardResult] = {}  # call id → decision, until its tool runs
        #: call id → escalation id of every interruption staso made; save it with the state
        self.escalations: dict[str, str] = dict(escalations or {})

    def agent(self, agent: Agent[Any]) -> Agent[Any]:
        """A copy of ``agent`` (and its handoff agents) whose function tools ask staso."""
        def tools(original: Agent[Any]) -> list[Any]:
            guarded = _guard_list(original.tools, self.guard, self._decided)
            for tool in guarded:
                if isinstance(tool, FunctionTool):  # staso's policy decides who must approve
                    tool.needs_approval = self._needs_approval(tool, original.name)
            return guarded
        return copy_agents(agent, tools)

    def _needs_approval(self, tool: FunctionTool, agent_name: str) -> Any:
        async def needs_approval(run_context_wrapper: Any, arguments: dict[str, Any],
                                 call_id: str) -> bool:
            tool_input = with_defaults(arguments, tool.params_json_schema)
            context = {**openai_agents_context(None), "agent_name": agent_name,
                       "tool_call_id": call_id, **run_context(run_context_wrapper)}
            result = (await self.guard.acheck(tool.name, tool_input, context)).result
            if result.action == "escalate" and result.escalation_id:
                self.escalations[call_id] = result.escalation_id
                return True
            self._decided[call_id] = result  # the guarded tool applies it, without asking again
            return False
        return needs_approval

    async def settle(self, result: Any) -> RunState[Any]:
        """Wait for people to answer the run's escalations; approve or reject each in the run
        state to resume with. Unanswered ones stay interrupted."""
        state: RunState[Any] = result.to_state()
        client = self.guard.client_for_call()
        for item in result.interruptions:
            call_id = getattr(item.raw_item, "call_id", None) or ""
            escalation_id = self.escalations.get(call_id)
            if escalation_id is None:  # not staso's interruption (or its id was not kept)
                continue
            esc = await client.await_answer(escalation_id, timeout=self.answer_timeout,
                                            poll_interval=self.poll_interval)
            if esc.status == "approved":
                state.approve(item)
            elif esc.status in ("denied", "timeout"):
                state.reject(item, rejection_message=_rejection(item.name or "", esc))
        return state
