"""``staso escalations``: list, show, approve and deny."""

from __future__ import annotations

import json
import time
from typing import Any, Optional

import typer
from rich.table import Table

from .common import KEY, URL, age, fail, field, on_client, out

escalations_app = typer.Typer(help="List, show, approve and deny escalations.",
                              no_args_is_help=True)

@escalations_app.command("list")
def escalations_list(status: Optional[str] = typer.Option(  # noqa: UP045
                         None, help="pending, approved, denied or timeout"),
                     as_json: bool = typer.Option(False, "--json", help="JSON output"),
                     url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """List escalations, newest first."""
    items = on_client(url, key, lambda client: client.list_escalations(status=status))
    if as_json:
        print(json.dumps([e.to_dict() for e in items], indent=2))
        return
    table = Table("id", "status", "tool", "rule", "agent", "age")
    now = time.time()
    for e in items:
        table.add_row(e.id, e.status, e.tool_name, e.rule_name or "", e.agent_name,
                      age(now - e.created_at))
    out.print(table)


@escalations_app.command("show")
def escalations_show(escalation_id: str,
                     as_json: bool = typer.Option(False, "--json", help="JSON output"),
                     url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """Show one escalation with its full input."""
    esc = on_client(url, key, lambda client: client.get_escalation(escalation_id))
    if as_json:
        print(json.dumps(esc.to_dict(), indent=2))
        return
    for key, value in esc.to_dict().items():
        if key in _WHO_ANSWERS:
            continue
        if isinstance(value, dict):
            value = json.dumps(value, indent=2)
        field(key, value)
    for key, value in _who_answers(esc):
        field(key, value)


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
            return client.approve(escalation_id, by=by, comment=comment,
                                  modified_input=modified, grant=grant, via="cli")
        return client.deny(escalation_id, by=by, comment=comment, via="cli")

    esc = on_client(url, key, answer)
    if esc.status == "pending":  # one approval of several
        out.print(f"{esc.id} pending: {len(esc.approvals)} of {esc.approvals_required} "
                  f"approvals ({', '.join(a['name'] for a in esc.approvals)})", markup=False,
                  highlight=False)
        return
    out.print(f"{esc.id} {esc.status} by {esc.resolved_by}", markup=False, highlight=False)
    if grant is not None and esc.status == "approved":
        granted = " and ".join(x for x in (
            f"for {grant['ttl']}" if "ttl" in grant else "for 1h",
            f"at most {grant['max_uses']} times" if "max_uses" in grant else "",
            f"when {grant['when']}" if "when" in grant else "") if x)
        out.print(f"standing approval: {esc.agent_name}'s {esc.tool_name} calls escalated by "
                  f"{esc.rule_name} are allowed {granted} (staso grants list)", markup=False,
                  highlight=False)


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
