"""``staso decisions``: read the decision log (what the guard decided on each call, and why)
on the embedded store or, with ``--url`` and an approver key, on a server."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Optional

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from .common import KEY, URL, fail, field, out, when
from .reading import check_id, on_reader, shown, shown_json

decisions_app = typer.Typer(help="Read the decision log: what was decided on each call.",
                            no_args_is_help=True)
_WHEN = ("an ISO date or date-time (2026-12-01, 2026-12-01T09:00; local time without an "
         "offset), epoch seconds, or a duration back from now: 90s, 15m, 1h, 7d")
_ID_WIDTH = 28  # dec_ and 24 hex digits: the ids staso makes


def _short_time(epoch: Any) -> str:
    if not isinstance(epoch, (int, float)):
        return "-"
    return datetime.fromtimestamp(epoch).strftime("%m-%d %H:%M")


@decisions_app.command("list")
def decisions_list(
        since: Optional[str] = typer.Option(None, help=f"from: {_WHEN}"),  # noqa: UP045
        until: Optional[str] = typer.Option(None, help=f"until: {_WHEN}"),  # noqa: UP045
        action: Optional[str] = typer.Option(  # noqa: UP045
            None, help="allow, block, modify or escalate (several: block,escalate)"),
        agent: Optional[str] = typer.Option(None, help="agent name, whole, or a glob: '*part*'"),  # noqa: UP045
        tool: Optional[str] = typer.Option(None, help="tool name, whole, or a glob: '*part*'"),  # noqa: UP045
        rule: Optional[str] = typer.Option(None, help="rule name, whole, or a glob: '*part*'"),  # noqa: UP045
        search: Optional[str] = typer.Option(  # noqa: UP045
            None, "--search", "-q", help="text in the id, tool, agent, rule, reason or "
                                         "escalation id (any case)"),
        limit: int = typer.Option(50, help="how many, 1 to 500"),
        cursor: Optional[str] = typer.Option(  # noqa: UP045
            None, help="the next page (printed under a full page)"),
        as_json: bool = typer.Option(False, "--json", help="JSON output"),
        url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """List decisions, newest first."""
    from ..decision_filters import BadFilter, DecisionFilter

    try:  # checked here: a bad filter is a usage error (exit 2), on either side
        filters = DecisionFilter.parse(agent=agent, tool=tool, rule=rule, action=action,
                                       q=search, since=since, until=until, limit=limit,
                                       cursor=cursor)
    except BadFilter as exc:
        fail(f"--{'search' if exc.param == 'q' else exc.param} {str(exc).split(': ', 1)[1]}",
             code=2)
        return
    page = on_reader(url, key, lambda client: client.list_decisions(
        agent=filters.agent, tool=filters.tool, rule=filters.rule,
        action=",".join(filters.actions) or None, q=filters.q, since=filters.since,
        until=filters.until, limit=filters.limit, cursor=filters.cursor))
    if as_json:
        print(json.dumps(page.to_dict(), indent=2))
        return
    if not page.items:
        typer.echo("no decisions match" + _name_hint(agent=filters.agent, tool=filters.tool,
                                                     rule=filters.rule), err=True)
        return
    out.print(_table(page.items))
    if page.next_cursor:
        typer.echo(f"more: staso decisions list ... --cursor {page.next_cursor}", err=True)


def _name_hint(**names: str | None) -> str:
    """For names given without ``*`` (matched whole, unlike the dashboard's parts): how to
    ask for any part of them instead."""
    parts = [f"--{option} '*{shown(name).replace(chr(39), '')}*'"
             for option, name in names.items() if name and "*" not in name]
    return f"; names are matched whole — try {' '.join(parts)}" if parts else ""


def _table(items: list[dict[str, Any]]) -> Table:
    """Readable at 80 columns: ids in full (never cut); each row's action over its rule and
    its tool over its agent, long names folded onto more lines."""
    width = max([_ID_WIDTH, *(len(shown(i.get("id"))) for i in items)])
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    table.add_column("time", no_wrap=True)
    table.add_column("id", no_wrap=True, min_width=width, overflow="fold")
    table.add_column("action / rule", overflow="fold")
    table.add_column("tool / agent", overflow="fold")
    for item in items:  # Text: names are the agent's, never Rich markup
        decision = Text(shown(item.get("action") or "(run)"))
        decision.append("\n" + shown(item.get("rule_name")), style="dim")
        call = Text(shown(item.get("tool_name")))
        call.append("\n" + shown(item.get("agent_name")), style="dim")
        table.add_row(_short_time(item.get("created_at")), Text(shown(item.get("id"))),
                      decision, call)
    return table


@decisions_app.command("show")
def decisions_show(decision_id: str = typer.Argument(..., help="a decision id, or an "
                                                     "unambiguous end or start of one"),
                   as_json: bool = typer.Option(False, "--json", help="JSON output"),
                   url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """Show one decision: rule results, masked input, changes, execution, answers and its
    escalation. Ids one process makes share a long start (a random per-process part, then
    a counter), so their last few characters are the part to give: ``show 5541a2``."""
    check_id(decision_id)
    found = on_reader(url, key, lambda client: _find(client, decision_id))
    if as_json:
        print(json.dumps(found, indent=2))
        return
    _show(found)


_FIND_PAGES = 20  # pages of 500 decisions whose text holds what was typed, newest first


def _find(client: Any, given: str) -> dict[str, Any]:
    """The decision with this id, or the only one whose id ends or starts with it."""
    found: dict[str, Any] | None = client.get_decision(given)
    if found is not None:
        return found
    if len(given) >= 4:
        ends, starts = _ids_with(client, given)
        ids = sorted(ends | starts)
        if len(ids) == 1:
            one: dict[str, Any] | None = client.get_decision(ids[0])
            if one is not None:
                return one
        if len(ids) > 1:
            how = " and ".join(f"{word} {len(some)}" for word, some in (
                ("ends", ends), ("starts", starts)) if some)
            listed = ", ".join(shown(i) for i in ids[:3]) + (", …" if len(ids) > 3 else "")
            fail(f"{given!r} is ambiguous: it {how} decision ids ({listed}); give more of "
                 "the id (its end tells apart decisions of one process)")
    fail(f"no decision with id {given!r} (see staso decisions list)")
    raise AssertionError("unreachable")


def _ids_with(client: Any, given: str) -> tuple[set[str], set[str]]:
    """The ids (among the newest ``_FIND_PAGES`` pages that hold ``given`` somewhere) that
    end with it, and those that start with it; in any case, as the search is."""
    want = given.casefold()
    ends: set[str] = set()
    starts: set[str] = set()
    cursor = None
    for _ in range(_FIND_PAGES):
        page = client.list_decisions(q=given, limit=500, cursor=cursor)
        for item in page.items:
            found = str(item.get("id", ""))
            if found.casefold().endswith(want):
                ends.add(found)
            if found.casefold().startswith((want, "dec_" + want)):  # (dec_ may be left out)
                starts.add(found)
        cursor = page.next_cursor
        if not cursor:
            break
    return ends, starts


def _show(d: dict[str, Any]) -> None:
    """One decision as text: every recorded string through ``shown`` (escape sequences an
    agent put in a name must not reach the terminal), printed without markup."""
    field("id", shown(d.get("id")))
    field("time", when(d.get("created_at")))
    field("agent", shown(d.get("agent_name")) + (f" ({shown(d['environment'])})"
                                                 if d.get("environment") else ""))
    field("tool", shown(d.get("tool_name")))
    action = shown(d.get("action") or "(not guarded: execution record only)")
    field("action", action + (f", severity {shown(d['severity'])}" if d.get("severity")
                              else ""))
    if d.get("rule_name"):
        field("rule", shown(d["rule_name"]))
    if d.get("reason"):
        field("reason", shown(d["reason"]))
    if d.get("grant_id"):
        field("standing approval", shown(d["grant_id"]))
    policy = [f"version {shown(d['policy_version'])}" if d.get("policy_version") else "",
              f"digest {shown(d['policy_digest'])}" if d.get("policy_digest") else ""]
    if any(policy):
        field("policy", ", ".join(p for p in policy if p))
    if isinstance(d.get("latency_ms"), (int, float)):
        field("decided in", f"{d['latency_ms']:.1f} ms")
    field("input (masked per redact_in_log)", shown_json(d.get("tool_input")))
    if d.get("context"):
        field("context", shown_json(d["context"]))
    results = d.get("results") or []
    said = [r for r in results if isinstance(r, dict) and not r.get("passed")]
    field("rules", f"{len(said)} of {len(results)} said something"
          if results else "none evaluated")
    for r in said:
        mode = "" if r.get("mode") in (None, "enforce") else f" ({shown(r['mode'])})"
        out.print(f"  - {shown(r.get('rule_name'))}: {shown(r.get('action'))}{mode}, "
                  f"{shown(r.get('severity'))}: {shown(r.get('reason'))}", markup=False,
                  highlight=False)
    if d.get("modified_input") is not None:
        field("modified input", shown_json(d["modified_input"]))
    if d.get("modifications"):
        field("modifications", shown_json(d["modifications"]))
    if d.get("execution_status"):
        ran = shown(d["execution_status"]) + (
            f" in {d['execution_ms']:.1f} ms"
            if isinstance(d.get("execution_ms"), (int, float)) else "")
        field("execution", ran)
        if d.get("execution_error"):
            field("error", shown(d["execution_error"]))
        if d.get("execution_output") is not None:
            field("output", shown(d["execution_output"]))
    for a in d.get("answers") or []:
        field("answer", f"{shown(a.get('answer'))} by {shown(a.get('by'))}"
              + (f" via {shown(a['via'])}" if a.get("via") else "")
              + f" at {when(a.get('at'))}")
    esc = d.get("escalation")
    if esc:
        line = (f"{shown(esc.get('id'))} {shown(esc.get('status'))}, opened "
                f"{when(esc.get('created_at'))}")
        if esc.get("resolved_at"):
            line += (f", answered {when(esc['resolved_at'])} by "
                     f"{shown(esc.get('resolved_by'))}")
            if esc.get("resolved_via"):
                line += f" via {shown(esc['resolved_via'])}"
        field("escalation", line)
        if esc.get("comment"):
            field("comment", shown(esc["comment"]))
    elif d.get("escalation_id"):
        field("escalation", f"{shown(d['escalation_id'])} "
                            f"({shown(d.get('escalation_status'))})")
