"""Who may answer an escalation, and how many must: one place for every channel.

A rule names its approvers (``alice``, ``group:payments``, ``slack:U024BE7LH``,
``email:ops@example.com``), how many distinct ones must approve, and whether the person who
asked for the call may approve it. The escalation keeps these from the moment it is made (a
policy change later does not move the goalposts of a pending one), and the store checks them
inside the transaction that records an answer, so the dashboard, the API, the CLI, Slack and
e-mail are refused alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import AccessDenied, EscalationConflict, StasoError

KINDS = ("group", "slack", "email")
# names and groups: what an operator types on the command line; no spaces, no colon
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}")
MAX_APPROVALS = 20


class NotAnApprover(AccessDenied):
    """This person may not answer this escalation (HTTP 403): not among the rule's
    approvers, or the one who asked for the call."""


class AnswerRefused(StasoError, ValueError):
    """An answer that cannot be taken as given (HTTP 422), such as an edit or a standing
    approval where the rule needs several approvers."""


@dataclass(frozen=True)
class Approver:
    """The person answering, as far as staso knows them: the name of their key (embedded:
    the ``by`` given), the key's groups, and the Slack user and address linked to it."""

    name: str
    groups: tuple[str, ...] = ()
    slack_user: str | None = None
    email: str | None = None

    def is_listed(self, entries: Iterable[str]) -> bool:
        """Whether any of a rule's ``approvers`` entries names this person."""
        # (a name with a colon, "group:payments", is never the entry it looks like)
        mine = {*((self.name,) if ":" not in self.name else ()),
                *(f"group:{g}" for g in self.groups)}
        if self.slack_user:
            mine.add(f"slack:{self.slack_user}")
        if self.email:
            mine.add(f"email:{self.email}")
        return any(entry in mine for entry in entries)

    @classmethod
    def of_key(cls, key: Any) -> Approver:
        """The approver an API key answers as (``staso.store.keys.ApiKey``)."""
        return cls(name=key.name, groups=tuple(key.groups or ()), slack_user=key.slack_user,
                   email=key.email)


def refusal(esc: Any, approver: Approver, status: str) -> str | None:
    """Why ``approver`` may not answer ``esc`` with ``status`` (None: they may). ``esc`` is
    a ``staso.models.Escalation``."""
    if esc.approvers is not None and not approver.is_listed(esc.approvers):
        return (f"{approver.name} may not answer escalation {esc.id}: rule "
                f"{esc.rule_name!r} is answered by {', '.join(esc.approvers) or 'no one'}")
    if (status == "approved" and esc.forbid_self_approval and esc.requested_by
            and same_person(esc.requested_by, approver.name)):
        return (f"{approver.name} asked for this call (context.requested_by), and rule "
                f"{esc.rule_name!r} forbids approving one's own request; someone else must")
    return None


def answer_values(esc: Any, who: Approver, *, status: str, by: str, comment: str | None,
                  modified_input: dict[str, Any] | None, via: str | None, granting: bool,
                  now: float) -> dict[str, Any]:
    """What one person's answer changes on a pending escalation (every store calls this
    with the escalation read under its write lock): the approvals so far, and the answer
    itself once they reach the quorum, or at once for a denial. Refuses someone not allowed
    to answer (NotAnApprover), the same person twice (EscalationConflict), and an edit or a
    grant by one of several approvers (AnswerRefused: the others would approve what they
    did not see)."""
    refused = refusal(esc, who, status)
    if refused:
        raise NotAnApprover(refused)
    if granting and modified_input is not None:
        raise AnswerRefused("an edited approval cannot also approve calls ahead: the standing "
                            "approval would let the unedited input through; approve the edit, "
                            "and grant from a call as it should run")
    if any(entry.get("name") == who.name for entry in esc.approvals or ()):
        others = f"; it needs {esc.approvals_required} different approvers" \
            if esc.approvals_required > 1 else ""
        raise EscalationConflict(f"{who.name} has already approved escalation {esc.id}"
                                 f"{others}", status="pending")
    approvals = list(esc.approvals or ())
    if status == "approved":
        approvals.append({"name": who.name, "by": by, "via": via, "at": now,
                          "comment": comment})
    values: dict[str, Any] = {"approvals": approvals}
    if status == "denied" or len(approvals) >= esc.approvals_required:
        values.update(status=status, resolved_at=now, resolved_by=by, comment=comment,
                      modified_input=modified_input, resolved_via=via)
    if esc.approvals_required > 1 and status == "approved" and (
            modified_input is not None or granting):
        raise AnswerRefused(f"escalation {esc.id} needs {esc.approvals_required} approvers: "
                            "one of them cannot edit it or approve its calls ahead")
    return values


def same_person(asked: str, name: str) -> bool:
    """Whether ``context.requested_by`` names this approver, read leniently: a check that
    keeps someone from approving their own request must not be dodged by "Carol", a
    full-width carol or an invisible character (NFKC, case folded, format
    characters and outer spaces dropped)."""
    return _plain_name(asked) == _plain_name(name)


def _plain_name(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if unicodedata.category(c) != "Cf").strip()


def answers(esc: Any) -> list[dict[str, Any]]:
    """Who answered an escalation and how, for its calls' decision rows: each approval
    (name, channel, time), then a denial's author."""
    said = [{"by": a.get("by") or a.get("name"), "via": a.get("via"), "at": a.get("at"),
             "answer": "approved"} for a in esc.approvals or ()]
    if esc.status == "denied":
        said.append({"by": esc.resolved_by, "via": esc.resolved_via, "at": esc.resolved_at,
                     "answer": "denied"})
    return said


# -- the policy's side: checking a rule's entries at load ---------------------------------
def check_entries(raw: Any) -> tuple[str, ...]:
    """A rule's ``approvers`` list as stored (ValueError naming the bad entry)."""
    if isinstance(raw, str) or not isinstance(raw, list) or not raw:
        raise ValueError("'approvers' must be a non-empty list such as "
                         "[alice, \"group:payments\", \"slack:U024BE7LH\"]")
    entries = []
    for item in raw:
        if not isinstance(item, str):
            raise ValueError(f"approvers: {item!r} is not a name or kind:value")
        entries.append(check_entry(item.strip()))
    return tuple(dict.fromkeys(entries))


def check_entry(entry: str) -> str:
    kind, colon, value = entry.partition(":")
    if not colon:
        if NAME.fullmatch(entry) is None:
            raise ValueError(f"approvers: {entry!r} is not a key name (letters, digits, "
                             "'_.@+-')")
        return entry
    if kind not in KINDS:
        raise ValueError(f"approvers: unknown kind {kind!r} in {entry!r} "
                         f"(a name, or {', '.join(k + ':' for k in KINDS)})")
    if kind == "group" and NAME.fullmatch(value) is None:
        raise ValueError(f"approvers: {value!r} is not a group name")
    if kind in ("slack", "email"):
        from .store.keys import check_links  # (the store imports this module)
        try:
            slack, email = check_links("approver", value if kind == "slack" else None,
                                       value if kind == "email" else None)
        except StasoError as exc:
            raise ValueError(f"approvers: {entry!r}: {str(exc).split(' ', 1)[1]}") from None
        value = slack or email or ""
    return f"{kind}:{value}"


def check_required(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_APPROVALS:
        raise ValueError(f"'approvals_required' must be a whole number from 1 to "
                         f"{MAX_APPROVALS}, not {raw!r}")
    return raw


def check_group(name: str) -> str:
    """A group name as keys keep it (StasoError if malformed)."""
    name = name.strip()
    if NAME.fullmatch(name) is None:
        raise StasoError(f"--group takes a name of letters, digits and '_.@+-' such as "
                         f"payments, not {name!r}")
    return name
