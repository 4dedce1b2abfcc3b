"""The Slack message and modals for an escalation, in Block Kit.

Tool names, agent names, reasons and inputs are attacker-controlled text, so none of them
is ever mrkdwn: the facts are ``plain_text`` and the input a ``rich_text`` preformatted
block, which Slack shows as given (no links, mentions or formatting can be smuggled in).
Only staso's own words and links are mrkdwn. Lengths stay inside Slack's limits (a
header 150 characters, a field 2,000, a text input 3,000).

Where the rule says who may answer or how many must approve, the message says so, with
the approvals so far; only the answers the rule can take from one person are offered (no
Edit, and no "allow similar", where several must approve).
"""

from __future__ import annotations

from typing import Any

from ..approvers import AnswerRefused
from ..grants import MAX_CONDITION, scope_from
from ..models import Escalation
from . import facts

APPROVE, DENY, EDIT = "staso_approve", "staso_deny", "staso_edit"
GRANT = "staso_grant"  # approve, and allow similar calls for a while (a standing approval)
OPEN = "staso_open"  # a link button: Slack reports the click, staso has nothing to do
INPUT_LIMIT = 2500  # characters of pretty JSON shown in the message
EDIT_LIMIT = 3000  # Slack's most for a text input: a larger input is edited in the dashboard
EDIT_BLOCK, EDIT_FIELD = "staso_input", "json"
COMMENT_BLOCK, COMMENT_FIELD = "staso_comment", "comment"
TTL_BLOCK, TTL_FIELD = "staso_grant_ttl", "ttl"
USES_BLOCK, USES_FIELD = "staso_grant_uses", "max_uses"
WHEN_BLOCK, WHEN_FIELD = "staso_grant_when", "when"
# how long a grant from Slack lives: the choices offered (value: a grants.seconds duration)
TTLS = {"15m": "15 minutes", "1h": "1 hour", "8h": "8 hours", "24h": "24 hours"}
DEFAULT_TTL = "1h"


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
    terms = [text for text in (facts.who_may_answer(escalation),
                               facts.approvals(escalation) if answer is None else None)
             if text]
    if terms:  # the rule's approvers and quorum, and the approvals so far
        blocks.append({"type": "context", "block_id": "staso_approvers",
                       "elements": [_plain(text) for text in terms]})
    if answer is None and cut:  # no approving in Slack what Slack cannot show whole
        blocks.append({"type": "actions", "block_id": "staso_answer", "elements": [
            {"type": "button", "action_id": DENY, "value": escalation.id, "style": "danger",
             "text": _plain("Deny")},
            *([{"type": "button", "action_id": OPEN, "url": dashboard,
                "text": _plain("Review and approve in the dashboard")}] if dashboard else []),
        ]})
    elif answer is None:
        if grantable(escalation):  # a line of its own, above the answers
            blocks.append({"type": "section", "block_id": "staso_grant", "text": _plain(
                "Approve this call and allow similar ones for a while, without asking "
                "each time"), "accessory": {
                    "type": "button", "action_id": GRANT, "value": escalation.id,
                    "text": _plain("Approve & allow similar…", 75)}})
        blocks.append({"type": "actions", "block_id": "staso_answer", "elements": [
            {"type": "button", "action_id": APPROVE, "value": escalation.id, "style": "primary",
             "text": _plain("Approve"),
             "confirm": {"title": _plain("Approve this call?", 100),
                         "text": _plain(f"{line(escalation.tool_name)} will run with the "
                                        "arguments shown" + (
                                            f" once {escalation.approvals_required} "
                                            "different approvers have approved"
                                            if escalation.approvals_required > 1 else "")
                                        + ".", 300),
                         "confirm": _plain("Approve"), "deny": _plain("Cancel")}},
            {"type": "button", "action_id": DENY, "value": escalation.id, "style": "danger",
             "text": _plain("Deny")},
            # one of several approvers cannot edit: the others would approve what they
            # did not see
            *([{"type": "button", "action_id": EDIT, "value": escalation.id,
                "text": _plain("Edit")}] if escalation.approvals_required == 1 else []),
        ]})
    else:
        lines = [f"{answer.symbol} {answer.headline} at {answer.when}"]
        approvals = facts.approvals(escalation)
        if approvals:
            lines.append(approvals)
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


def grantable(escalation: Escalation) -> bool:
    """Whether an approval of this escalation may allow similar calls ahead (the core's
    own check: not where several must approve, nor for staso's built-in checks)."""
    try:
        scope_from({}, escalation, {})
    except AnswerRefused:
        return False
    return True


def _option(value: str) -> dict[str, Any]:
    return {"text": _plain(TTLS[value], 75), "value": value}


def grant_modal(escalation: Escalation) -> dict[str, Any]:
    """Approve, and allow the same agent's calls of the same tool that the same rule
    escalates, for a while (ttl), at most so many times (max uses), and only where a
    condition on the input holds (when): Slack's form for a standing approval."""
    tool, agent = facts.line(escalation.tool_name), facts.line(escalation.agent_name or "-")
    rule = facts.line(escalation.rule_name or "-")
    return _modal(GRANT, "Approve & allow similar", "Approve", escalation, [
        {"type": "section", "text": _plain(
            f"Approve this call, and let {agent} call {tool} without asking while rule "
            f"{rule} would escalate it, within the limits below. A call the policy blocks "
            "stays blocked; a call outside the limits still comes to a person. The "
            "standing approval can be revoked at any time (staso grants revoke, or the "
            "dashboard).", 3000)},
        {"type": "input", "block_id": TTL_BLOCK, "label": _plain("Allow similar calls for"),
         "element": {"type": "static_select", "action_id": TTL_FIELD,
                     "placeholder": _plain("How long", 150),
                     "options": [_option(value) for value in TTLS],
                     "initial_option": _option(DEFAULT_TTL)}},
        {"type": "input", "block_id": USES_BLOCK, "optional": True,
         "label": _plain("At most this many calls"),
         "hint": _plain("A whole number, such as 20. Empty: no limit but the time."),
         "element": {"type": "plain_text_input", "action_id": USES_FIELD,
                     "placeholder": _plain("no limit", 150), "max_length": 10}},
        {"type": "input", "block_id": WHEN_BLOCK, "optional": True,
         "label": _plain("Only calls where (a CEL condition on the input)"),
         "hint": _plain("For example tool_input.amount <= 2000. Empty: every such call."),
         "element": {"type": "plain_text_input", "action_id": WHEN_FIELD,
                     "placeholder": _plain("tool_input.amount <= 2000", 150),
                     "max_length": MAX_CONDITION}},
        _comment(optional=True)])
