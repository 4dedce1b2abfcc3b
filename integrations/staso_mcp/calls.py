"""How the proxy decides a ``tools/call``, in either of its forms.

Allow and modify run the call (modify with the rewritten arguments), block and a pending
escalation answer it. With ``--wait`` the call is held until a person answers, reporting
progress meanwhile (and asking in the client); without it, ``--approve-in-client`` holds it
only while the client's person is asked. The client is reached through a ``ClientLink``
(the SDK's session on HTTP, the relay on stdio).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import anyio
import mcp.types as types

from staso import Client, GuardResult
from staso.adapters import Outcome, ToolGuard, watch_pending

from .asking import ClientLink, ask_in_client, report_waiting

_REMEMBERED = 10_000  # escalations whose raising client the proxy remembers


def refusal(outcome: Outcome) -> types.CallToolResult:
    """What the client reads for a call that did not run (blocked, or pending): an
    ``isError`` result, so the model reads why and clients skip their output-schema check."""
    return types.CallToolResult(isError=True, content=[
        types.TextContent(type="text", text=outcome.message or "")])


class CallGuard:
    """The guard of the proxy's calls: ``guard`` carries the guard options
    (``wait_for_escalation`` …); ``approve_in_client`` asks a client that can show a form
    (elicitation) to answer the escalations its own calls raised, recording the answers
    with ``answers`` (default: the guard's client; a remote agent key may not answer, so a
    remote proxy is given an approver's)."""

    def __init__(self, guard: ToolGuard | None = None, *, approve_in_client: bool = False,
                 answers: Client | None = None) -> None:
        self.guard = guard or ToolGuard.of()
        self.approve_in_client, self._answers = approve_in_client, answers
        self._raised: OrderedDict[str, Hashable] = OrderedDict()  # escalation → its client

    @property
    def answers(self) -> Client:
        """The client the person's answers in the MCP client are recorded with."""
        return self._answers or self.guard.client_for_call()

    def asks(self, link: ClientLink, owner: Hashable, pending: GuardResult) -> bool:
        """Whether to ask ``owner``'s client about ``pending``: when it can show a form and
        its call raised the escalation (an identical call of another client shares the
        escalation, and must not answer for the first one)."""
        if not self.approve_in_client or pending.escalation_id is None:
            return False
        raiser = self._raised.setdefault(pending.escalation_id, owner)
        self._raised.move_to_end(pending.escalation_id)
        while len(self._raised) > _REMEMBERED:
            self._raised.popitem(last=False)
        return raiser == owner and link.can_ask()

    def record_result(self, decision: GuardResult, result: types.CallToolResult,
                      started: float) -> None:
        """Note on ``decision`` how the call it let through went: its text, and whether the
        server answered with an error result."""
        self.guard.record(decision, "error" if result.isError else "ok", started,
                          output="\n".join(c.text for c in result.content
                                           if isinstance(c, types.TextContent)))

    async def decide(self, link: ClientLink, owner: Hashable, server: str, name: str,
                     arguments: dict[str, Any], context: dict[str, Any]) -> Outcome:
        """The outcome for one call of ``owner``'s client (``server``: its name, shown in a
        question)."""
        options = self.guard.options
        if options.wait_for_escalation:
            async with anyio.create_task_group() as helpers:
                def waiting(pending: GuardResult) -> None:
                    helpers.start_soon(report_waiting, link, pending,
                                       options.escalation_timeout)
                    if self.asks(link, owner, pending):  # its answer ends the wait
                        helpers.start_soon(ask_in_client, self.answers, link, pending,
                                           server, options.escalation_timeout)
                with watch_pending(waiting):
                    outcome = await self.guard.acheck(name, arguments, context)
                helpers.cancel_scope.cancel()
            return outcome
        outcome = await self.guard.acheck(name, arguments, context)
        if outcome.result.action != "escalate" or not self.asks(link, owner, outcome.result):
            return outcome
        answered = await ask_in_client(self.answers, link, outcome.result, server,
                                       options.escalation_timeout)
        if answered is None or answered.status == "pending":
            return outcome  # a normal escalation: the dashboard, CLI or API answers it
        if answered.status == "approved":  # the identical call uses the approval, once
            return await self.guard.acheck(name, arguments, context)
        return self.guard.refused(outcome.result, answered, arguments)
