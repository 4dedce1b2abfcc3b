"""What the ``staso`` commands share: the output console, the --url/--key options, a client
on the server or the embedded store, and one-line failures."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from ..store import StoreBackend

out = Console(soft_wrap=True)
URL = typer.Option(None, "--url", envvar="STASO_BASE_URL",
                   help="a staso server (default: the embedded store in STASO_HOME)")
KEY = typer.Option(None, "--key", envvar="STASO_API_KEY", help="API key for --url")
DATABASE_URL = typer.Option(None, help="the server's database (default as for staso serve)")
CLI_CONNECT_RETRY = 0.5  # seconds the CLI retries a refused connection before saying so


@contextlib.contextmanager
def key_store(database_url: str | None) -> Iterator[StoreBackend]:
    from ..store import open_store

    store = open_store(database_url_of(database_url))
    try:
        yield store
    finally:
        store.close()



def checked_url(url: str | None) -> str | None:
    """``--url`` as given, checked: one that cannot be right (no scheme, a path such as
    /v1) exits 1 with one line at once, never retried."""
    from ..errors import StasoError
    from ..settings import check_base_url

    if not url:
        return url
    try:
        return check_base_url(url, "--url")
    except StasoError as exc:
        fail(str(exc))
        raise  # (fail exits)


def client_for(url: str | None, key: str | None) -> Any:
    """A client on the server at ``url``, or on the embedded store (default policy)."""
    from ..client import Client
    from ..errors import StasoError
    from ..settings import Settings

    url = checked_url(url)
    try:
        settings = Settings.resolve(base_url=url or "", api_key=key, announce=False)
    except StasoError as exc:
        fail(str(exc))
    # a person is waiting: a server that refuses connections is said within about a second
    settings.connect_retry = CLI_CONNECT_RETRY
    if not settings.remote:
        settings.policy = None  # answering escalations never depends on ./staso.yaml
    return Client(settings)


def on_client(url: str | None, key: str | None, action: Any) -> Any:
    """Run ``action(client)``; a staso error (unknown id, conflict, refused key or answer)
    exits 1 with its message, on one line (a CEL parser's picture of where a grant's
    condition broke, under its message, is left out). The client is always shut down."""
    from ..errors import StasoError

    client = client_for(url, key)
    try:
        return action(client)
    except (StasoError, ValueError) as exc:
        summary = getattr(exc, "summary", None)  # a server that cannot be reached, in words
        fail(summary or (str(exc).strip().splitlines()[0] if str(exc).strip()
                         else type(exc).__name__))
    finally:
        client.shutdown()


def database_url_of(database_url: str | None) -> str:
    """The database URL given (or STASO_DATABASE_URL, else the embedded store's file), as
    SQLAlchemy takes it (``postgres://`` accepted); a bad one exits 1 with one line."""
    import os

    from ..errors import StasoError
    from ..settings import database_url as normalized
    from ..settings import default_home
    from ..store import sqlite_url

    url = database_url or os.environ.get("STASO_DATABASE_URL") or sqlite_url(default_home())
    try:
        return normalized(url)
    except StasoError as exc:
        fail(str(exc))
        raise  # (fail exits)


def fail(message: str, code: int = 1) -> None:
    typer.echo(message, err=True)  # one unwrapped line: file:line: message
    raise typer.Exit(code)


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def when(timestamp: Any, now: float | None = None) -> str:
    """A recorded time as every command prints it: the local date and time with its
    offset, and how long ago (or from now) it is: ``2026-12-07 10:15:42+01:00 (3h ago)``;
    "-" for none."""
    import time
    from datetime import datetime

    if not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool):
        return "-"
    now = time.time() if now is None else now
    try:
        local = datetime.fromtimestamp(timestamp).astimezone().isoformat(sep=" ",
                                                                         timespec="seconds")
    except (ValueError, OverflowError, OSError):
        return str(timestamp)
    gap = now - timestamp
    return f"{local} ({age(gap)} ago)" if gap >= 0 else f"{local} (in {age(-gap)})"


def safe_url(url: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).render_as_string(hide_password=True)




def field(key: str, value: Any) -> None:
    out.print(f"[bold]{key}[/bold]: ", end="", markup=True)
    out.print(value, markup=False, highlight=False)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
# and the invisible ones that reorder or hide text (bidi overrides, zero-width marks)
_CONTROL.update({c: f"\\u{c:04x}" for c in (*range(0x200B, 0x2010), *range(0x202A, 0x202F),
                                            *range(0x2066, 0x206A), 0xFEFF)})
_CONTROL.update({ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"})


def printable(value: Any) -> str:
    """Text recorded from agents (tool and agent names, reasons, inputs) as a terminal may
    show it: control characters (ESC sequences that would clear the screen or recolour what
    follows, bells, carriage returns that overwrite a line) written as escapes. Print it with
    ``markup=False`` too, so Rich's ``[red]`` stays text."""
    return str(value).translate(_CONTROL)
