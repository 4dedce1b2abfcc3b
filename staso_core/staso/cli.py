"""The ``staso`` command (Typer + Rich). Escalation commands work on the embedded store
(``STASO_HOME``) or, with ``--url`` / ``STASO_BASE_URL`` and a key, on a server."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from .store import StoreBackend

T = TypeVar("T")

app = typer.Typer(help="staso: guard AI agents' tool calls.", no_args_is_help=True,
                  add_completion=False)
escalations_app = typer.Typer(help="List, show, approve and deny escalations.",
                              no_args_is_help=True)
policy_app = typer.Typer(help="Check and test policies.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys for agents, approvers and admins.",
                       no_args_is_help=True)
app.add_typer(escalations_app, name="escalations")
app.add_typer(policy_app, name="policy")
app.add_typer(keys_app, name="keys")
grants_app = typer.Typer(help="Review and revoke standing approvals (grants).",
                         no_args_is_help=True)
app.add_typer(grants_app, name="grants")
mcp_app = typer.Typer(help="Guard MCP servers' tools.", no_args_is_help=True)
app.add_typer(mcp_app, name="mcp")
out = Console(soft_wrap=True)
URL = typer.Option(None, "--url", envvar="STASO_BASE_URL",
                   help="a staso server (default: the embedded store in STASO_HOME)")
KEY = typer.Option(None, "--key", envvar="STASO_API_KEY", help="API key for --url")


def _client(url: str | None, key: str | None) -> Any:
    """A client on the server at ``url``, or on the embedded store (default policy)."""
    from .client import Client
    from .errors import StasoError
    from .settings import Settings

    try:
        settings = Settings.resolve(base_url=url or "", api_key=key)
    except StasoError as exc:
        _fail(str(exc))
    if not settings.remote:
        settings.policy = None  # answering escalations never depends on ./staso.yaml
    return Client(settings)


def _on_client(url: str | None, key: str | None, action: Any) -> Any:
    """Run ``action(client)``; a staso error (unknown id, conflict, refused key or answer)
    exits 1 with its message, on one line (a CEL parser's picture of where a grant's
    condition broke, under its message, is left out). The client is always shut down."""
    from .errors import StasoError

    client = _client(url, key)
    try:
        return action(client)
    except (StasoError, ValueError) as exc:
        _fail(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    finally:
        client.shutdown()


def _database_url(database_url: str | None) -> str:
    import os

    from .settings import default_home
    from .store import sqlite_url

    return database_url or os.environ.get("STASO_DATABASE_URL") or sqlite_url(default_home())


def _fail(message: str, code: int = 1) -> None:
    typer.echo(message, err=True)  # one unwrapped line: file:line: message
    raise typer.Exit(code)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@escalations_app.command("list")
def escalations_list(status: Optional[str] = typer.Option(  # noqa: UP045
                         None, help="pending, approved, denied or timeout"),
                     as_json: bool = typer.Option(False, "--json", help="JSON output"),
                     url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """List escalations, newest first."""
    items = _on_client(url, key, lambda client: client.list_escalations(status=status))
    if as_json:
        print(json.dumps([e.to_dict() for e in items], indent=2))
        return
    table = Table("id", "status", "tool", "rule", "agent", "age")
    now = time.time()
    for e in items:
        table.add_row(e.id, e.status, e.tool_name, e.rule_name or "", e.agent_name,
                      _age(now - e.created_at))
    out.print(table)


@escalations_app.command("show")
def escalations_show(escalation_id: str,
                     as_json: bool = typer.Option(False, "--json", help="JSON output"),
                     url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """Show one escalation with its full input."""
    esc = _on_client(url, key, lambda client: client.get_escalation(escalation_id))
    if as_json:
        print(json.dumps(esc.to_dict(), indent=2))
        return
    for key, value in esc.to_dict().items():
        if key in _WHO_ANSWERS:
            continue
        if isinstance(value, dict):
            value = json.dumps(value, indent=2)
        _field(key, value)
    for key, value in _who_answers(esc):
        _field(key, value)


# shown together, in words, by escalations show
_WHO_ANSWERS = {"approvers", "approvals", "approvals_required", "forbid_self_approval",
                "requested_by", "policy_version", "policy_digest"}


def _field(key: str, value: Any) -> None:
    out.print(f"[bold]{key}[/bold]: ", end="", markup=True)
    out.print(value, markup=False, highlight=False)


def _who_answers(esc: Any) -> list[tuple[str, str]]:
    """Who may answer, who has, and which policy escalated it: (label, text) lines."""
    now = time.time()
    said = [f"{a.get('by') or a.get('name')} via {a.get('via') or '?'}, "
            f"{_age(now - (a.get('at') or now))} ago" for a in esc.approvals]
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

    esc = _on_client(url, key, answer)
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
            _fail(f"--input is not valid JSON: {exc}")
        if not isinstance(modified, dict):
            _fail("--input must be a JSON object of tool arguments")
    grant = {k: v for k, v in (("ttl", grant_ttl), ("max_uses", grant_max_uses),
                               ("when", grant_when)) if v is not None} or None
    _resolve(escalation_id, "approved", by, comment, modified, url, key, grant)


@escalations_app.command("deny")
def escalations_deny(escalation_id: str, by: str = typer.Option(..., help="who denies"),
                     comment: Optional[str] = typer.Option(None),  # noqa: UP045
                     url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """Deny an escalation; the comment reaches the agent."""
    _resolve(escalation_id, "denied", by, comment, None, url, key)


def _load(file: Path) -> Any:
    from .errors import PolicyError
    from .plugins import make_plugin_manager
    from .policy.discovery import load_any_policy

    try:
        return load_any_policy(file, make_plugin_manager())
    except PolicyError as exc:
        _fail(str(exc))


@policy_app.command("check")
def policy_check(file: Path) -> None:
    """Load a policy; exit 1 with file:line: message on any error."""
    policy = _load(file)
    out.print(f"{file}: ok ({len(policy.rules)} rules)", markup=False, highlight=False)


@policy_app.command("test")
def policy_test(file: Path) -> None:
    """Run the policy's tests (its ``tests:`` and ``*.test.yaml`` beside it)."""
    from .errors import PolicyError
    from .policy.testing import run_policy_tests

    policy = _load(file)
    try:
        outcomes = run_policy_tests(policy, file)
    except PolicyError as exc:
        _fail(str(exc))
        return
    failed = [o for o in outcomes if not o.passed]
    for o in outcomes:
        mark = "[green]PASS[/green]" if o.passed else "[red]FAIL[/red]"
        out.print(f"{mark} {o.test.name}", markup=True, highlight=False, end="")
        out.print("" if o.passed else f" — {o.message}", markup=False, highlight=False)
    out.print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed", markup=False)
    if failed or not outcomes:
        if not outcomes:
            typer.echo("no policy tests found", err=True)
        raise typer.Exit(1)


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="address to listen on"),
          port: int = typer.Option(8787, help="port to listen on"),
          database_url: Optional[str] = typer.Option(  # noqa: UP045
              None, help="SQLAlchemy URL (default: STASO_DATABASE_URL, else the embedded "
                         "store's SQLite file in STASO_HOME)"),
          policy: Optional[Path] = typer.Option(  # noqa: UP045
              None, help="policy file; stored as a new version if it changed"),
          dead_letter_file: Optional[Path] = typer.Option(  # noqa: UP045
              None, help="where decision-log records the database refuses are kept "
                         "(default: dead-letter.jsonl in STASO_HOME)")) -> None:
    """Run the guard server and the approval dashboard."""
    from .errors import StasoError

    try:
        import uvicorn

        from .server import ServerConfig, create_app
    except ImportError as exc:
        _fail(f"staso serve needs the server extra: pip install 'staso[server]' ({exc})")
        return
    url = _database_url(database_url)
    try:
        config = ServerConfig(database_url=url, policy=policy)
        if dead_letter_file is not None:
            config.dead_letter_file = dead_letter_file
        application = create_app(config)
    except StasoError as exc:
        _fail(str(exc))
        return
    state = application.state.staso
    typer.echo(f"staso serve: dashboard and API on http://{host}:{port}/ "
               f"(database {_safe_url(url)}, policy version {state.policy_version})", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=3)


def _safe_url(url: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).render_as_string(hide_password=True)


DATABASE_URL = typer.Option(None, help="the server's database (default as for staso serve)")


@contextlib.contextmanager
def _key_store(database_url: str | None) -> Iterator[StoreBackend]:
    from .store import open_store

    store = open_store(_database_url(database_url))
    try:
        yield store
    finally:
        store.close()


SLACK_USER = typer.Option(None, help="approver/admin keys: the Slack member id (U…) that "
                                     "answers in Slack as this key")
EMAIL = typer.Option(None, help="approver/admin keys: the e-mail address whose links answer "
                                "as this key")


GROUP = typer.Option([], "--group", help="approver/admin keys: an approver group it belongs "
                                         "to, for rules' approvers: [\"group:NAME\"] "
                                         "(repeatable)")


def _change_keys(database_url: str | None, change: Callable[[StoreBackend], T],
                 missing: str = "") -> T:
    """Run ``change(store)`` on the keys' database. A refusal (a staso error) exits 1 with its
    message and, where ``missing`` says what it is, so does finding no such key (a false
    result)."""
    from .errors import StasoError

    with _key_store(database_url) as store:
        try:
            done = change(store)
        except StasoError as exc:
            _fail(str(exc))
            raise  # (not reached: _fail exits)
    if missing and not done:
        _fail(missing)
    return done


def _groups(given: list[str]) -> list[str]:
    """Groups as given: --group a --group b, or --group a,b."""
    return [g.strip() for item in given for g in item.split(",") if g.strip()]


@keys_app.command("create")
def keys_create(role: str = typer.Option(..., help="agent, approver or admin"),
                name: str = typer.Option(..., help="who or what uses the key"),
                agent: Optional[str] = typer.Option(  # noqa: UP045
                    None, help="agent keys: the agent names it may act for, a glob such "
                               "as 'billing-*' (default: exactly --name)"),
                slack_user: Optional[str] = SLACK_USER,  # noqa: UP045
                email: Optional[str] = EMAIL,  # noqa: UP045
                group: list[str] = GROUP,
                database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """Create an API key; prints only the key, once (only its hash is stored)."""
    from .store.keys import create_key

    record, key = _change_keys(database_url, lambda store: create_key(
        store, role=role, name=name, agents=agent, slack_user=slack_user, email=email,
        groups=_groups(group)))
    acts = f", acting for agents matching {record.agents!r}" if record.agents else ""
    member = f", in group(s) {', '.join(record.groups)}" if record.groups else ""
    typer.echo(f"created {record.role} key {record.id} for {record.name!r}{acts}{member}; "
               "it is shown only now", err=True)
    print(key)


@keys_app.command("link")
def keys_link(key_id: str = typer.Argument(..., help="the approver or admin key's id (key_...)"),
              slack_user: Optional[str] = SLACK_USER,  # noqa: UP045
              email: Optional[str] = EMAIL,  # noqa: UP045
              database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """Let a Slack user or an e-mail address answer escalations as this key."""
    _change_keys(database_url, lambda store: store.link_key(key_id, slack_user=slack_user,
                                                            email=email),
                 f"no live approver or admin key {key_id!r} (see staso keys list)")
    who = " and ".join(x for x in (slack_user and f"Slack user {slack_user.strip()}",
                                   email and f"{email.strip().lower()}") if x)
    typer.echo(f"{who} now answer(s) as key {key_id}", err=True)


@keys_app.command("bind")
def keys_bind(key_id: str = typer.Argument(..., help="the agent key's id (key_...)"),
              agent: str = typer.Option(..., help="the agent names it may act for (a glob)"),
              database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """Bind an agent key to agent names (keys made before binding act for any agent)."""
    _change_keys(database_url, lambda store: store.bind_key(key_id, agent),
                 f"no live agent key {key_id!r} (see staso keys list)")
    typer.echo(f"key {key_id} now acts only for agents matching {agent.strip()!r}; "
               "servers follow within a second", err=True)


@keys_app.command("groups")
def keys_groups(key_id: str = typer.Argument(..., help="the approver or admin key's id (key_...)"),
                set_: str = typer.Option(..., "--set", help="its approver groups, comma-"
                                         "separated (replaces them; '' for none)"),
                database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """Set the approver groups of a key (rules' approvers: ["group:NAME"])."""
    groups = _groups([set_])
    _change_keys(database_url, lambda store: store.set_groups(key_id, groups),
                 f"no live approver or admin key {key_id!r} (see staso keys list)")
    typer.echo(f"key {key_id} is now in group(s) {', '.join(groups) or '(none)'}; servers "
               "follow within a second", err=True)


@keys_app.command("list")
def keys_list(database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """List keys: id, role, name, age and whether revoked (keys themselves are not stored)."""
    with _key_store(database_url) as store:
        keys = store.list_keys()
    # (the Slack user and address that answer as a key: a column only where some key has one)
    linked = any(record.slack_user or record.email for record, _ in keys)
    grouped = any(record.groups for record, _ in keys)
    table = Table("id", "role", "name", "agents", *(["groups"] if grouped else []),
                  *(["answers in"] if linked else []), "age", "status")
    now = time.time()
    for record, revoked_at in keys:
        agents = record.agents or ("any (unbound)" if record.role == "agent" else "")
        answers = ", ".join(x for x in (record.slack_user and f"slack:{record.slack_user}",
                                        record.email and f"email:{record.email}") if x)
        table.add_row(record.id, record.role, record.name, agents,
                      *([", ".join(record.groups)] if grouped else []),
                      *([answers] if linked else []), _age(now - record.created_at),
                      "live" if revoked_at is None else f"revoked {_age(now - revoked_at)} ago")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the key's id (key_...), from keys list"),
                database_url: Optional[str] = DATABASE_URL) -> None:  # noqa: UP045
    """Revoke a key: every server refuses it within a second."""
    _change_keys(database_url, lambda store: store.revoke_key(key_id),
                 f"no live key {key_id!r} (see staso keys list)")
    typer.echo(f"revoked {key_id}", err=True)


@grants_app.command("list")
def grants_list(show_all: bool = typer.Option(False, "--all", help="also expired, used up "
                                              "and revoked ones"),
                as_json: bool = typer.Option(False, "--json", help="JSON output"),
                url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """List standing approvals, newest first (by default the live ones)."""
    found = _on_client(url, key, lambda client: client.list_grants(live_only=not show_all))
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
        expires = (f"in {_age(g.expires_at - now)}" if g.expires_at > now
                   else f"{_age(now - g.expires_at)} ago")
        uses = f"{g.uses}" + (f" of {g.max_uses}" if g.max_uses is not None else "")
        state = g.state(now) + (f" by {g.revoked_by}" if g.revoked_at is not None else "")
        table.add_row(g.id, state, g.agent_name, g.tool_name, g.rule_name,
                      g.condition or "(any input)", uses, expires,
                      g.created_by + (f" via {g.created_via}" if g.created_via else ""))
    out.print(table)


@grants_app.command("revoke")
def grants_revoke(grant_id: str = typer.Argument(..., help="the grant's id (grant_...), "
                                                 "from staso grants list"),
                  by: str = typer.Option(..., help="who revokes it"),
                  url: Optional[str] = URL, key: Optional[str] = KEY) -> None:  # noqa: UP045
    """Revoke a standing approval: the next call it would have allowed goes to a person."""
    grant = _on_client(url, key, lambda client: client.revoke_grant(grant_id, by=by))
    out.print(f"{grant.id} revoked by {grant.revoked_by} (it was used {grant.uses} "
              f"time(s))", markup=False, highlight=False)


@mcp_app.command("proxy", context_settings={"allow_extra_args": True,
                                           "ignore_unknown_options": True})
def mcp_proxy(ctx: typer.Context,
              policy: Optional[Path] = typer.Option(  # noqa: UP045
                  None, help="policy file (default: STASO_POLICY, else the built-in one)"),
              name: Optional[str] = typer.Option(  # noqa: UP045
                  None, help="the server's name for rules (context.mcp_server); default: "
                             "the name the server gives"),
              wait: bool = typer.Option(False, "--wait", help="hold a call that needs "
                                        "approval until a person answers"),
              approve_in_client: bool = typer.Option(
                  False, "--approve-in-client", help="ask the client's person to approve "
                  "or deny (MCP elicitation), where the client can"),
              escalation_timeout: float = typer.Option(300.0, help="seconds a call waits "
                                                       "for a person's answer"),
              upstream_timeout: float = typer.Option(
                  300.0, help="seconds a request may take upstream before the client gets "
                              "an error"),
              upstream: Optional[str] = typer.Option(  # noqa: UP045
                  None, help="a streamable-HTTP MCP server's URL (with --listen)"),
              listen: Optional[str] = typer.Option(  # noqa: UP045
                  None, help="HOST:PORT to serve streamable HTTP on (at /mcp)"),
              header: list[str] = typer.Option(
                  [], help="'Name: value' sent with every request upstream (repeatable)"),
              ) -> None:
    """Guard an MCP server's tool calls. On stdio, in front of a stdio server:
    staso mcp proxy [OPTIONS] -- COMMAND ARGS...; on streamable HTTP:
    staso mcp proxy --upstream URL --listen HOST:PORT [--header 'Name: value']..."""
    if (upstream is None) != (listen is None):
        _fail("--upstream and --listen go together: staso mcp proxy --upstream URL "
              "--listen HOST:PORT")
    if upstream is not None and ctx.args:
        _fail("give either --upstream URL --listen HOST:PORT or -- COMMAND ARGS..., not both")
    if upstream is None and not ctx.args:
        _fail("name the MCP server to run: staso mcp proxy -- COMMAND ARGS... "
              "(or --upstream URL --listen HOST:PORT)")
    if header and upstream is None:
        _fail("--header is for --upstream (a stdio server gets this process's environment)")
    try:
        import anyio

        from staso_mcp.stdio import run_stdio_proxy
        from staso_mcp.streamable_http import parse_header, parse_listen, run_http_proxy
    except ImportError as exc:
        _fail(f"staso mcp needs the mcp extra: pip install 'staso[mcp]' ({_mcp_version()}"
              f"{exc})")
        return
    from .adapters import ToolGuard
    from .client import Client
    from .settings import Settings

    try:
        headers = dict(parse_header(h) for h in header)
        if listen is not None:
            parse_listen(listen)
    except ValueError as exc:
        _fail(str(exc))
        return
    settings = Settings.resolve(policy=policy)
    answers = None
    if approve_in_client and settings.remote:  # an agent key may not answer escalations
        approver_key = os.environ.get("STASO_MCP_APPROVER_KEY", "").strip()
        if approver_key:
            answers = Client(Settings.resolve(api_key=approver_key))
        else:
            typer.echo("staso mcp proxy: --approve-in-client is off: against a staso server "
                       "the client's answers are recorded with an approver key, and "
                       "STASO_MCP_APPROVER_KEY is not set", err=True)
            approve_in_client = False
    guard = ToolGuard.of(wait_for_escalation=wait, escalation_timeout=escalation_timeout,
                         client=Client(settings))
    shared: dict[str, Any] = {"guard": guard, "upstream_timeout": upstream_timeout,
                              "name": name, "approve_in_client": approve_in_client,
                              "answers": answers}
    if upstream is not None and listen is not None:
        run = functools.partial(run_http_proxy, upstream, listen, headers, **shared)
    else:
        run = functools.partial(run_stdio_proxy, ctx.args[0], ctx.args[1:], **shared)
    try:
        anyio.run(run, backend_options={"use_uvloop": _has_uvloop()})
    except Exception as exc:  # the upstream would not start or answer: one clear line
        where = upstream or " ".join(ctx.args)
        _fail(f"staso mcp proxy: the upstream MCP server ({where}) failed or could not be "
              f"reached: {_innermost(exc)}")


def _mcp_version() -> str:
    """Which mcp is installed, when it is not the 1.x the proxy is built on."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("mcp")
    except importlib.metadata.PackageNotFoundError:
        return ""
    return "" if version.startswith("1.") else f"mcp {version} is installed, it needs 1.x; "


def _has_uvloop() -> bool:
    """uvloop (installed with the server extra) makes the proxy's relay cheaper."""
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


def _innermost(exc: BaseException) -> str:
    """The error under task-group wrappers, as one line."""
    while getattr(exc, "exceptions", None):  # an exception group (Python 3.11+, or anyio's)
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


@mcp_app.command("wrap")
def mcp_wrap(config: Path = typer.Argument(..., help="the client's configuration, e.g. "
                                           "claude_desktop_config.json or .cursor/mcp.json"),
             undo: bool = typer.Option(False, "--undo", help="give each server its own "
                                       "command back"),
             policy: Optional[Path] = typer.Option(  # noqa: UP045
                 None, help="policy file the proxies use (stored as an absolute path)"),
             wait: bool = typer.Option(False, "--wait", help="proxies hold calls that need "
                                       "approval until a person answers"),
             approve_in_client: bool = typer.Option(
                 False, "--approve-in-client", help="proxies ask in the client, where it can")
             ) -> None:
    """Run every stdio MCP server of a client's configuration through staso mcp proxy
    (a backup is kept beside it; running it again changes nothing; --undo takes it back)."""
    from staso_mcp.wrap import unwrap_config, wrap_config

    if not config.is_file():
        _fail(f"no configuration file at {config}")
    options = [*(["--policy", str(policy.resolve())] if policy is not None else []),
               *(["--wait"] if wait else []),
               *(["--approve-in-client"] if approve_in_client else [])]
    if undo and options:
        _fail("--undo takes no proxy options")
    try:
        report = unwrap_config(config) if undo else wrap_config(config, options)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
        return
    verb = "unwrapped" if undo else "wrapped"
    for server in report.changed:
        typer.echo(f"{verb} {server}")
    for server in report.unchanged:
        typer.echo(f"unchanged {server} (already {'plain' if undo else 'wrapped'})")
    for server, why in report.skipped.items():
        typer.echo(f"skipped {server}: {why}")
    if report.backup is not None:
        typer.echo(f"backup of the previous file: {report.backup}")
    else:
        typer.echo("nothing to change")


@app.command()
def demo(yes: bool = typer.Option(False, "--yes", help="approve automatically, unattended"),
         timeout: float = typer.Option(120.0, help="seconds to wait for a person's answer"),
         port: int = typer.Option(8787, help="dashboard port (a free one if taken)"),
         slack_stand_in: bool = typer.Option(
             False, "--slack-stand-in", help="post the escalation to a local stand-in for "
                                             "Slack and print the message")) -> None:
    """Start the server and dashboard on a temporary store and run a scripted refund agent."""
    from .demo import run_demo

    raise typer.Exit(run_demo(auto_approve=yes, timeout=timeout, port=port,
                              slack_stand_in=slack_stand_in))


def main() -> None:  # the console script
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
