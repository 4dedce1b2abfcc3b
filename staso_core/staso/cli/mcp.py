"""``staso mcp``: guard MCP servers' tools (proxy) and wrap a client's configuration."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import install_extra
from .common import fail

mcp_app = typer.Typer(help="Guard MCP servers' tools.", no_args_is_help=True)

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
        fail("--upstream and --listen go together: staso mcp proxy --upstream URL "
              "--listen HOST:PORT")
    if upstream is not None and ctx.args:
        fail("give either --upstream URL --listen HOST:PORT or -- COMMAND ARGS..., not both")
    if upstream is None and not ctx.args:
        fail("name the MCP server to run: staso mcp proxy -- COMMAND ARGS... "
              "(or --upstream URL --listen HOST:PORT)")
    if header and upstream is None:
        fail("--header is for --upstream (a stdio server gets this process's environment)")
    try:
        import anyio

        from staso_mcp.stdio import run_stdio_proxy
        from staso_mcp.streamable_http import parse_header, parse_listen, run_http_proxy
    except ImportError as exc:
        fail(f"staso mcp needs the mcp extra: {install_extra('mcp')} ({_mcp_version()}"
              f"{exc})")
        return
    from ..adapters import ToolGuard
    from ..client import Client
    from ..settings import Settings

    try:
        headers = dict(parse_header(h) for h in header)
        if listen is not None:
            parse_listen(listen)
    except ValueError as exc:
        fail(str(exc))
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
        fail(f"staso mcp proxy: the upstream MCP server ({where}) failed or could not be "
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
        fail(f"no configuration file at {config}")
    options = [*(["--policy", str(policy.resolve())] if policy is not None else []),
               *(["--wait"] if wait else []),
               *(["--approve-in-client"] if approve_in_client else [])]
    if undo and options:
        fail("--undo takes no proxy options")
    try:
        report = unwrap_config(config) if undo else wrap_config(config, options)
    except (ValueError, OSError) as exc:
        fail(str(exc))
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
