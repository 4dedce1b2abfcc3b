"""``staso serve`` and ``staso demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import database_url_of, fail, safe_url


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
    from ..errors import StasoError

    try:
        import uvicorn

        from ..server import ServerConfig, create_app
    except ImportError as exc:
        fail(f"staso serve needs the server extra: pip install 'staso[server]' ({exc})")
        return
    url = database_url_of(database_url)
    try:
        config = ServerConfig(database_url=url, policy=policy)
        if dead_letter_file is not None:
            config.dead_letter_file = dead_letter_file
        application = create_app(config)
    except StasoError as exc:
        fail(str(exc))
        return
    state = application.state.staso
    typer.echo(f"staso serve: dashboard and API on http://{host}:{port}/ "
               f"(database {safe_url(url)}, policy version {state.policy_version})", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=3)




def demo(yes: bool = typer.Option(False, "--yes", help="approve automatically, unattended"),
         timeout: float = typer.Option(120.0, help="seconds to wait for a person's answer"),
         port: int = typer.Option(8787, help="dashboard port (a free one if taken)"),
         slack_stand_in: bool = typer.Option(
             False, "--slack-stand-in", help="post the escalation to a local stand-in for "
                                             "Slack and print the message")) -> None:
    """Start the server and dashboard on a temporary store and run a scripted refund agent."""
    from ..demo import run_demo

    raise typer.Exit(run_demo(auto_approve=yes, timeout=timeout, port=port,
                              slack_stand_in=slack_stand_in))
