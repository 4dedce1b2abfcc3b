"""Asking the person at the MCP client (``--approve-in-client``), and telling them while a
call waits.

An escalation is asked through MCP elicitation: the client shows the tool, its arguments
(as stored: secrets masked), the rule and its reason, and the person accepts (approve) or
declines (deny), optionally with a comment. The answer resolves the escalation like any
other, ``by = "mcp-client:<the client's name>"``. A client that did not declare elicitation,
a dismissed question, an error or no answer in time leaves the escalation pending for the
dashboard, the CLI or the API.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any, Protocol

import anyio
import anyio.to_thread
import mcp.types as types
from mcp.shared.exceptions import McpError

from staso import Client, Escalation, GuardResult, StasoError

from .upstream import described

log = logging.getLogger("staso.mcp")

WAIT_PROGRESS_EVERY = 2.0  # seconds between two progress notifications while a call waits
_SHOWN_ARGUMENTS = 4_000  # characters of the arguments a question shows

# what the client's form asks besides accept / decline: an optional comment
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"comment": {"type": "string", "title": "Comment (optional)",
                               "description": "Recorded with your answer"}},
}


class ClientLink(Protocol):
    """The client a call came from, as asking needs it: its name, whether it can show a
    form, a form shown to it (raises when it cannot or will not), and progress on the call
    (nothing when the call asked for none). The SDK form and the relay each make one."""

    name: str

    def can_ask(self) -> bool: ...

    async def elicit(self, message: str, schema: dict[str, Any]) -> types.ElicitResult: ...

    async def progress(self, done: float, total: float | None, message: str) -> bool:
        """Send progress; False when the call asked for none."""
        ...


def question(escalation: Escalation, server: str) -> str:
    """What the person reads: which tool, on which server, with what, and why it asks."""
    arguments = json.dumps(escalation.tool_input, indent=2, ensure_ascii=False,
                           sort_keys=True, default=str)
    if len(arguments) > _SHOWN_ARGUMENTS:
        arguments = arguments[:_SHOWN_ARGUMENTS] + f"\n… ({len(arguments)} characters in all)"
    rule = f"Rule: {escalation.rule_name}" if escalation.rule_name else "Rule: (none named)"
    reason = f" — {escalation.reason}" if escalation.reason else ""
    return (f"staso: the agent wants to call '{escalation.tool_name}' on {server}.\n"
            f"{rule}{reason}\n"
            f"Arguments:\n{arguments}\n\n"
            f"Accept to approve this call once, decline to deny it "
            f"(escalation {escalation.id}).")


async def ask_in_client(client: Client, link: ClientLink, pending: GuardResult, server: str,
                        timeout: float) -> Escalation | None:
    """Ask the client's person about ``pending``; the escalation as it stands after their
    answer (recorded with ``client``), or None when they gave none (it stays pending for
    others to answer). Never raises: asking is a convenience, the escalation stands."""
    try:
        return await _ask(client, link, pending, server, timeout)
    except Exception:
        log.warning("staso: asking the MCP client about %s failed; it stays pending",
                    pending.escalation_id, exc_info=True)
        return None


async def _ask(client: Client, link: ClientLink, pending: GuardResult, server: str,
               timeout: float) -> Escalation | None:
    escalation_id = pending.escalation_id
    assert escalation_id is not None
    escalation = await anyio.to_thread.run_sync(client.get_escalation, escalation_id)
    answer: types.ElicitResult | None = None
    with anyio.move_on_after(timeout):
        try:
            answer = await link.elicit(question(escalation, server), ANSWER_SCHEMA)
        except Exception as exc:  # refused, failed or answered nonsense: fall back
            why = exc.error.message if isinstance(exc, McpError) else described(exc)
            log.warning("staso: the MCP client could not ask about %s (%s); it stays "
                        "pending for the dashboard, CLI or API", escalation_id, why)
            return None
    if answer is None or answer.action not in ("accept", "decline"):
        return None  # dismissed, or no answer in time
    comment = (answer.content or {}).get("comment")
    comment = str(comment).strip()[:2000] or None if comment is not None else None
    by = f"mcp-client:{link.name or 'unnamed'}"
    answer_call = client.approve if answer.action == "accept" else client.deny
    try:
        return await anyio.to_thread.run_sync(functools.partial(
            answer_call, escalation_id, by=by, comment=comment))
    except StasoError as exc:  # answered elsewhere first, or expired: the stored answer holds
        log.info("staso: the client's answer to %s was not recorded: %s", escalation_id, exc)
        return await anyio.to_thread.run_sync(client.get_escalation, escalation_id)


async def report_waiting(link: ClientLink, pending: GuardResult, total: float) -> None:
    """Progress notifications on the waiting call, every few seconds until cancelled, when
    the client asked for progress (``_meta.progressToken``): seconds waited of ``total``."""
    rule = f", rule '{pending.rule_name}'" if pending.rule_name else ""
    message = (f"waiting for a person to approve '{pending.tool_name}' "
               f"(escalation {pending.escalation_id}{rule})")
    started = time.monotonic()
    while await link.progress(round(time.monotonic() - started, 3), total, message):
        await anyio.sleep(WAIT_PROGRESS_EVERY)
