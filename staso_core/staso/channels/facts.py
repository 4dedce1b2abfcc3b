"""What every channel shows of an escalation, written once: the input as pretty JSON (as
stored: masked per the policy's ``redact_in_log``), cut to fit with a pointer to the
dashboard, the expiry, and the answer once there is one. Slack and e-mail format these
facts; neither decides what they say."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ..models import Escalation

VIA = {"slack": "Slack", "email": "e-mail", "dashboard": "the dashboard", "api": "the API"}


def pretty_input(escalation: Escalation, limit: int) -> tuple[str, bool]:
    """The input as indented JSON, at most ``limit`` characters; True if it was cut."""
    text = json.dumps(escalation.tool_input, indent=2, ensure_ascii=False, default=str)
    if len(text) <= limit:
        return text, False
    return text[:limit].rstrip() + "\n…", True


def utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def span(seconds: float) -> str:
    """A duration as people say it: 45 s, 12 min, 3 h 20 min, 2 d 4 h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"


def expiry(escalation: Escalation, now: float | None = None) -> str:
    left = escalation.expires_at - (now or time.time())
    when = utc(escalation.expires_at)
    return f"{when} (in {span(left)})" if left > 0 else f"{when} (passed)"


@dataclass(frozen=True)
class Answer:
    """An answered escalation in words: ``headline`` ("Approved by alice via Slack"),
    ``when``, the ``comment`` and whether the input was edited."""

    status: str
    headline: str
    when: str
    comment: str | None
    edited: bool

    @property
    def symbol(self) -> str:
        return {"approved": "✅", "denied": "⛔", "timeout": "⌛"}.get(self.status, "•")


def answer(escalation: Escalation) -> Answer | None:
    """None while the escalation is pending."""
    status = escalation.status
    if status == "pending":
        return None
    if status == "timeout":
        return Answer(status, "Timed out: nobody answered in time", utc(escalation.expires_at),
                      None, False)
    edited = status == "approved" and escalation.modified_input is not None
    verb = {"approved": "Approved with edits" if edited else "Approved",
            "denied": "Denied"}.get(status, status.capitalize())
    via = VIA.get(escalation.resolved_via or "", "")
    headline = f"{verb} by {escalation.resolved_by or 'someone'}" + (f" via {via}" if via else "")
    return Answer(status, headline, utc(escalation.resolved_at or time.time()),
                  escalation.comment or None, edited)


def summary(escalation: Escalation) -> str:
    """One line for notifications and subjects."""
    return (f"Approval needed: {escalation.tool_name} by {escalation.agent_name or 'an agent'} "
            f"(rule {escalation.rule_name or '-'}, {escalation.severity})")
