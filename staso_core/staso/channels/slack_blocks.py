"""The Slack message and modals for an escalation, in Block Kit.

Tool names, agent names, reasons and inputs are attacker-controlled text, so none of them
is ever mrkdwn: the facts are ``plain_text`` and the input a ``rich_text`` preformatted
block, which Slack shows as given (no links, mentions or formatting can be smuggled in).
Only staso's own words and links are mrkdwn. Lengths stay inside Slack's limits (a
header 150 characters, a field 2,000, a text input 3,000).
"""

from __future__ import annotations

from typing import Any

from ..models import Escalation
from . import facts

APPROVE, DENY, EDIT = "staso_approve", "staso_deny", "staso_edit"
OPEN = "staso_open"  # a link button: Slack reports the click, staso has nothing to do
INPUT_LIMIT = 2500  # characters of pretty JSON shown in the message
EDIT_LIMIT = 3000  # Slack's most for a text input: a larger input is edited in the dashboard
EDIT_BLOCK, EDIT_FIELD = "staso_input", "json"
COMMENT_BLOCK, COMMENT_FIELD = "staso_comment", "comment"


def _units(text: str) -> int:
    """Length as Slack counts it (UTF-16 code units: an emoji is two)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def clip(text: str, limit: int) -> str:
    """``text`` within Slack's ``limit``, cut with an ellipsis where it is longer: a text
    over a limit makes Slack refuse the whole message (invalid_blocks)."""
    if _units(text) <= limit:
        return text
    while _units(text) > limit - 1:
        text = text[:max(len(text) - max((_units(text) - limit) // 2, 1), 0)]
    return text + "…"


def _plain(text: str, limit: int = 2000) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": False}


def mrkdwn_escape(text: str) -> str:
    """Text inside staso's own mrkdwn: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fallback_text(escalation: Escalation) -> str:
    """The notification text (shown where blocks are not: push notifications, search)."""
    answer = facts.answer(escalation)
    prefix = f"{answer.headline}: " if answer else ""
    return clip(mrkdwn_escape(prefix + facts.summary(escalation)), 3000)


def message(escalation: Escalation, dashboard: str | None) -> list[dict[str, Any]]:
    """The message's blocks: the facts, then buttons while pending, or the answer."""
    shown, cut = facts.pretty_input(escalation, INPUT_LIMIT)
    line = facts.line
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"Approval needed: {line(escalation.tool_name)}",
                                          150)},
        {"type": "section", "fields": [
            _plain(f"Agent: {line(escalation.agent_name or '-')}"),
            _plain(f"Rule: {line(escalation.rule_name or '-')}"),
            _plain(f"Severity: {escalation.severity}"),
            _plain(f"Expires: {facts.expiry(escalation)}"),
        ]},
        {"type": "section", "text": _plain(f"Reason: {line(escalation.reason or '-')}",
                                           3000)},
        {"type": "context", "elements": [_plain(facts.arguments_heading(escalation))]},
        {"type": "rich_text", "elements": [{"type": "rich_text_preformatted", "elements": [
            {"type": "text", "text": clip(shown, 2900)}]}]},
    ]
    notes = [f"Escalation `{escalation.id}`"]
    if cut:
        notes.append("input cut to fit" + (f": <{dashboard}|see it all in the dashboard>"
                                            if dashboard else ""))
    elif dashboard:
        notes.append(f"<{dashboard}|Open in the dashboard>")
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": " · ".join(notes)}]})
    answer = facts.answer(escalation)
    if answer is None and cut:  # no approving in Slack what Slack cannot show whole
        blocks.append({"type": "actions", "block_id": "staso_answer", "elements": [
            {"type": "button", "action_id": DENY, "value": escalation.id, "style": "danger",
             "text": _plain("Deny")},
            *([{"type": "button", "action_id": OPEN, "url": dashboard,
                "text": _plain("Review and approve in the dashboard")}] if dashboard else []),
        ]})
    elif answer is None:
        blocks.append({"type": "actions", "block_id": "staso_answer", "elements": [
            {"type": "button", "action_id": APPROVE, "value": escalation.id, "style": "primary",
             "text": _plain("Approve"),
             "confirm": {"title": _plain("Approve this call?", 100),
                         "text": _plain(f"{line(escalation.tool_name)} will run with the "
                                        "arguments shown.", 300),
                         "confirm": _plain("Approve"), "deny": _plain("Cancel")}},
            {"type": "button", "action_id": DENY, "value": escalation.id, "style": "danger",
             "text": _plain("Deny")},
            {"type": "button", "action_id": EDIT, "value": escalation.id,
             "text": _plain("Edit")},
        ]})
    else:
        lines = [f"{answer.symbol} {answer.headline} at {answer.when}"]
        if answer.edited:
            lines.append("The input was edited before approval.")
        if answer.comment:
            lines.append(f"Comment: {facts.visible(answer.comment)}")
        blocks.append({"type": "section", "block_id": "staso_answer",
                       "text": _plain("\n".join(lines), 3000)})
    return blocks


def plain_message(escalation: Escalation, dashboard: str | None) -> str:
    """The text of a post without blocks: what is sent when Slack refuses the blocks (a
    limit Slack has and staso did not foresee), so the escalation still reaches people."""
    where = f" Answer in the dashboard: {dashboard}" if dashboard else \
        " Answer in the dashboard."
    return clip(mrkdwn_escape(f"{facts.summary(escalation)}. Escalation {escalation.id}."
                              f"{where}"), 3000)


def _modal(callback: str, title: str, submit: str, escalation: Escalation,
           blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "modal", "callback_id": callback, "private_metadata": escalation.id,
            "title": _plain(title, 24), "submit": _plain(submit, 24),
            "close": _plain("Cancel", 24), "blocks": blocks}


def _comment(optional: bool) -> dict[str, Any]:
    return {"type": "input", "block_id": COMMENT_BLOCK, "optional": optional,
            "label": _plain("Comment (the agent sees it)" if not optional else "Comment"),
            "element": {"type": "plain_text_input", "action_id": COMMENT_FIELD,
                        "multiline": True, "max_length": 2000}}


def deny_modal(escalation: Escalation) -> dict[str, Any]:
    return _modal(DENY, "Deny", "Deny", escalation, [
        {"type": "section", "text": _plain(
            f"Deny {facts.line(escalation.tool_name)} by "
            f"{facts.line(escalation.agent_name or 'the agent')}? Say why: the agent is "
            "told.")},
        _comment(optional=False)])


def edit_modal(escalation: Escalation, dashboard: str | None) -> dict[str, Any]:
    """A modal to approve with an edited input; an input too large for Slack's text box
    gets a modal that says so and points to the dashboard instead."""
    text = facts.input_json(escalation)  # as it would run: the policy's rewrite, if any
    if _units(text) > EDIT_LIMIT:
        where = f" Edit it in the dashboard: {dashboard}" if dashboard else \
            " Edit it in the dashboard."
        return {"type": "modal", "callback_id": "staso_too_large", "title": _plain("Edit"),
                "close": _plain("Close"), "blocks": [{"type": "section", "text": _plain(
                    f"This input is {len(text):,} characters, more than Slack's "
                    f"{EDIT_LIMIT:,}-character text box holds.{where}")}]}
    return _modal(EDIT, "Approve with edits", "Approve", escalation, [
        {"type": "input", "block_id": EDIT_BLOCK,
         "label": _plain(f"Input for {facts.line(escalation.tool_name)} (JSON)"),
         "element": {"type": "plain_text_input", "action_id": EDIT_FIELD, "multiline": True,
                     "initial_value": text, "max_length": EDIT_LIMIT}},
        _comment(optional=True)])
