"""What the read-only ``staso`` commands (decisions, escalations and grants lists) share:
they never create a store, and they print agents' text so a terminal cannot be fooled by it."""

from __future__ import annotations

import json
from typing import Any

from .common import fail, on_client, printable


def on_reader(url: str | None, key: str | None, action: Any) -> Any:
    """``on_client`` for a command that only reads: without a server, the embedded store
    must be there already (reading must not create an empty one and show it)."""
    if not url:
        from ..errors import StasoError
        from ..settings import Settings, store_file

        try:
            settings = Settings.resolve(base_url="", api_key=key, announce=False)
        except StasoError as exc:
            fail(str(exc))
            raise  # (fail exits)
        store = store_file(settings.home)
        if not settings.remote and not store.is_file():
            fail(f"no embedded store at {store} (set STASO_HOME or --url)")
    return on_client(url, key, action)


def check_id(given: str) -> None:
    """An id as typed: empty, too long or holding a NUL is said at once (exit 1)."""
    if not given:
        fail("id: empty (give an id, or the start of one)")
    if len(given) > 1000:
        fail("id: longer than 1000 characters")
    if "\x00" in given:
        fail("id: holds a NUL character")


def shown(value: Any) -> str:
    """Recorded text as the terminal shows it (control characters as escapes)."""
    return printable("" if value is None else value)


def shown_json(value: Any) -> str:
    """JSON, indented, with any character a terminal would act on written as an escape
    (JSON escapes C0 controls itself; C1 controls and bidi marks it leaves)."""
    return "\n".join(printable(line) for line in json.dumps(
        value, indent=2, ensure_ascii=False).split("\n"))
