"""The ``staso`` command (Typer + Rich), one module per command group. Escalation commands
work on the embedded store (``STASO_HOME``) or, with ``--url`` / ``STASO_BASE_URL`` and a
key, on a server."""

from __future__ import annotations

import sys

import typer

from .decisions import decisions_app
from .escalations import escalations_app
from .grants import grants_app
from .keys import keys_app
from .mcp import mcp_app
from .policy import policy_app
from .serve import demo, serve

app = typer.Typer(help="staso: guard AI agents' tool calls.", no_args_is_help=True,
                  add_completion=False)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("staso")
        except PackageNotFoundError:  # run from a source tree that is not installed
            from .. import __version__ as installed
        typer.echo(f"staso {installed}")
        raise typer.Exit()


@app.callback()
def _options(show_version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True,
        help="print the installed version and exit")) -> None:
    """staso: guard AI agents' tool calls."""


app.add_typer(escalations_app, name="escalations")
app.add_typer(policy_app, name="policy")
app.add_typer(keys_app, name="keys")
app.add_typer(grants_app, name="grants")
app.add_typer(decisions_app, name="decisions")
app.add_typer(mcp_app, name="mcp")
app.command()(serve)
app.command()(demo)


def main() -> None:  # the console script
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
