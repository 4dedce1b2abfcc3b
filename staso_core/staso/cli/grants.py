"""``staso grants``: review and revoke standing approvals."""

from __future__ import annotations

import json
import time
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from .common import KEY, URL, age, on_client, out
from .reading import on_reader, shown

grants_app = typer.Typer(help="Review and revoke standing approvals (grants).",
                         no_args_is_help=True)

@grants_app.command("list")
def grants_list(show_all: bool = typer.Option(False, "--all", help="also expired, used up "
                                              "and revoked ones"),
                as_json: bool = typer.Option(False, "--json", help="JSON output"),
                url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """List standing approvals, newest first (by default the live ones)."""
    found = on_reader(url, key, lambda client: client.list_grants(live_only=not show_all))
    now = time.time()
    if as_json:
        print(json.dumps([g.to_dict(now) for g in found], indent=2))
        return
    if not found:
        typer.echo("no live standing approvals" if not show_all else
                   "no standing approvals", err=True)
        return
    table = Table("id", "state", "agent", "tool", "rule", "when", "uses", "expires",
                  "granted by")
    for g in found:
        expires = (f"in {age(g.expires_at - now)}" if g.expires_at > now
                   else f"{age(now - g.expires_at)} ago")
        uses = f"{g.uses}" + (f" of {g.max_uses}" if g.max_uses is not None else "")
        state = g.state(now) + (f" by {g.revoked_by}" if g.revoked_at is not None else "")
        # Text: agents' names are never Rich markup, and shown as escapes
        table.add_row(*(Text(shown(v)) for v in (
            g.id, state, g.agent_name, g.tool_name, g.rule_name, g.condition or "(any input)",
            uses, expires, g.created_by + (f" via {g.created_via}" if g.created_via else ""))))
    out.print(table)


@grants_app.command("revoke")
def grants_revoke(grant_id: str = typer.Argument(..., help="the grant's id (grant_...), "
                                                 "from staso grants list"),
                  by: str = typer.Option(..., help="who revokes it"),
                  url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """Revoke a standing approval: the next call it would have allowed goes to a person."""
    grant = on_client(url, key, lambda client: client.revoke_grant(grant_id, by=by))
    out.print(shown(f"{grant.id} revoked by {grant.revoked_by} (it was used {grant.uses} "
                    "time(s))"), markup=False, highlight=False)
