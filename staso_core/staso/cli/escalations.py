"""``staso escalations``: list, show, approve and deny."""

from __future__ import annotations

import json
import time
from typing import Any, Optional

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from .common import KEY, URL, age, fail, field, on_client, out, when
from .reading import on_reader, shown, shown_json

escalations_app = typer.Typer(help="List, show, approve and deny escalations.",
                              no_args_is_help=True)
STATUSES = ("pending", "approved", "denied", "timeout")


def full_id(client: Any, given: str, action: Any) -> Any:
    """``action(escalation_id)`` with the id given, or, if no escalation has it, with the one
    escalation whose id starts with it (as ``escalations list`` shows ids, any unambiguous
    start of one will do). Several such escalations: a StasoError naming them."""
    from ..errors import EscalationNotFound, StasoError

    try:
        return action(given)
    except EscalationNotFound:
        if len(given) < 2:
            raise
        matches = _ids_starting_with(client, given)
        if len(matches) == 1:
            return action(matches[0])
        if not matches:
            raise
        some = ", ".join(shown(m) for m in matches[:10]) + (" ..." if len(matches) > 10
                                                              else "")
        raise StasoError(f"{given!r} is the start of {len(matches)} escalation ids: "
                         f"{some}; give more of it") from None


def _ids_starting_with(client: Any, prefix: str, pages: int = 20) -> list[str]:
    """The ids that start with ``prefix``, newest first (the last ``pages`` thousand)."""
    found: list[str] = []
    before = None
    for _ in range(pages):
        page = client.list_escalations(limit=1000, before=before)
        found += [e.id for e in page if e.id.startswith(prefix)]
        if len(page) < 1000:
            break
        before = page[-1].id
    return found


@escalations_app.command("list")
def escalations_list(status: Optional[str] = typer.Option(  # noqa: UP045
                         None, help="pending, approved, denied or timeout"),
                     as_json: bool = typer.Option(False, "--json", help="JSON output"),
                     url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """List escalations, newest first."""
    if status is not None and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)} (got {status!r})", code=2)
    items = on_reader(url, key, lambda client: client.list_escalations(status=status))
    if as_json:
        print(json.dumps([e.to_dict() for e in items], indent=2))
        return
    out.print(_table(items, time.time()))


def _table(items: list[Any], now: float) -> Table:
    """Readable at 80 columns: ids in full (show, approve and deny take them), each row's
    status over its age, and its tool over its rule and agent in one column, so names of
    up to 40 characters stay whole (only a longer one is folded)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column("id", no_wrap=True, min_width=max((len(shown(e.id)) for e in items),
                                                       default=2))
    table.add_column("status", no_wrap=True)
    table.add_column("tool / rule / agent", overflow="fold")
    for e in items:  # Text: agents' names are never Rich markup, and shown as escapes
        call = Text(shown(e.tool_name))
        call.append("\n" + shown(e.rule_name or "-"), style="dim")
        call.append("\n" + shown(e.agent_name or "-"), style="dim")
        table.add_row(Text(shown(e.id)), Text(f"{shown(e.status)}\n{age(now - e.created_at)} ago"),
                      call)
    return table


@escalations_app.command("show")
def escalations_show(escalation_id: str,
                     as_json: bool = typer.Option(False, "--json", help="JSON output"),
                     url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """Show one escalation with its full input."""
    esc = on_reader(url, key, lambda client: full_id(client, escalation_id,
                                                     client.get_escalation))
    if as_json:
        print(json.dumps(esc.to_dict(), indent=2))
        return
    now = time.time()
    for key, value in esc.to_dict().items():
        if key in _WHO_ANSWERS:
            continue
        if isinstance(value, (dict, list)):
            value = shown_json(value)
        elif key.endswith("_at") and isinstance(value, (int, float)):
            value = when(value, now)
        else:
            value = shown(value)
        field(key, value)
    for key, value in _who_answers(esc):
        field(key, shown(value))


# shown together, in words, by escalations show
_WHO_ANSWERS = {"approvers", "approvals", "approvals_required", "forbid_self_approval",
                "requested_by", "policy_version", "policy_digest"}


def _who_answers(esc: Any) -> list[tuple[str, str]]:
    """Who may answer, who has, and which policy escalated it: (label, text) lines."""
    now = time.time()
    said = [f"{a.get('by') or a.get('name')} via {a.get('via') or '?'}, "
            f"{age(now - (a.get('at') or now))} ago" for a in esc.approvals]
    approvals = f"{len(esc.approvals)} of {esc.approvals_required}"
    lines = [("approvers", ", ".join(esc.approvers) if esc.approvers is not None
              else "any approver"),
             ("approvals", approvals + (f" ({'; '.join(said)})" if said else ""))]
    if esc.requested_by or esc.forbid_self_approval:
        lines.append(("requested_by", (esc.requested_by or "(not given)") + (
            " (may not approve it: the rule forbids self-approval)"
            if esc.forbid_self_approval else "")))
    if esc.policy_version is not None or esc.policy_digest:
        version = f"version {esc.policy_version}" if esc.policy_version is not None else ""
        digest = f"digest {esc.policy_digest}" if esc.policy_digest else ""
        lines.append(("policy", ", ".join(x for x in (version, digest) if x)))
    return lines


def _resolve(escalation_id: str, status: str, by: str, comment: str | None,
             modified: dict[str, Any] | None, url: str | None, key: str | None,
             grant: dict[str, Any] | None = None) -> None:
    def answer(client: Any) -> Any:
        if status == "approved":
            return full_id(client, escalation_id, lambda found: client.approve(
                found, by=by, comment=comment, modified_input=modified, grant=grant,
                via="cli"))
        return full_id(client, escalation_id, lambda found: client.deny(
            found, by=by, comment=comment, via="cli"))

    esc = on_client(url, key, answer)
    if esc.status == "pending":  # one approval of several
        out.print(shown(f"{esc.id} pending: {len(esc.approvals)} of "
                        f"{esc.approvals_required} approvals "
                        f"({', '.join(a['name'] for a in esc.approvals)})"), markup=False,
                  highlight=False)
        return
    out.print(shown(f"{esc.id} {esc.status} by {esc.resolved_by}"), markup=False,
              highlight=False)
    if grant is not None and esc.status == "approved":
        granted = " and ".join(x for x in (
            f"for {grant['ttl']}" if "ttl" in grant else "for 1h",
            f"at most {grant['max_uses']} times" if "max_uses" in grant else "",
            f"when {grant['when']}" if "when" in grant else "") if x)
        out.print(shown(f"standing approval: {esc.agent_name}'s {esc.tool_name} calls "
                        f"escalated by {esc.rule_name} are allowed {granted} (staso grants "
                        "list)"), markup=False, highlight=False)


@escalations_app.command("approve")
def escalations_approve(escalation_id: str, by: str = typer.Option(..., help="who approves"),
                        comment: Optional[str] = typer.Option(None),  # noqa: UP045
                        input: Optional[str] = typer.Option(  # noqa: UP045
                            None, "--input", help="edited tool input as a JSON object"),
                        grant_ttl: Optional[str] = typer.Option(  # noqa: UP045
                            None, "--grant-ttl", help="also allow this agent's calls of this "
                            "tool that this rule escalates, for this long (30m, 1h, 7d): a "
                            "standing approval"),
                        grant_max_uses: Optional[int] = typer.Option(  # noqa: UP045
                            None, "--grant-max-uses", help="the standing approval allows at "
                            "most this many calls"),
                        grant_when: Optional[str] = typer.Option(  # noqa: UP045
                            None, "--grant-when", help="the standing approval covers only "
                            "calls where this CEL condition holds, e.g. "
                            "'tool_input.amount <= 2000'"),
                        url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """Approve an escalation (optionally with an edited input, or with a standing approval
    for calls like it: any --grant-* option gives one; its ttl is 1h unless --grant-ttl)."""
    modified = None
    if input is not None:
        try:
            modified = json.loads(input)
        except json.JSONDecodeError as exc:
            fail(f"--input is not valid JSON: {exc}")
        if not isinstance(modified, dict):
            fail("--input must be a JSON object of tool arguments")
    grant = {k: v for k, v in (("ttl", grant_ttl), ("max_uses", grant_max_uses),
                               ("when", grant_when)) if v is not None} or None
    _resolve(escalation_id, "approved", by, comment, modified, url, key, grant)


@escalations_app.command("deny")
def escalations_deny(escalation_id: str, by: str = typer.Option(..., help="who denies"),
                     comment: Optional[str] = typer.Option(None),  # noqa: UP045
                     url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """Deny an escalation; the comment reaches the agent."""
    _resolve(escalation_id, "denied", by, comment, None, url, key)
