"""``staso serve`` and ``staso demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import install_extra
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
        fail(f"staso serve needs the server extra: {install_extra('server')} ({exc})")
        return
    from sqlalchemy.exc import SQLAlchemyError

    url = database_url_of(database_url)
    new_file = _new_sqlite_file(url)
    problem = listen_problem(host, port)
    if problem is not None:  # said before any URL is printed as if it served there
        fail(problem)
        return
    try:
        config = ServerConfig(database_url=url, policy=policy)
        if dead_letter_file is not None:
            config.dead_letter_file = dead_letter_file
        application = create_app(config)
    except StasoError as exc:  # its first line: a driver's hints and links are left out
        fail(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return
    except SQLAlchemyError as exc:  # unreachable, refused login, no such database: one line
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        fail(f"cannot open the database {safe_url(url)}: "
             f"{reason[0] if reason else type(exc).__name__}")
        return
    state = application.state.staso
    if new_file is not None:  # a typo in a path starts an empty store: no key works there
        typer.echo(f"staso serve: {new_file} did not exist: this is a new, empty store "
                   "(no keys yet: staso keys create --database-url … )", err=True)
    if state.replaced_policy is not None:
        typer.echo(f"staso serve: warning: {state.replaced_policy}", err=True)
    typer.echo(f"staso serve: dashboard and API on http://{host}:{port}/ "
               f"(database {safe_url(url)}, policy version {state.policy_version})", err=True)
    _freeze_startup_objects()
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=3)


def _freeze_startup_objects() -> None:
    """Keep what the server loaded at startup out of the cyclic GC's full collections.

    The modules, the app and the policy are ~150k objects that live as long as the process.
    Requests in flight (and the decision log's queue) survive two young collections and
    move to the oldest generation, so full collections come every few thousand requests,
    and each walked every startup object: ~60 ms with the GIL held, which was the server's
    p99 under load (benchmarks/server.py: p99 61.6 ms at 4,597 decisions/s). Frozen, they
    are never walked again (nor collected: they are not garbage). ``gc.freeze`` is meant
    for this; this process is ours, so no one else's objects are frozen with them."""
    import gc

    gc.collect()  # what startup left as garbage is freed, not frozen
    gc.freeze()


def listen_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, in one line, or None if it can. Bound as
    uvicorn binds (SO_REUSEADDR), so a port in TIME_WAIT after a restart counts as free."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot listen on {host}: {exc.strerror or exc}; pick another with --host"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} is in use ({exc.strerror}); pick another with --port"
            return f"cannot listen on {host}:{port} ({exc.strerror or exc})"
    return None




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


def _new_sqlite_file(url: str) -> Path | None:
    """The SQLite file ``url`` names, if it does not exist yet (opening it creates it)."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except Exception:  # a bad URL is said when it is opened
        return None
    path = parsed.database
    if not parsed.drivername.startswith("sqlite") or not path or path == ":memory:":
        return None
    return None if Path(path).exists() else Path(path)
