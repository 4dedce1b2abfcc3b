"""The e-mail for an escalation: a multipart/alternative message, plain text and HTML, with
the facts (``facts.py``: who may answer and how many must approve too) and, for a
recipient who answers as an approver key, an approve and a deny link (those of the
answers the escalation's rule lets that key give).

Tool names, agent names, reasons and inputs are attacker-controlled text. In the HTML part
every one is ``html.escape``d; in both parts, and in the Subject, control characters are
shown as escapes rather than obeyed, so no input starts a line of its own (a fake
"Approve:" line), folds a header, or reorders text with bidirectional controls. Only
staso's own words and links are markup.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ..models import Escalation
from . import facts
from .facts import line

INPUT_LIMIT = 4000  # characters of pretty JSON shown in the message
SUBJECT_LIMIT = 200
ESCALATION_HEADER = "X-Staso-Escalation"


@dataclass(frozen=True)
class Links:
    """The answer links of one recipient, and the approver key they answer as: a link
    for each answer that key may give (None for one it may not), and why not."""

    answering_as: str
    approve: str | None = None
    deny: str | None = None
    refused: str | None = None  # why an answer has no link (the rule's approvers, …)

    @property
    def any(self) -> bool:
        return self.approve is not None or self.deny is not None


def subject(escalation: Escalation) -> str:
    """The Subject: staso's own facts first (the rule and severity cannot be pushed out of
    sight by a long name), and no RFC 2047 encoded word from attacker text: Python's email
    package decodes ``=?utf-8?q?…?=`` in a header it is given, and some versions then write
    its decoded line breaks raw (new headers, a new body: CVE-2024-6923)."""
    answer = facts.answer(escalation)
    text = line((f"{answer.headline}: " if answer else "") + facts.summary(escalation))
    text = text if len(text) <= SUBJECT_LIMIT else text[:SUBJECT_LIMIT - 1] + "…"
    return text.replace("=?", "=\\u003f")


def _facts(escalation: Escalation) -> list[tuple[str, str]]:
    rows = [("Tool", escalation.tool_name), ("Agent", escalation.agent_name or "-"),
            ("Rule", escalation.rule_name or "-"), ("Severity", escalation.severity),
            ("Reason", escalation.reason or "-"), ("Expires", facts.expiry(escalation)),
            ("Escalation", escalation.id)]
    terms, approvals = facts.who_may_answer(escalation), facts.approvals(escalation)
    if terms:
        rows.append(("Approvers", terms))
    if approvals:
        rows.append(("Approvals", approvals))
    return rows


def _headers(escalation: Escalation, sender: str, recipient: str,
             domain: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject(escalation)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid("staso", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    msg["X-Auto-Response-Suppress"] = "All"  # the same, for Exchange
    msg[ESCALATION_HEADER] = escalation.id
    return msg


def brief(escalation: Escalation, *, sender: str, recipient: str, domain: str,
          dashboard: str | None) -> EmailMessage:
    """The message without the arguments, sent when the mail server refused the full one
    for its content (a filter matched the tool input): the escalation still reaches its
    approvers, who answer in the dashboard."""
    msg = _headers(escalation, sender, recipient, domain)
    where = f": {dashboard}" if dashboard else "."
    msg.set_content(
        line(facts.summary(escalation)) + "\n\n" + "\n".join(
            f"{name}: {line(value)}" for name, value in _facts(escalation)) +
        "\n\nThe mail server refused the message with the call's arguments, so this one "
        f"leaves them out. Review and answer it in the dashboard{where}\n")
    return msg


def build(escalation: Escalation, *, sender: str, recipient: str, domain: str,
          links: Links | None, dashboard: str | None) -> EmailMessage:
    """The message to ``recipient``; ``links`` None: one without answer links (the address
    answers as no approver key, or the escalation is answered already)."""
    msg = _headers(escalation, sender, recipient, domain)
    shown, cut = facts.pretty_input(escalation, INPUT_LIMIT)
    answer = facts.answer(escalation)
    if answer is not None:
        links = None  # an answered escalation's links would answer nothing
    msg.set_content(_text(escalation, recipient, shown, cut, links, dashboard))
    msg.add_alternative(_html(escalation, recipient, shown, cut, links, dashboard),
                        subtype="html")
    return msg


# -- plain text -----------------------------------------------------------------------------
def _text(escalation: Escalation, recipient: str, shown: str, cut: bool,
          links: Links | None, dashboard: str | None) -> str:
    answer = facts.answer(escalation)
    out = [line(f"{answer.symbol} {answer.headline} at {answer.when}") if answer
           else line(f"Approval needed: {escalation.tool_name}"), ""]
    width = max(len(name) for name, _ in _facts(escalation)) + 2
    out += [f"{name + ':':<{width}}{line(value)}" for name, value in _facts(escalation)]
    if answer and answer.comment:
        out.append(f"{'Comment:':<{width}}{line(answer.comment)}")
    out += ["", facts.arguments_heading(escalation) + ":", shown]
    if cut:
        out.append("[cut to fit" + (f": see them all in the dashboard, {dashboard}]"
                                    if dashboard else "]"))
    out.append("")
    if links is not None and links.any:
        out.append(line(f"To answer as {links.answering_as} (your approver key):"))
        out += [f"  {verb + ':':<8} {url}" for verb, url in (("Approve", links.approve),
                                                             ("Deny", links.deny)) if url]
        if links.refused:
            out += ["", line(f"No {'approve' if links.approve is None else 'deny'} link: "
                             f"{links.refused}")]
        out += ["",
                "Each link opens a page where you confirm, and may add a comment; opening "
                "it changes nothing. A link works once, only for this escalation, and stops "
                "working when the escalation is answered or expires."]
    elif links is not None and answer is None:
        out.append(line(f"{recipient} answers as {links.answering_as}, who may not answer "
                        f"this escalation ({links.refused or 'the rule says who may'}), so "
                        "this message has no approve or deny links.") +
                   (f" See it in the dashboard: {dashboard}" if dashboard else ""))
    elif answer is None:
        out.append(f"{recipient} answers as no approver key, so this message has no approve "
                   "or deny links. Answer in the dashboard" +
                   (f": {dashboard}" if dashboard else "."))
    if dashboard and ((links is not None and links.any) or answer is not None):
        out += ["", f"Dashboard: {dashboard}"]
    return "\n".join(out) + "\n"


# -- HTML -------------------------------------------------------------------------------------
def _e(text: str) -> str:
    return html.escape(text, quote=True)


_BUTTON = ("display:inline-block;padding:8px 18px;margin-right:10px;border-radius:6px;"
           "color:#ffffff;text-decoration:none;font-weight:600;background:{}")


def _html(escalation: Escalation, recipient: str, shown: str, cut: bool,
          links: Links | None, dashboard: str | None) -> str:
    answer = facts.answer(escalation)
    title = f"{answer.symbol} {answer.headline} at {answer.when}" if answer else \
        f"Approval needed: {escalation.tool_name}"
    rows = "".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0;color:#6a7280">{_e(name)}'
        f'</th><td style="padding:2px 0">{_e(line(value))}</td></tr>'
        for name, value in _facts(escalation))
    if answer and answer.comment:
        rows += (f'<tr><th style="text-align:left;padding:2px 12px 2px 0;color:#6a7280">'
                 f'Comment</th><td>{_e(line(answer.comment))}</td></tr>')
    parts = [
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{_e(line(title))}</title></head>",
        '<body style="font-family:system-ui,-apple-system,Segoe UI,sans-serif;color:#1d2330;'
        'font-size:14px;line-height:1.45">',
        f'<h2 style="font-size:18px;margin:0 0 10px">{_e(line(title))}</h2>',
        f"<table>{rows}</table>",
        f'<p style="margin:14px 0 4px">{_e(facts.arguments_heading(escalation))}:</p>',
        '<pre style="background:#f5f6f8;border-radius:6px;padding:8px 10px;'
        'white-space:pre-wrap;word-break:break-word;font-size:12px">'
        f"{_e(shown)}</pre>",
    ]
    if cut:
        more = f' <a href="{_e(dashboard)}">See them all in the dashboard.</a>' \
            if dashboard else ""
        parts.append(f"<p><em>Cut to fit.</em>{more}</p>")
    if links is not None and links.any:
        buttons = "".join(
            f'<a href="{_e(url)}" style="{_BUTTON.format(colour)}">{verb}…</a>'
            for verb, url, colour in (("Approve", links.approve, "#16794a"),
                                      ("Deny", links.deny, "#b3261e")) if url)
        parts += [
            f"<p>To answer as <strong>{_e(line(links.answering_as))}</strong> "
            "(your approver key):</p>",
            f"<p>{buttons}</p>",
        ]
        if links.refused:
            missing = "approve" if links.approve is None else "deny"
            parts.append(f"<p>No {missing} link: {_e(line(links.refused))}</p>")
        parts.append(
            '<p style="color:#6a7280;font-size:12px">Each link opens a page where you '
            "confirm, and may add a comment; opening it changes nothing. A link works once, "
            "only for this escalation, and stops working when the escalation is answered or "
            "expires.</p>")
    elif links is not None and answer is None:
        where = f'<a href="{_e(dashboard)}">the dashboard</a>' if dashboard else \
            "the dashboard"
        parts.append(f"<p>{_e(recipient)} answers as {_e(line(links.answering_as))}, who may "
                     "not answer this escalation "
                     f"({_e(line(links.refused or 'the rule says who may'))}), so this "
                     f"message has no approve or deny links. See it in {where}.</p>")
    elif answer is None:
        where = f'<a href="{_e(dashboard)}">the dashboard</a>' if dashboard else \
            "the dashboard"
        parts.append(f"<p>{_e(recipient)} answers as no approver key, so this message has "
                     f"no approve or deny links. Answer in {where}.</p>")
    if dashboard and ((links is not None and links.any) or answer is not None):
        parts.append(f'<p><a href="{_e(dashboard)}">Open in the dashboard</a></p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
