"""The ``staso`` command (Typer + Rich), one module per command group. Escalation commands
work on the embedded store (``STASO_HOME``) or, with ``--url`` / ``STASO_BASE_URL`` and a
key, on a server."""

from __future__ import annotations

import sys

import typer

from .escalations import escalations_app
from .grants import grants_app
from .keys import keys_app
from .mcp import mcp_app
from .policy import policy_app
from .serve import demo, serve

app = typer.Typer(help="staso: guard AI agents' tool calls.", no_args_is_help=True,
                  add_completion=False)
app.add_typer(escalations_app, name="escalations")
app.add_typer(policy_app, name="policy")
app.add_typer(keys_app, name="keys")
app.add_typer(grants_app, name="grants")
app.add_typer(mcp_app, name="mcp")
app.command()(serve)
app.command()(demo)


def main() -> None:  # the console script
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
