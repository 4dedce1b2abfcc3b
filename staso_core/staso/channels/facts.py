"""What every channel shows of an escalation, written once: the input as pretty JSON (as
stored: masked per the policy's ``redact_in_log``), cut to fit with a pointer to the
dashboard, the expiry, and the answer once there is one. Slack and e-mail format these
facts; neither decides what they say."""

from __future__ import annotations

import json
import re
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

from ..approvers import AnswerRefused, Approver, NotAnApprover, answer_values
from ..errors import EscalationConflict, StasoError
from ..models import Escalation

_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# letters and symbols that draw nothing (Braille blank, Hangul fillers): padding that pushes
# staso's own words out of sight, or wraps a fake line of its own
_BLANK = frozenset("\u2800\u3164\u115f\u1160\uffa0")
_WHITESPACE = re.compile(r"\s+")

VIA = {"slack": "Slack", "email": "e-mail", "dashboard": "the dashboard", "api": "the API",
       "cli": "the CLI", "python": "Python"}


def will_run(escalation: Escalation) -> dict[str, Any]:
    """The input an approval runs: the policy's rewrite where it made one (a cap, a
    redaction), else the agent's own (as stored: masked per ``redact_in_log``)."""
    proposed = escalation.proposed_input
    return proposed if proposed is not None else escalation.tool_input


def changed_by_policy(escalation: Escalation) -> bool:
    """Whether the policy rewrote the agent's input (what runs is not what it sent)."""
    return escalation.proposed_input is not None and \
        escalation.proposed_input != escalation.tool_input


def arguments_heading(escalation: Escalation) -> str:
    """What the shown arguments are: as they will run, which says so when the policy
    rewrote them (an approver must not think the agent's own input runs)."""
    if changed_by_policy(escalation):
        return ("Arguments as they will run: the policy rewrote what the agent sent "
                "(masked per the policy)")
    return "Arguments (masked per the policy)"


def input_json(escalation: Escalation) -> str:
    """``will_run`` as indented JSON that shows every character (``visible``) and still
    parses to the same value: what an approver reads and edits."""
    return visible(json.dumps(will_run(escalation), indent=2, ensure_ascii=False,
                              default=str))


def pretty_input(escalation: Escalation, limit: int) -> tuple[str, bool]:
    """``input_json``, at most ``limit`` characters; True if it was cut."""
    text = input_json(escalation)
    if len(text) <= limit:
        return text, False
    return text[:limit].rstrip() + "\n…", True


def shown_whole(escalation: Escalation, limit: int) -> bool:
    """Whether ``limit`` characters show all an approval would run: where they do not, a
    channel offers no approval (it would run what the approver could not see)."""
    return not pretty_input(escalation, limit)[1]


def _shown(char: str) -> str:
    if char in "\n\t" or (unicodedata.category(char) not in _HIDDEN and char not in _BLANK):
        return char
    code = ord(char)
    if code > 0xFFFF:  # as JSON writes it: a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with control, format and surrogate characters (bidirectional overrides,
    zero-width joiners, line separators, lone surrogates) written as ``\\uXXXX``: shown,
    not obeyed, so no input reorders what an approver reads or starts a fake line of its
    own. Newlines and tabs stay. In JSON text these characters only occur inside strings,
    where the escape is JSON's own: the text still parses to the same value."""
    return "".join(_shown(c) for c in text)


def line(text: str) -> str:
    """A fact on one line (a tool or agent name): ``visible``, every run of whitespace
    (newlines and the wide Unicode spaces included) one space."""
    return _WHITESPACE.sub(" ", visible(text)).strip()


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
    """One line for notifications and subjects: staso's facts (severity, rule) before the
    names an agent chose, each name cut to 60 characters."""
    tool, agent = (_short(line(name)) for name in (escalation.tool_name,
                                                    escalation.agent_name or "an agent"))
    return line(f"Approval needed ({escalation.severity}, rule {escalation.rule_name or '-'}): "
                f"{tool} by {agent}")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- who may answer, and the approvals so far ---------------------------------------------
def who_may_answer(escalation: Escalation) -> str | None:
    """The rule's terms in words: who may answer, how many must approve, and that the one
    who asked may not (None: any approver, and one approval answers)."""
    parts = []
    if escalation.approvers is not None:
        parts.append("May answer: " + ", ".join(escalation.approvers))
    if escalation.approvals_required > 1:
        parts.append(f"needs {escalation.approvals_required} approvals from different people")
    if escalation.forbid_self_approval and escalation.requested_by:
        parts.append(f"not approved by {_short(escalation.requested_by)}, who asked for it")
    return line(" · ".join(parts)) if parts else None


def _approver_list(escalation: Escalation) -> str:
    return ", ".join(f"{a.get('name') or a.get('by') or 'someone'} via "
                     f"{VIA.get(a.get('via') or '', a.get('via') or 'staso')}"
                     for a in escalation.approvals or ())


def approvals(escalation: Escalation) -> str | None:
    """The approvals so far: "1 of 2 approvals: alice via Slack" while a quorum gathers,
    every approver with their channel once approved; None where one approval is the
    answer (the headline names it)."""
    given = escalation.approvals or []
    required = escalation.approvals_required
    if required <= 1 and len(given) <= 1:
        return None
    listed = _approver_list(escalation)
    if escalation.status == "pending":
        return line(f"{len(given)} of {required} approvals" + (f": {listed}" if given else ""))
    if escalation.status == "approved":
        return line(f"Approved by {len(given)} of {required}: {listed}")
    if given:
        return line(f"{len(given)} of {required} approvals before it was "
                    f"{'denied' if escalation.status == 'denied' else 'timed out'}: {listed}")
    return None


def refused(escalation: Escalation, who: Approver, status: str, *, editing: bool = False,
            granting: bool = False) -> StasoError | None:
    """Why ``who`` may not give this answer now (None: they may), asked before a channel
    offers it (a link, a modal): the store's own check (``answer_values``), run without
    writing anything. The answer itself is checked again where it is recorded."""
    try:
        answer_values(escalation, who, status=status, by=who.name, comment=None,
                      modified_input={} if editing else None, via=None, granting=granting,
                      now=time.time())
    except (NotAnApprover, EscalationConflict, AnswerRefused) as exc:
        return exc
    return None
